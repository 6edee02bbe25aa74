use super::{completion, echo_of};
use crate::responses::{answer, shaper, Echo};
use crate::Event;
use serde_json::{json, Value};

const ID: &str = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT";

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": ID, "object": "chat.completion.chunk", "created": 1_741_569_952u64, "model": "gpt-4o-2024-08-06",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

fn usage_chunk() -> Value {
    json!({"id": ID, "object": "chat.completion.chunk", "created": 1_741_569_952u64, "model": "gpt-4o-2024-08-06",
           "choices": [], "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}})
}

/// Every event the shaper writes for these chunks and the stream's end.
fn run(echo: Echo, chunks: &[Value]) -> Vec<Event> {
    let mut s = shaper(echo);
    let mut events: Vec<Event> = chunks.iter().flat_map(|c| s.chunk(c)).collect();
    events.extend(s.end());
    // Nothing follows the terminal event.
    assert!(s.chunk(&chunks.first().cloned().unwrap_or_default()).is_empty());
    assert!(s.end().is_empty());
    events
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.unwrap_or("")).collect()
}

/// Each event's `type` is its name and sequence numbers count up from 0.
fn check_framing(events: &[Event]) {
    for (n, e) in events.iter().enumerate() {
        assert_eq!(e.data["type"], e.name.unwrap_or(""), "{:?}", e.data);
        assert_eq!(e.data["sequence_number"], n, "{:?}", e.data);
    }
}

fn last_response(events: &[Event]) -> &Value {
    &events.last().expect("events").data["response"]
}

#[test]
fn a_text_stream_is_the_reference_event_sequence() {
    let text = ["Hel", "lo ", "there!"];
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    chunks.extend(text.iter().map(|t| chunk(json!({"content": t}), Value::Null)));
    chunks.push(chunk(json!({}), json!("stop")));
    chunks.push(usage_chunk());
    let events = run(echo_of(json!({"model": "gpt-4o", "input": "hi", "instructions": "Be brief."})), &chunks);
    check_framing(&events);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0].data["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["instructions"], "Be brief.");
    assert_eq!(created["id"], "resp_B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    let item_id = "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT";
    assert_eq!(
        events[2].data["item"],
        json!({"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(events[3].data["part"], json!({"type": "output_text", "text": "", "annotations": []}));
    let deltas: String = events
        .iter()
        .filter(|e| e.name == Some("response.output_text.delta"))
        .inspect(|e| {
            assert_eq!(e.data["item_id"], item_id);
            assert_eq!((e.data["output_index"].as_u64(), e.data["content_index"].as_u64()), (Some(0), Some(0)));
            assert_eq!(e.data["logprobs"], json!([]));
        })
        .map(|e| e.data["delta"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(deltas, "Hello there!");
    assert_eq!(events[7].data["text"], "Hello there!");
    assert_eq!(events[8].data["part"]["text"], "Hello there!");
    assert_eq!(events[9].data["item"]["status"], "completed");
    let done = last_response(&events);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["input_tokens"], 19);
    assert_eq!(done["usage"]["output_tokens"], 10);
    assert_eq!(done["usage"]["total_tokens"], 29);
    // The stream ends on the response the whole answer would have been.
    let whole = answer(
        &echo_of(json!({"model": "gpt-4o", "input": "hi", "instructions": "Be brief."})),
        &completion(json!({"role": "assistant", "content": "Hello there!"}), "stop"),
    );
    assert_eq!(done["output"], whole["output"]);
    assert_eq!(done["id"], whole["id"]);
}

#[test]
fn tool_calls_stream_their_arguments() {
    // OpenAI's chat stream: the first delta of a call names it, later ones carry arguments.
    let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut c = json!({"index": index, "function": {"arguments": args}});
        if let (Some(id), Some(name)) = (id, name) {
            c["id"] = json!(id);
            c["type"] = json!("function");
            c["function"]["name"] = json!(name);
        }
        chunk(json!({"tool_calls": [c]}), Value::Null)
    };
    let chunks = vec![
        chunk(json!({"role": "assistant", "content": null}), Value::Null),
        call(0, Some("call_a"), Some("get_weather"), ""),
        call(0, None, None, "{\"city\":"),
        call(0, None, None, "\"Paris\"}"),
        call(1, Some("call_b"), Some("get_time"), "{}"),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(),
    ];
    let events = run(Echo::default(), &chunks);
    check_framing(&events);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        events[2].data["item"],
        json!({"type": "function_call", "id": "fc_B9MBs8CjcvOU2jLn4n570S5qMJKcT_0", "call_id": "call_a",
               "name": "get_weather", "arguments": "", "status": "in_progress"})
    );
    assert_eq!(events[7].data["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[8].data["item"]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[8].data["item"]["status"], "completed");
    assert_eq!(events[6].data["output_index"], 1);
    let whole = answer(
        &Echo::default(),
        &completion(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]}),
            "tool_calls",
        ),
    );
    assert_eq!(last_response(&events)["output"], whole["output"]);
}

#[test]
fn text_before_a_call_is_closed_when_the_call_begins() {
    let chunks = vec![
        chunk(json!({"role": "assistant", "content": "Checking."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": "{}"}}]}),
            Value::Null,
        ),
        // Usage on the finish chunk itself, as some providers send it.
        {
            let mut c = chunk(json!({}), json!("tool_calls"));
            c["usage"] = json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8});
            c
        },
    ];
    let events = run(Echo::default(), &chunks);
    check_framing(&events);
    let names = names(&events);
    let message_done = names.iter().position(|n| *n == "response.output_item.done").expect("message done");
    let call_added = names.iter().rposition(|n| *n == "response.output_item.added").expect("call added");
    assert!(message_done < call_added, "{names:?}");
    assert_eq!(events[message_done].data["item"]["type"], "message");
    let done = last_response(&events);
    assert_eq!(done["output"].as_array().map(Vec::len), Some(2));
    assert_eq!(done["usage"]["total_tokens"], 8);
}

#[test]
fn a_length_finish_ends_with_response_incomplete() {
    let chunks =
        vec![chunk(json!({"role": "assistant", "content": "Once"}), Value::Null), chunk(json!({}), json!("length"))];
    let events = run(Echo::default(), &chunks);
    check_framing(&events);
    assert_eq!(names(&events).last(), Some(&"response.incomplete"));
    let done = last_response(&events);
    assert_eq!(done["status"], "incomplete");
    assert_eq!(done["incomplete_details"], json!({"reason": "max_output_tokens"}));
    assert_eq!(done["output"][0]["status"], "incomplete");
    // No usage chunk: the response says so with null.
    assert_eq!(done["usage"], Value::Null);
}

#[test]
fn an_error_mid_stream_ends_with_response_failed() {
    let chunks = vec![
        chunk(json!({"role": "assistant", "content": "Hal"}), Value::Null),
        json!({"error": {"message": "upstream closed the stream", "type": "upstream_error", "param": null,
                         "code": "stream_interrupted"}}),
    ];
    let events = run(Echo::default(), &chunks);
    check_framing(&events);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.failed",
        ]
    );
    let failed = last_response(&events);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], json!({"code": "server_error", "message": "upstream closed the stream"}));
    assert_eq!(failed["output"][0]["content"][0]["text"], "Hal");
    assert_eq!(failed["output"][0]["status"], "incomplete");
}

