"""The official SDK against Deja's Anthropic- and Gemini-kind rungs.

check.py adds the providers, models and ladders below to the demo
configuration, all pointed at the simulated upstream (which speaks Anthropic's
Messages API at /v1/messages and Gemini's generateContent under /v1beta), and
runs `run_provider_checks` once with the mock sending every field the
providers' references show and once with it leaving out what they mark
optional (`sparse`).
"""

import json

import openai

ANTHROPIC_KEY_ENV = "DEJA_SDK_ANTHROPIC_KEY"
GEMINI_KEY_ENV = "DEJA_SDK_GEMINI_KEY"

# What the mock is asked for: the models' `upstream_name`s.
CLAUDE = "claude-sonnet-up"
GEMINI = "gemini-flash-up"


def extra_toml(mock):
    """Providers of both kinds, a model on each, and ladders that cross kinds."""
    return f"""
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{mock}/v1"
api_key_env = "{ANTHROPIC_KEY_ENV}"

[[providers]]
name = "google"
kind = "gemini"
base_url = "{mock}/v1beta"
api_key_env = "{GEMINI_KEY_ENV}"

[[models]]
name = "claude-sonnet"
provider = "claude"
upstream_name = "{CLAUDE}"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
context_window = 200000

[[models]]
name = "gemini-flash"
provider = "google"
upstream_name = "{GEMINI}"
input_usd_per_mtok = 0.30
output_usd_per_mtok = 2.50
context_window = 1000000

[[ladders]]
name = "claude-first"
rungs = ["claude-sonnet", "gemini-flash", "gpt-4o"]

[[ladders]]
name = "gemini-first"
rungs = ["gemini-flash", "claude-sonnet", "gpt-4o"]
"""


KINDS = [
    # (kind, Deja model, upstream name, ladder starting there, the provider's
    #  code for an invalid request, a parameter it cannot honour)
    ("anthropic", "claude-sonnet", CLAUDE, "claude-first", "invalid_request_error", ("seed", 7)),
    ("gemini", "gemini-flash", GEMINI, "gemini-first", "INVALID_ARGUMENT", ("logit_bias", {"50256": -100})),
]

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]


def expect_error(cls, status, call):
    try:
        call()
    except cls as e:
        assert e.status_code == status, (e.status_code, e.body)
        return e
    raise AssertionError(f"expected {cls.__name__} ({status})")


