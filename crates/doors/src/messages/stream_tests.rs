//! Event sequences as Anthropic's streaming guide shows them, and a stream
//! rebuilt the way the SDKs rebuild it equals the whole answer.

use super::*;
use crate::Event;
use serde_json::{json, Value};

fn echo() -> Echo {
    Echo { model: "claude-sonnet-4-5".into(), stop_sequences: Vec::new(), input_tokens: 7 }
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    })
}

fn usage_chunk() -> Value {
    json!({"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
           "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40}})
}

fn run(chunks: &[Value]) -> Vec<Event> {
    let mut s = shaper(echo());
    let mut events: Vec<Event> = chunks.iter().flat_map(|c| s.chunk(c)).collect();
    events.extend(s.end());
    events
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.name.unwrap_or("(none)")).collect()
}

fn text_chunks() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hello"}), None),
        chunk(json!({"content": "!"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
    ]
}

#[test]
fn a_text_stream_is_the_reference_event_sequence() {
    let events = run(&text_chunks());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
    assert_eq!(
        data[0],
        &json!({"type": "message_start", "message": {
            "id": "msg_s1", "type": "message", "role": "assistant", "model": "gpt-4o", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 7, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }})
    );
    assert_eq!(
        data[1],
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    );
    assert_eq!(
        data[2],
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
    );
    assert_eq!(data[4], &json!({"type": "content_block_stop", "index": 0}));
    assert_eq!(
        data[5],
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"input_tokens": 25, "output_tokens": 15, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0}})
    );
    assert_eq!(data[6], &json!({"type": "message_stop"}));
}

#[test]
fn events_are_framed_with_their_names() {
    let events = run(&text_chunks());
    let frame = events.last().expect("events").frame();
    assert_eq!(&frame[..], b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

fn tool_chunks() -> Vec<Value> {
    vec![
        chunk(json!({"role": "assistant", "content": null}), None),
        chunk(json!({"content": "Checking."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\":"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": " \"Paris\"}"}}]}), None),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                   "function": {"name": "get_time", "arguments": "{}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
    ]
}

#[test]
fn tool_calls_stream_as_tool_use_blocks_with_input_json_deltas() {
    let events = run(&tool_chunks());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[4].data,
        json!({"type": "content_block_start", "index": 1,
               "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}}})
    );
    assert_eq!(
        events[5].data,
        json!({"type": "content_block_delta", "index": 1,
               "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}})
    );
    assert_eq!(events[8].data["index"], 2);
    assert_eq!(events[11].data["delta"]["stop_reason"], "tool_use");
}

#[test]
fn a_chat_stream_that_fails_ends_with_an_error_event_and_nothing_after() {
    let mut s = shaper(echo());
    let mut events: Vec<Event> = text_chunks().iter().take(2).flat_map(|c| s.chunk(c)).collect();
    let failure = json!({"error": {"message": "stream interrupted: reset", "type": "upstream_error",
                                   "param": null, "code": "stream_interrupted"}});
    events.extend(s.chunk(&failure));
    events.extend(s.chunk(&chunk(json!({"content": "late"}), None)));
    events.extend(s.end());
    assert_eq!(names(&events), ["message_start", "content_block_start", "content_block_delta", "error"]);
    assert_eq!(
        events[3].data,
        json!({"type": "error", "error": {"type": "api_error", "message": "stream interrupted: reset"}})
    );
    // An Anthropic upstream's own type, carried as the code, is kept.
    let mut s = shaper(echo());
    let overloaded = json!({"error": {"message": "Overloaded", "type": "upstream_error", "code": "overloaded_error"}});
    assert_eq!(s.chunk(&overloaded)[0].data["error"]["type"], "overloaded_error");
    assert!(s.end().is_empty());
}

#[test]
fn a_chat_stream_cut_before_its_finish_reason_is_an_error() {
    let events = run(&text_chunks()[..3]);
    assert_eq!(names(&events).last(), Some(&"error"));
    assert!(!names(&events).contains(&"message_stop"));
    assert_eq!(names(&run(&[])), ["error"]);
}

#[test]
fn usage_on_the_final_content_chunk_and_no_usage_at_all_are_both_read() {
    let mut last = chunk(json!({"content": "Hi"}), Some("length"));
    last["usage"] = json!({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4});
    let events = run(&[chunk(json!({"role": "assistant", "content": ""}), None), last]);
    let delta = &events[events.len() - 2].data;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 1);
    let mut null_usage = chunk(json!({}), Some("stop"));
    null_usage["usage"] = Value::Null;
    let events = run(&[chunk(json!({"content": "Hi"}), None), null_usage]);
    assert_eq!(events[events.len() - 2].data["usage"], json!({"output_tokens": 0}));
}

/// Rebuilds a message from its events as Anthropic's SDKs do.
fn accumulate(events: &[Event]) -> Value {
    let mut message = Value::Null;
    let mut json_bufs: Vec<String> = Vec::new();
    for e in events {
        let d = &e.data;
        assert_eq!(e.name, d["type"].as_str(), "an event's name is its type");
        match e.name {
            Some("message_start") => message = d["message"].clone(),
            Some("content_block_start") => {
                let content = message["content"].as_array_mut().expect("content");
                assert_eq!(d["index"].as_u64(), Some(content.len() as u64), "blocks are numbered in order");
                content.push(d["content_block"].clone());
                json_bufs.push(String::new());
            }
            Some("content_block_delta") => {
                let i = d["index"].as_u64().expect("index") as usize;
                match d["delta"]["type"].as_str() {
                    Some("text_delta") => {
                        let text = format!(
                            "{}{}",
                            message["content"][i]["text"].as_str().unwrap_or(""),
                            d["delta"]["text"].as_str().unwrap_or("")
                        );
                        message["content"][i]["text"] = json!(text);
                    }
                    Some("input_json_delta") => {
                        json_bufs[i].push_str(d["delta"]["partial_json"].as_str().unwrap_or(""))
                    }
                    other => panic!("unexpected delta {other:?}"),
                }
            }
            Some("content_block_stop") => {
                let i = d["index"].as_u64().expect("index") as usize;
                if !json_bufs[i].is_empty() {
                    message["content"][i]["input"] = serde_json::from_str(&json_bufs[i]).expect("tool input JSON");
                }
            }
            Some("message_delta") => {
                message["stop_reason"] = d["delta"]["stop_reason"].clone();
                message["stop_sequence"] = d["delta"]["stop_sequence"].clone();
                for (k, v) in d["usage"].as_object().expect("usage") {
                    message["usage"][k] = v.clone();
                }
            }
            Some("message_stop") => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    message
}

#[test]
fn a_rebuilt_stream_equals_the_whole_answer() {
    let whole_text = json!({
        "id": "chatcmpl-s1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40},
    });
    assert_eq!(accumulate(&run(&text_chunks())), answer(&echo(), &whole_text));
    let whole_tools = json!({
        "id": "chatcmpl-s1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]}}],
        "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40},
    });
    assert_eq!(accumulate(&run(&tool_chunks())), answer(&echo(), &whole_tools));
}
