//! Fixtures follow the examples in Anthropic's Messages API reference,
//! its streaming guide and its tool-use guide.

use super::*;
use crate::{ProviderKind, UpstreamEvents};
use deja_api::{ChatCompletion, StreamAssembler};
use serde_json::{json, Value};

fn translate(body: Value) -> Value {
    to_messages_request(&body, "claude-3-5-sonnet-20241022", DEFAULT_MAX_TOKENS).expect("translatable")
}

fn refused(body: Value) -> deja_api::ApiError {
    to_messages_request(&body, "claude", DEFAULT_MAX_TOKENS).expect_err("refused")
}

#[test]
fn the_reference_hello_world_request() {
    let out = translate(json!({
        "model": "sonnet", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, world"}],
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-3-5-sonnet-20241022", "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hello, world"}],
        })
    );
}

#[test]
fn system_and_developer_messages_become_the_system_prompt_and_turns_merge() {
    let out = translate(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": "How are you?"},
            {"role": "assistant", "content": "Bien."},
            {"role": "assistant", "content": [{"type": "text", "text": "Et vous ?"}]},
        ],
        "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 50, "stop": "END", "stream": true,
        "stream_options": {"include_usage": true}, "user": "u-1", "n": 1, "logprobs": false,
        "presence_penalty": 0, "response_format": {"type": "text"}, "seed": null,
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-3-5-sonnet-20241022",
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "How are you?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Bien."}, {"type": "text", "text": "Et vous ?"}]},
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 50, "stop_sequences": ["END"], "stream": true,
            "metadata": {"user_id": "u-1"},
        })
    );
}

#[test]
fn images_become_base64_or_url_sources() {
    let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/ant.jpg"}},
        {"type": "text", "text": "Describe these images."},
    ]}]}));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/ant.jpg"}},
            {"type": "text", "text": "Describe these images."},
        ])
    );
}

#[test]
fn tools_tool_choice_tool_calls_and_tool_results() {
    let schema = json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]});
    let out = translate(json!({
        "model": "m",
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Get the current weather in a given location", "parameters": schema,
        }}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "messages": [
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {"role": "assistant", "content": null, "tool_calls": [{
                "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"},
            }]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"role": "user", "content": "And tomorrow?"},
        ],
    }));
    assert_eq!(
        out["tools"],
        json!([{"name": "get_weather", "description": "Get the current weather in a given location", "input_schema": schema}])
    );
    assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": "What's the weather like in San Francisco?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather", "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "text", "text": "And tomorrow?"},
            ]},
        ])
    );
    for (openai, anthropic) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (json!("required"), json!({"type": "any"})),
    ] {
        let out =
            translate(json!({"model": "m", "tool_choice": openai, "messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(out["tool_choice"], anthropic);
    }
}

#[test]
fn parameters_anthropic_cannot_honour_are_refused_by_name() {
    let ask = |extra: Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("logit_bias", json!({"50256": -100})),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(1)),
        ("seed", json!(7)),
        ("response_format", json!({"type": "json_object"})),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("reasoning_effort", json!("high")),
        ("temperature", json!(1.5)),
    ] {
        let e = refused(ask(json!({ field: value })));
        assert_eq!(e.status(), 400, "{field}");
        assert_eq!(e.param.as_deref(), Some(field), "{field}");
        assert!(e.message.contains(&format!("`{field}`")), "{field}: {}", e.message);
    }
    let e = refused(
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
    );
    assert_eq!(e.param.as_deref(), Some("messages"));
}

#[test]
fn the_reference_response_becomes_a_chat_completion() {
    let body = json!({
        "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "model": "claude-3-5-sonnet-20241022", "role": "assistant",
        "stop_reason": "end_turn", "stop_sequence": null, "type": "message",
        "usage": {"input_tokens": 2095, "output_tokens": 503},
    });
    let out = to_chat_completion(body.to_string().as_bytes(), 1_700_000_000).expect("a message");
    assert_eq!(
        out,
        json!({
            "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "object": "chat.completion", "created": 1_700_000_000,
            "model": "claude-3-5-sonnet-20241022",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi! My name is Claude."},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598},
        })
    );
    let parsed: ChatCompletion = serde_json::from_value(out).expect("an OpenAI completion");
    assert!(parsed.is_complete());
}

