use super::*;
use crate::replay::completion_to_sse;
use crate::sse::SseParser;

fn completion(message: Value, finish: &str) -> ChatCompletion {
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    }))
    .expect("valid completion")
}

fn round_trip(c: &ChatCompletion, include_usage: bool) -> (ChatCompletion, Vec<String>) {
    let mut parser = SseParser::new();
    let mut asm = StreamAssembler::new();
    let mut events = Vec::new();
    for frame in completion_to_sse(c, include_usage) {
        for ev in parser.push(&frame).expect("events are small") {
            if ev != "[DONE]" {
                let v: Value = serde_json::from_str(&ev).expect("chunk is json");
                assert!(asm.push(&v));
            }
            events.push(ev);
        }
    }
    (asm.finish().expect("choices"), events)
}

#[test]
fn text_answers_survive_replay_and_reassembly() {
    let long = "word ".repeat(40);
    let c = completion(json!({"role": "assistant", "content": long}), "stop");
    let (back, events) = round_trip(&c, true);
    assert_eq!(back.choices, c.choices);
    assert_eq!(back.usage, c.usage);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(events.len() > 5, "content is split into several chunks");
}

#[test]
fn tool_calls_survive_replay_and_reassembly() {
    let msg = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "other", "arguments": "{}"}}
    ]});
    let c = completion(msg, "tool_calls");
    let (back, _) = round_trip(&c, false);
    assert_eq!(back.choices, c.choices);
}

#[test]
fn usage_chunk_only_when_asked() {
    let c = completion(json!({"role": "assistant", "content": "hi"}), "stop");
    let (_, events) = round_trip(&c, false);
    assert!(events.iter().all(|e| !e.contains("\"usage\"")));
}

#[test]
fn fragments_of_tool_arguments_are_concatenated() {
    let mut asm = StreamAssembler::new();
    asm.push(&json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]}));
    asm.push(
        &json!({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}),
    );
    asm.push(&json!({"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}));
    let c = asm.finish().expect("choice");
    assert_eq!(c.choices[0].message["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert!(c.is_complete());
}

fn assemble(chunks: &[Value]) -> ChatCompletion {
    let mut asm = StreamAssembler::new();
    for c in chunks {
        asm.push(c);
    }
    asm.finish().expect("choice")
}

#[test]
fn malformed_tool_call_deltas_do_not_assemble_into_a_complete_answer() {
    let end = json!({"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]});
    let cases = [
        // No name is ever sent.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"arguments":"{}"}}]}}]}),
        // Arguments that are not a string.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":{"a":1}}}]}}]}),
        // A name that is not a string.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":7,"arguments":"{}"}}]}}]}),
        // No id.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"type":"function","function":{"name":"f","arguments":"{}"}}]}}]}),
        // Not a function.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"other","function":{"name":"f","arguments":"{}"}}]}}]}),
        // Tool calls that are not an array.
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}}}]}),
    ];
    for case in cases {
        let c = assemble(&[case.clone(), end.clone()]);
        assert!(!c.is_complete(), "{case} assembled into {:?}", c.choices[0].message);
    }
    let stop = json!({"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    let odd_content = json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":{"text":"hi"}}}]});
    let c = assemble(&[odd_content, stop.clone()]);
    assert!(!c.is_complete(), "content that is not a string: {:?}", c.choices[0].message);
    let no_calls = json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":null}}]});
    assert!(!assemble(&[no_calls, end]).is_complete(), "`tool_calls` finish without calls");
}

#[test]
fn a_streamed_legacy_function_call_survives_reassembly() {
    let c = assemble(&[
        json!({"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":null,"function_call":{"name":"f","arguments":""}}}]}),
        json!({"id":"x","choices":[{"index":0,"delta":{"function_call":{"arguments":"{\"a\":1}"}}}]}),
        json!({"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"function_call"}]}),
    ]);
    assert_eq!(c.choices[0].message["function_call"], json!({"name": "f", "arguments": "{\"a\":1}"}));
    assert!(c.is_complete());
    let (back, _) = round_trip(&c, false);
    assert_eq!(back.choices, c.choices);
}