def run_provider_checks(client, check, fault, status, stream_style, sparse):
    # A number of its own per run: the semantic cache's number guard keeps
    # the second run's questions from being served the first run's answers.
    label = "sparse, run 2002" if sparse else "full, run 1001"

    def create(**kw):
        return client.chat.completions.with_raw_response.create(**kw)

    def stream(**kw):
        with client.chat.completions.with_streaming_response.create(stream=True, **kw) as resp:
            return resp.headers, list(resp.parse())

    def assembled(chunks):
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        return text, finishes

    def tool_calls(chunks):
        calls = {}
        for ch in chunks:
            for d in (ch.choices[0].delta.tool_calls or []) if ch.choices else []:
                c = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                c["id"] = c["id"] or d.id
                if d.function and d.function.name:
                    c["name"] += d.function.name
                if d.function and d.function.arguments:
                    c["arguments"] += d.function.arguments
        return [calls[i] for i in sorted(calls)]

    stream_style("null_in_every_chunk", sparse=sparse)
    for kind, model, upstream, ladder, invalid_code, (param, value) in KINDS:
        tag = f"{kind} ({label})"

        @check(f"{tag}: plain completion")
        def _(model=model, upstream=upstream, tag=tag):
            question = f"What is your refund policy? {tag}"
            r = create(model=model, messages=[{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": question}])
            c = r.parse()
            assert c.choices[0].message.content == f"[{upstream}] Simulated answer to: {question}", c
            assert c.choices[0].finish_reason == "stop", c
            assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0, c.usage
            assert c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens, c.usage
            assert r.headers["x-deja-model"] == model and r.headers["x-deja-cache"] == "miss", dict(r.headers)
            again = create(model=model, messages=[{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": question}])
            assert again.headers["x-deja-cache"] == "exact", dict(again.headers)
            assert again.parse().choices[0].message.content == c.choices[0].message.content

        for include_usage in (False, True):
            @check(f"{tag}: streamed completion, include_usage={include_usage}")
            def _(model=model, upstream=upstream, tag=tag, include_usage=include_usage):
                question = f"Tell me a short story, usage {include_usage}, {tag}"
                extra = {"stream_options": {"include_usage": True}} if include_usage else {}
                headers, chunks = stream(model=model, messages=[{"role": "user", "content": question}], **extra)
                assert headers["x-deja-model"] == model, dict(headers)
                text, finishes = assembled(chunks)
                assert text == f"[{upstream}] Simulated answer to: {question}", text
                assert finishes == ["stop"], finishes
                assert all(ch.model == upstream for ch in chunks), {ch.model for ch in chunks}
                assert len({ch.id for ch in chunks}) == 1, {ch.id for ch in chunks}
                with_usage = [ch for ch in chunks if ch.usage is not None]
                if include_usage:
                    assert len(with_usage) == 1 and with_usage[0] is chunks[-1], chunks
                    u = chunks[-1].usage
                    assert chunks[-1].choices == [] and u.completion_tokens > 0 and u.prompt_tokens > 0, u
                    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u
                else:
                    assert not with_usage and all(ch.choices for ch in chunks), chunks

        @check(f"{tag}: tool calls, whole and streamed, then the tool's answer")
        def _(model=model, upstream=upstream, tag=tag):
            question = f"Weather in Lisbon? {tag}"
            messages = [{"role": "user", "content": question}]
            c = create(model=model, messages=messages, tools=WEATHER).parse()
            choice = c.choices[0]
            assert choice.finish_reason == "tool_calls", choice
            [call] = choice.message.tool_calls
            assert call.type == "function" and call.function.name == "get_weather" and call.id, call
            assert json.loads(call.function.arguments) == {"query": question}, call.function.arguments
            headers, chunks = stream(model=model, messages=messages, tools=WEATHER, temperature=0.5)
            [streamed] = tool_calls(chunks)
            assert streamed["name"] == "get_weather" and streamed["id"], streamed
            assert json.loads(streamed["arguments"]) == {"query": question}, streamed
            assert assembled(chunks)[1] == ["tool_calls"], chunks
            answer = create(model=model, tools=WEATHER, messages=messages + [
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'},
            ]).parse()
            content = answer.choices[0].message.content
            assert answer.choices[0].finish_reason == "stop" and content.startswith(f"[{upstream}] Tool said:"), content
            assert "clear" in content, content

        @check(f"{tag}: an invalid request is a BadRequestError with the provider's code")
        def _(model=model, upstream=upstream, invalid_code=invalid_code):
            fault(upstream, status(400))
            e = expect_error(openai.BadRequestError, 400, lambda: create(
                model=model, messages=[{"role": "user", "content": "bad request"}]))
            assert e.code == invalid_code and "injected failure" in e.message, (e.code, e.message)

        @check(f"{tag}: a parameter the provider cannot honour is a 400 naming it")
        def _(model=model, param=param, value=value):
            e = expect_error(openai.BadRequestError, 400, lambda: create(
                model=model, messages=[{"role": "user", "content": "refuse me"}], **{param: value}))
            assert e.param == param and param in e.message, (e.param, e.message)

    @check(f"cross-kind ({label}): a rung that cannot honour a parameter is skipped, not called")
    def _():
        r = create(model="claude-first", seed=7, messages=[{"role": "user", "content": f"seeded {label}"}])
        assert r.headers["x-deja-model"] == "gemini-flash" and r.headers["x-deja-attempts"] == "1", dict(r.headers)
        r = create(model="gemini-first", logit_bias={"50256": -100},
                   messages=[{"role": "user", "content": f"biased {label}"}])
        assert r.headers["x-deja-model"] == "gpt-4o", dict(r.headers)

    @check(f"cross-kind ({label}): Anthropic overloaded (529) falls back to Gemini, whole and streamed")
    def _():
        fault(CLAUDE, status(529))
        r = create(model="claude-first", messages=[{"role": "user", "content": f"busy? {label}"}])
        assert r.headers["x-deja-model"] == "gemini-flash" and r.headers["x-deja-attempts"] == "2", dict(r.headers)
        assert r.parse().choices[0].message.content == f"[{GEMINI}] Simulated answer to: busy? {label}"
        fault(CLAUDE, status(529))
        question = f"busy, streamed? {label}"
        headers, chunks = stream(model="claude-first", messages=[{"role": "user", "content": question}])
        assert headers["x-deja-model"] == "gemini-flash", dict(headers)
        assert assembled(chunks) == (f"[{GEMINI}] Simulated answer to: {question}", ["stop"]), chunks

    @check(f"cross-kind ({label}): Gemini 503 and Anthropic 529 fall back to the OpenAI rung")
    def _():
        fault(GEMINI, status(503))
        fault(CLAUDE, status(529))
        r = create(model="gemini-first", messages=[{"role": "user", "content": f"all busy? {label}"}])
        assert r.headers["x-deja-model"] == "gpt-4o" and r.headers["x-deja-attempts"] == "3", dict(r.headers)

    @check(f"cross-kind ({label}): rate limited everywhere is a 503, other failures a 502")
    def _():
        for m in (CLAUDE, GEMINI, "gpt-4o"):
            fault(m, status(429))
        e = expect_error(openai.InternalServerError, 503, lambda: create(
            model="claude-first", messages=[{"role": "user", "content": f"limited {label}"}]))
        assert e.code == "upstream_exhausted", e.body
        fault(CLAUDE, status(529))
        fault(GEMINI, status(503))
        fault("gpt-4o", status(500))
        e = expect_error(openai.InternalServerError, 502, lambda: create(
            model="claude-first", messages=[{"role": "user", "content": f"down {label}"}]))
        assert e.code == "upstream_exhausted" and "claude-sonnet" in e.message and "529" in e.message, e.message

    stream_style("null_in_every_chunk")
