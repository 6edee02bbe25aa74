"""The official `anthropic` Python SDK against Deja's Messages door.

check.py calls `run_messages_checks` once the proxy is up. The SDK talks to
`/v1/messages` with its own `x-api-key` header; Deja answers through the chat
pipeline, so each kind of rung (OpenAI, Anthropic, Gemini) serves it and the
cache is shared with chat. Questions carry "Messages door" so no other
check's answer is a semantic match for them.
"""

import anthropic

# (Deja model, what the mock is asked for: its upstream name)
RUNGS = [("gpt-4o", "gpt-4o"), ("claude-sonnet", "claude-sonnet-up"), ("gemini-flash", "gemini-flash-up")]

WEATHER = [{"name": "get_weather", "description": "The weather in a city.",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}]


def expect_error(cls, status, call):
    try:
        call()
    except cls as e:
        assert e.status_code == status, (e.status_code, e.body)
        return e
    raise AssertionError(f"expected {cls.__name__} ({status})")


def run_messages_checks(proxy, client_key, check):
    client = anthropic.Anthropic(base_url=proxy, api_key=client_key, max_retries=0)

    def ask(model, question, **kw):
        return client.messages.with_raw_response.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": question}], **kw)

    for model, upstream in RUNGS:
        @check(f"messages door ({model}): create, then the repeat served from cache")
        def _(model=model, upstream=upstream):
            question = f"Messages door: what does {model} say about refunds?"
            r = ask(model, question, system="Be brief.")
            m = r.parse()
            assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_"), m
            assert [b.type for b in m.content] == ["text"], m.content
            assert m.content[0].text == f"[{upstream}] Simulated answer to: {question}", m.content
            assert m.stop_reason == "end_turn" and m.stop_sequence is None, m
            assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage
            assert r.headers["x-deja-cache"] == "miss" and r.headers["x-deja-model"] == model, dict(r.headers)
            again = ask(model, question, system="Be brief.")
            assert again.headers["x-deja-cache"] == "exact", dict(again.headers)
            assert again.parse().content[0].text == m.content[0].text

        @check(f"messages door ({model}): messages.stream text_stream and get_final_message")
        def _(model=model, upstream=upstream):
            question = f"Messages door: stream a short story from {model}"
            with client.messages.stream(model=model, max_tokens=256,
                                        messages=[{"role": "user", "content": question}]) as stream:
                text = "".join(stream.text_stream)
                final = stream.get_final_message()
            assert text == f"[{upstream}] Simulated answer to: {question}", text
            assert [b.type for b in final.content] == ["text"] and final.content[0].text == text, final
            assert final.stop_reason == "end_turn", final
            assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0, final.usage

    @check("messages door (claude-sonnet): a tool round trip")
    def _():
        question = "Messages door: weather in Tallinn?"
        messages = [{"role": "user", "content": question}]
        m = client.messages.create(model="claude-sonnet", max_tokens=256, tools=WEATHER, messages=messages)
        assert m.stop_reason == "tool_use", m
        [call] = [b for b in m.content if b.type == "tool_use"]
        assert call.name == "get_weather" and call.id and call.input == {"query": question}, call
        answer = client.messages.create(model="claude-sonnet", max_tokens=256, tools=WEATHER, messages=messages + [
            {"role": "assistant", "content": m.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": '{"sky": "clear"}'}]},
        ])
        text = answer.content[0].text
        assert answer.stop_reason == "end_turn" and text.startswith("[claude-sonnet-up] Tool said:"), answer
        assert "clear" in text, text

    @check("messages door (gpt-4o): a streamed tool call assembles to its input")
    def _():
        question = "Messages door: weather in Riga?"
        with client.messages.stream(model="gpt-4o", max_tokens=256, tools=WEATHER,
                                    tool_choice={"type": "any"},
                                    messages=[{"role": "user", "content": question}]) as stream:
            final = stream.get_final_message()
        [call] = [b for b in final.content if b.type == "tool_use"]
        assert call.name == "get_weather" and call.input == {"query": question}, call
        assert final.stop_reason == "tool_use", final

    @check("messages door: count_tokens")
    def _():
        n = client.messages.count_tokens(model="gpt-4o", system="You are a scientist",
                                         messages=[{"role": "user", "content": "Hello, Claude"}])
        assert n.input_tokens > 0, n

    @check("messages door: a bad key raises AuthenticationError")
    def _():
        bad = anthropic.Anthropic(base_url=proxy, api_key="sk-wrong", max_retries=0)
        e = expect_error(anthropic.AuthenticationError, 401, lambda: bad.messages.create(
            model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": "x"}]))
        assert e.body["type"] == "error" and e.body["error"]["type"] == "authentication_error", e.body

    @check("messages door: an unknown model raises NotFoundError")
    def _():
        e = expect_error(anthropic.NotFoundError, 404, lambda: client.messages.create(
            model="claude-99", max_tokens=16, messages=[{"role": "user", "content": "x"}]))
        assert e.body["error"]["type"] == "not_found_error", e.body

    @check("messages door: server tools and thinking raise BadRequestError naming them")
    def _():
        e = expect_error(anthropic.BadRequestError, 400, lambda: client.messages.create(
            model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": "search"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}]))
        assert "tools[0].type" in e.body["error"]["message"], e.body
        e = expect_error(anthropic.BadRequestError, 400, lambda: client.messages.create(
            model="gpt-4o", max_tokens=2048, messages=[{"role": "user", "content": "think"}],
            thinking={"type": "enabled", "budget_tokens": 1024}))
        assert "thinking" in e.body["error"]["message"], e.body