#[test]
fn a_tool_use_response_becomes_tool_calls() {
    let body = json!({
        "id": "msg_01Aq9w938a90dw8q", "type": "message", "model": "claude-3-5-sonnet-20241022",
        "stop_reason": "tool_use", "role": "assistant",
        "content": [
            {"type": "text", "text": "I need to use get_weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}},
        ],
        "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 5},
    });
    let out = to_chat_completion(body.to_string().as_bytes(), 1).expect("a message");
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "I need to use get_weather.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("a string")).expect("JSON");
    assert_eq!(args, json!({"location": "San Francisco, CA", "unit": "celsius"}));
    assert_eq!(out["usage"]["prompt_tokens"], 15);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    let parsed: ChatCompletion = serde_json::from_value(out).expect("an OpenAI completion");
    assert!(parsed.is_complete());
    for (stop, finish) in
        [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls")]
    {
        assert_eq!(finish_reason(stop), finish);
    }
}

#[test]
fn error_bodies_name_their_type() {
    let body = br#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#;
    assert_eq!(error_type(body).as_deref(), Some("overloaded_error"));
    assert_eq!(error_type(b"{\"error\": {\"message\": \"openai\"}}"), None);
    assert!(to_chat_completion(body, 1).is_err());
}

/// Frames `events` as Anthropic does, split into `piece`-byte writes.
fn wire(events: &[Value], piece: usize) -> Vec<Vec<u8>> {
    let mut s = String::new();
    for e in events {
        s.push_str(&format!("event: {}\ndata: {}\n\n", e["type"].as_str().expect("typed"), e));
    }
    s.into_bytes().chunks(piece).map(<[u8]>::to_vec).collect()
}

fn translate_stream(events: &[Value], piece: usize) -> Vec<String> {
    let mut up = UpstreamEvents::new(ProviderKind::Anthropic, "claude-test", 1_700_000_000);
    wire(events, piece).iter().flat_map(|c| up.push(c).expect("small events")).collect()
}

fn assemble(out: &[String]) -> ChatCompletion {
    let mut asm = StreamAssembler::new();
    for e in out.iter().filter(|e| *e != "[DONE]") {
        assert!(asm.push(&serde_json::from_str(e).expect("JSON chunk")), "{e}");
    }
    asm.finish().expect("an answer")
}

#[test]
fn the_reference_text_stream_becomes_openai_chunks() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message",
            "role": "assistant", "content": [], "model": "claude-3-5-sonnet-20241022", "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        json!({"type": "message_stop"}),
    ];
    for piece in [1, 7, 4096] {
        let out = translate_stream(&events, piece);
        assert_eq!(out.len(), 6, "start, two deltas, finish, usage, [DONE]: {out:?}");
        assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
        let c = assemble(&out);
        assert_eq!(c.id, "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
        assert_eq!(c.model, "claude-3-5-sonnet-20241022");
        assert_eq!(c.created, 1_700_000_000);
        assert_eq!(c.choices[0].message["content"], "Hello!");
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        let u = c.usage.clone().expect("usage");
        assert_eq!((u.prompt_tokens, u.completion_tokens, u.total_tokens), (25, 15, 40));
        assert!(c.is_complete());
    }
}

#[test]
fn a_tool_use_stream_becomes_tool_call_deltas() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message",
            "role": "assistant", "model": "claude-3-haiku-20240307", "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 2}, "content": [], "stop_reason": null}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay, let's check"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"San Francisco, CA\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}),
        json!({"type": "message_stop"}),
    ];
    let c = assemble(&translate_stream(&events, 11));
    let msg = &c.choices[0].message;
    assert_eq!(msg["content"], "Okay, let's check");
    assert_eq!(msg["tool_calls"][0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(msg["tool_calls"][0]["function"]["arguments"], "{\"location\": \"San Francisco, CA\"}");
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert!(c.is_complete());
}

#[test]
fn an_error_event_becomes_an_openai_error_event() {
    let out = translate_stream(
        &[json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})],
        64,
    );
    let e: Value = serde_json::from_str(&out[0]).expect("JSON");
    assert_eq!(e["error"]["message"], "Overloaded");
    assert_eq!(e["error"]["code"], "overloaded_error");
}

#[test]
fn openai_streams_pass_through() {
    let mut up = UpstreamEvents::new(ProviderKind::OpenAi, "gpt-test", 0);
    assert_eq!(up.push(b"data: {\"a\":1}\n\ndata: [DONE]\n\n").expect("small"), vec!["{\"a\":1}", "[DONE]"]);
}

#[test]
fn usage_fields_may_be_null_missing_or_repeated_cumulatively() {
    // message_start without output_tokens and with null cache counts; a
    // message_delta repeating the input and cache counts, as the current API does.
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_u", "type": "message", "role": "assistant",
            "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 30, "cache_creation_input_tokens": null, "cache_read_input_tokens": null}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10,
                "output_tokens": 3, "service_tier": "standard"}}),
        json!({"type": "message_stop"}),
    ];
    let c = serde_json::to_value(assemble(&translate_stream(&events, 5))).expect("serializable");
    assert_eq!(c["model"], "claude-x");
    assert_eq!(c["usage"]["prompt_tokens"], 40);
    assert_eq!(c["usage"]["completion_tokens"], 3);
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    let whole = json!({"id": "msg_w", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 7, "output_tokens": 2, "cache_creation_input_tokens": null}});
    let c = to_chat_completion(whole.to_string().as_bytes(), 1).expect("a message");
    assert_eq!(c["usage"], json!({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}));
}

