"""The official SDK's `client.responses` against Deja's /v1/responses.

check.py calls `run_responses_checks` with its client, its `check` decorator,
its `mock` helper (the simulated upstream's control API) and `entries` (the
store's entry count). Deja answers a
Responses request through the chat pipeline, so these checks cover what the
SDK itself relies on: the `response` object (`output_text`, usage, ids), the
event stream as the SDK's stream helper accumulates it, a function call round
trip, a JSON schema, cache hits, a stream cut mid-answer, and the 400s for
what needs state Deja does not keep.

The questions are worded unlike check.py's own, and the tool described
differently from providers.py's, so the semantic cache never serves one of
them an earlier answer.
"""

import json
import time

import openai

import providers

WEATHER = [{
    "type": "function", "name": "get_weather", "description": "Current conditions for a place.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}]


def run_responses_checks(client, check, mock, entries):
    upstream_calls = lambda: mock("/_mock/calls")["total"]  # noqa: E731

    def raw(**kw):
        return client.responses.with_raw_response.create(**kw)

    @check("responses: plain, then the same request an exact hit with the same id")
    def _():
        question = "Which planet in our solar system has the most moons?"
        r = raw(model="auto", input=question, instructions="Be brief.", temperature=0.2)
        resp = r.parse()
        assert r.headers["x-deja-cache"] == "miss", dict(r.headers)
        assert resp.object == "response" and resp.status == "completed", resp
        assert resp.id.startswith("resp_"), resp.id
        assert resp.output_text.endswith(question), resp.output_text
        assert resp.output[0].type == "message" and resp.output[0].role == "assistant", resp.output
        assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0, resp.usage
        assert resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens, resp.usage
        assert resp.instructions == "Be brief." and resp.temperature == 0.2, resp
        before = upstream_calls()
        again = raw(model="auto", input=question, instructions="Be brief.", temperature=0.2)
        assert again.headers["x-deja-cache"] == "exact", dict(again.headers)
        assert again.parse().id == resp.id and again.parse().output_text == resp.output_text
        assert upstream_calls() == before, "a hit calls no upstream"

    @check("responses: a chat request, then the same question through /v1/responses, is an exact hit")
    def _():
        question = "How tall is Mount Kilimanjaro in metres?"
        c = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": question}])
        r = raw(model="auto", input=question)
        assert r.headers["x-deja-cache"] == "exact", dict(r.headers)
        assert r.parse().output_text == c.choices[0].message.content

    @check("responses: streamed with the SDK's stream helper, then replayed from cache")
    def _():
        question = "Describe the yearly migration of arctic terns"
        stored_before = entries()
        for expected in ("miss", "exact"):
            with client.responses.with_streaming_response.create(model="auto", input=question, stream=True) as r:
                assert r.headers["x-deja-cache"] == expected, dict(r.headers)
                assert r.headers["content-type"].startswith("text/event-stream"), dict(r.headers)
                events = list(r.parse())
            types = [e.type for e in events]
            assert types[:2] == ["response.created", "response.in_progress"], types
            assert types[-1] == "response.completed", types
            assert [e.sequence_number for e in events] == list(range(len(events))), types
            text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            assert text.endswith(question), text
            assert events[-1].response.output_text == text
            assert events[-1].response.usage.total_tokens > 0, events[-1].response.usage
            if expected == "miss":
                # The entry is written just after the stream ends: wait for it, not a guess.
                deadline = time.monotonic() + 5
                while entries() <= stored_before:
                    assert time.monotonic() < deadline, "the streamed answer was never stored"
                    time.sleep(0.02)
        with client.responses.stream(model="auto", input=question) as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
        assert final.status == "completed" and final.output_text == "".join(deltas), final
        assert final.output_text.endswith(question), final.output_text

    @check("responses: function call, its output sent back, then the final answer (Anthropic-kind rung)")
    def _():
        question = "Weather in Reykjavik right now?"
        first = client.responses.create(model="claude-sonnet", input=question, tools=WEATHER)
        [call] = [o for o in first.output if o.type == "function_call"]
        assert call.name == "get_weather" and call.call_id and call.status == "completed", call
        assert json.loads(call.arguments) == {"query": question}, call.arguments
        assert first.output_text == "", first.output_text
        turns = [{"role": "user", "content": question}] + first.output + [
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}]
        final = client.responses.create(model="claude-sonnet", input=turns, tools=WEATHER)
        assert final.output_text.startswith(f"[{providers.CLAUDE}] Tool said:"), final.output_text
        assert "clear" in final.output_text, final.output_text

    @check("responses: a streamed function call through the stream helper (Gemini-kind rung)")
    def _():
        question = "Weather in Nairobi right now?"
        with client.responses.stream(model="gemini-flash", input=question, tools=WEATHER) as stream:
            arg_deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
            final = stream.get_final_response()
        [call] = [o for o in final.output if o.type == "function_call"]
        assert json.loads(call.arguments) == {"query": question} == json.loads("".join(arg_deltas)), call

    @check("responses: a json_schema format is accepted, echoed and keyed")
    def _():
        fmt = {"type": "json_schema", "name": "city", "strict": True, "schema": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
            "additionalProperties": False}}
        question = "Name the capital of Iceland as JSON"
        r = raw(model="auto", input=question, text={"format": fmt})
        resp = r.parse()
        assert resp.status == "completed" and resp.text.format.type == "json_schema", resp.text
        assert resp.text.format.name == "city", resp.text
        assert r.headers["x-deja-cache"] == "miss", dict(r.headers)
        assert raw(model="auto", input=question, text={"format": fmt}).headers["x-deja-cache"] == "exact"
        # Without the format it is another request, not this answer.
        assert raw(model="auto", input=question).headers["x-deja-cache"] != "exact"

    @check("responses: max_output_tokens cut short is incomplete")
    def _():
        resp = client.responses.create(model="auto", input="Recite a long poem about autumn leaves", max_output_tokens=3)
        assert resp.status == "incomplete", resp.status
        assert resp.incomplete_details.reason == "max_output_tokens", resp.incomplete_details

    @check("responses: a stream cut mid-answer ends with response.failed")
    def _():
        mock("/_mock/faults", {"model": "glm-4-plus", "faults": [{"kind": "cut_after", "chunks": 2}]})
        events = list(client.responses.create(model="auto", input="Explain how a suspension bridge carries its load", stream=True))
        types = [e.type for e in events]
        assert types[-1] == "response.failed" and "response.completed" not in types, types
        assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"

    @check("responses: server-side state and built-in tools are a BadRequestError naming the field")
    def _():
        for kw, param in [({"previous_response_id": "resp_123"}, "previous_response_id"),
                          ({"background": True}, "background"),
                          ({"tools": [{"type": "web_search"}]}, "tools[0].type")]:
            try:
                client.responses.create(model="auto", input="This one is refused before any model sees it", **kw)
                raise AssertionError(f"expected BadRequestError for {param}")
            except openai.BadRequestError as e:
                assert e.param == param and e.code is None, (e.param, e.body)
        try:
            client.responses.retrieve("resp_123")
            raise AssertionError("expected NotFoundError")
        except openai.NotFoundError:
            pass
