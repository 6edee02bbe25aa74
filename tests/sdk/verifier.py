"""The official SDK against Deja's grey-band verifier and conversation hits.

check.py configures a verifier (the mock upstream's `judge` model, whose
verdict `/_mock/judge` sets), widens the grey band to `verify_from = 0.75`
and turns on `[cache.semantic.conversations]`. The proxy embeds with the real
model, so which pairs fall in the band is the model's doing: the paraphrase
check reads `x-deja-similarity` and expects a verdict only under the
threshold.
"""

JUDGE_MODEL = "judge"


def extra_toml():
    """A judge model on the mock, the verifier using it, conversations on."""
    return f"""
[[models]]
name = "{JUDGE_MODEL}"
provider = "openai"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6
context_window = 128000

[cache.semantic.verifier]
model = "{JUDGE_MODEL}"
timeout = "2s"

[cache.semantic.conversations]
history_min = 0.5
"""


def widen_band(config):
    """The demo's [cache.semantic] with a grey band from 0.75 to its threshold."""
    return config.replace("threshold = 0.94\n", "threshold = 0.94\nverify_from = 0.75\n", 1)


def run_verifier_checks(client, check, mock, judge_calls):
    def ask(messages, **kw):
        return client.chat.completions.with_raw_response.create(model="auto", messages=messages, **kw)

    def user(text):
        return [{"role": "user", "content": text}]

    def verdict(v):
        mock("/_mock/judge", {"verdict": v})

    @check("verifier: a grey-band paraphrase is served on the judge's yes, then is a learned alias")
    def _():
        original = "What time does the store open on weekdays?"
        assert ask(user(original)).headers["x-deja-cache"] == "miss"
        # The first of these the real model puts in the grey band (0.75 to 0.94).
        paraphrases = ["At what time do you open on a weekday?", "When do you open your doors on weekdays?",
                       "What hour do you open your doors on weekdays?", "When do you open Monday to Friday?"]
        verdict("yes")
        try:
            for text in paraphrases:
                before = judge_calls()
                r = ask(user(text))
                if r.headers.get("x-deja-verified") == "llm":
                    break
            else:
                raise AssertionError("no paraphrase fell in the grey band: the real model moved")
            assert r.headers["x-deja-cache"] == "semantic", dict(r.headers)
            assert float(r.headers["x-deja-similarity"]) < 0.94, dict(r.headers)
            assert judge_calls() == before + 1
            assert r.parse().choices[0].message.content.endswith(original), "the cached answer"
            again = ask(user(text))
            assert again.headers["x-deja-cache"] == "semantic", dict(again.headers)
            assert again.headers["x-deja-verified"] == "alias", dict(again.headers)
            assert judge_calls() == before + 1, "an alias needs no second verdict"
        finally:
            verdict("none")

    @check("verifier: a near-miss the judge rejects is a miss with its own answer")
    def _():
        assert ask(user("How do I cancel my order?")).headers["x-deja-cache"] == "miss"
        verdict("no")
        try:
            before = judge_calls()
            trap = ask(user("How do I cancel my subscription?"))
            assert trap.headers["x-deja-cache"] == "miss", dict(trap.headers)
            assert "x-deja-verified" not in trap.headers
            assert trap.parse().choices[0].message.content.endswith("How do I cancel my subscription?")
            assert judge_calls() - before <= 1
        finally:
            verdict("none")

    @check("conversations: the same question after other small talk is served on the judge's yes")
    def _():
        question = {"role": "user", "content": "Do you deliver on Sundays?"}
        first = [{"role": "user", "content": "Hi there!"},
                 {"role": "assistant", "content": "Hello! How can I help you today?"}, question]
        again = [{"role": "user", "content": "Hello there!"},
                 {"role": "assistant", "content": "Hi! How can I help you today?"}, question]
        assert ask(first).headers["x-deja-cache"] == "miss"
        verdict("yes")
        try:
            before = judge_calls()
            r = ask(again)
            assert r.headers["x-deja-cache"] == "semantic", (dict(r.headers), judge_calls() - before)
            assert r.headers.get("x-deja-verified") == "llm", dict(r.headers)
            assert judge_calls() == before + 1
            assert r.parse().choices[0].message.content.endswith("Do you deliver on Sundays?")
        finally:
            verdict("none")