/// The prompt-caching guide's pair of calls: the first writes the long
/// system prompt to the cache, the second reads it back.
#[test]
fn cache_reads_are_cached_tokens_and_cache_writes_are_handed_over_beside_the_answer() {
    let message = |usage: Value| {
        json!({"id": "msg_c", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "The book is about..."}], "stop_reason": "end_turn",
            "stop_sequence": null, "usage": usage})
        .to_string()
    };
    let first = message(json!({"input_tokens": 21, "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 0, "output_tokens": 393}));
    let (c, writes) = to_chat_completion_and_cache_writes(first.as_bytes(), 1).expect("a message");
    assert_eq!(writes, 188086);
    // The client sees OpenAI's usage: every prompt token, no cache-write field.
    assert_eq!(c["usage"], json!({"prompt_tokens": 188107, "completion_tokens": 393, "total_tokens": 188500}));
    assert_eq!(to_chat_completion(first.as_bytes(), 1).expect("a message"), c);

    let second = message(json!({"input_tokens": 21, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 188086, "output_tokens": 393,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, "service_tier": "standard"}));
    let (c, writes) = to_chat_completion_and_cache_writes(second.as_bytes(), 1).expect("a message");
    assert_eq!(writes, 0);
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": 188107, "completion_tokens": 393, "total_tokens": 188500,
            "prompt_tokens_details": {"cached_tokens": 188086}})
    );
    let parsed: ChatCompletion = serde_json::from_value(c).expect("an OpenAI completion");
    let u = parsed.usage.expect("usage");
    assert_eq!((u.prompt_tokens, u.cached_tokens()), (188107, 188086));

    // Both may be null or left out.
    for usage in [
        json!({"input_tokens": 7, "output_tokens": 2, "cache_creation_input_tokens": null, "cache_read_input_tokens": null}),
        json!({"input_tokens": 7, "output_tokens": 2}),
    ] {
        let (c, writes) = to_chat_completion_and_cache_writes(message(usage.clone()).as_bytes(), 1).expect("a message");
        assert_eq!(writes, 0, "{usage}");
        assert_eq!(c["usage"], json!({"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}), "{usage}");
    }
}

#[test]
fn hostile_usage_counts_saturate_instead_of_overflowing() {
    let max = u64::MAX;
    let body = json!({"id": "msg_h", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": max, "output_tokens": max, "cache_creation_input_tokens": max,
            "cache_read_input_tokens": max}});
    let (c, writes) = to_chat_completion_and_cache_writes(body.to_string().as_bytes(), 1).expect("a message");
    assert_eq!(writes, max);
    assert_eq!(
        c["usage"],
        json!({"prompt_tokens": max, "completion_tokens": max, "total_tokens": max,
            "prompt_tokens_details": {"cached_tokens": max}})
    );
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_h", "type": "message", "role": "assistant",
            "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": max, "cache_creation_input_tokens": max, "cache_read_input_tokens": 1}}}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": max}}),
        json!({"type": "message_stop"}),
    ];
    let out = translate_stream(&events, 64);
    let usage: Value = serde_json::from_str(&out[out.len() - 2]).expect("the usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], max);
    assert_eq!(usage["usage"]["total_tokens"], max);
}

/// A streamed answer that read part of its prompt from the cache and wrote
/// another part: the counts come on `message_start` and are repeated,
/// cumulatively, on `message_delta`.
#[test]
fn a_stream_reports_cached_tokens_and_hands_over_its_cache_writes() {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
                "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000,
                "output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ];
    for piece in [3, 4096] {
        let mut up = UpstreamEvents::new(ProviderKind::Anthropic, "claude-test", 1);
        let out: Vec<String> = wire(&events, piece).iter().flat_map(|c| up.push(c).expect("small")).collect();
        assert_eq!(up.cache_write_tokens(), 1000);
        let chunk: Value = serde_json::from_str(&out[out.len() - 2]).expect("the usage chunk");
        assert_eq!(
            chunk["usage"],
            json!({"prompt_tokens": 4050, "completion_tokens": 12, "total_tokens": 4062,
                "prompt_tokens_details": {"cached_tokens": 3000}})
        );
        let u = assemble(&out).usage.expect("usage");
        assert_eq!((u.prompt_tokens, u.cached_tokens(), u.cache_write_tokens), (4050, 3000, 0));
    }
    // Other dialects write nothing to a cache Deja knows of.
    let mut up = UpstreamEvents::new(ProviderKind::OpenAi, "gpt-test", 0);
    let _ = up.push(b"data: {\"a\":1}\n\n").expect("small");
    assert_eq!(up.cache_write_tokens(), 0);
}