#[test]
fn an_empty_stream_fails_and_a_refusal_streams_as_refusal_events() {
    let events = run(Echo::default(), &[]);
    check_framing(&events);
    assert_eq!(names(&events), ["response.created", "response.in_progress", "response.failed"]);

    let chunks = vec![
        chunk(json!({"role": "assistant", "content": null, "refusal": "I can't"}), Value::Null),
        chunk(json!({"refusal": " help."}), Value::Null),
        chunk(json!({}), json!("stop")),
    ];
    let events = run(Echo::default(), &chunks);
    check_framing(&events);
    let names = names(&events);
    assert!(names.contains(&"response.refusal.delta") && names.contains(&"response.refusal.done"), "{names:?}");
    let done = last_response(&events);
    assert_eq!(done["output"][0]["content"], json!([{"type": "refusal", "refusal": "I can't help."}]));
}

#[test]
fn events_are_framed_with_their_name() {
    let events = run(Echo::default(), &[chunk(json!({"content": "x"}), json!("stop"))]);
    let frame = events[0].frame();
    let text = std::str::from_utf8(&frame).expect("utf-8");
    assert!(text.starts_with("event: response.created\ndata: {"), "{text}");
    assert!(text.ends_with("}\n\n"), "{text}");
}

#[test]
fn a_chat_stream_cut_before_its_finish_reason_fails_rather_than_completes() {
    let chunks = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
    ];
    let events = run(echo_of(json!({"model": "gpt-4o", "input": "hi"})), &chunks);
    check_framing(&events);
    assert_eq!(names(&events).last(), Some(&"response.failed"));
    assert_eq!(last_response(&events)["status"], "failed");
    assert!(!names(&events).contains(&"response.completed"));
}
