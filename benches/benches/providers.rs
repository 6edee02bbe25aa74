//! What translating to and from Anthropic's and Gemini's APIs costs, against
//! the OpenAI path measured in the same run. Each group does what the
//! request path does for one attempt:
//!
//! - request: the OpenAI body as sent (serialised as is) vs. translated to a
//!   Messages / `GenerateContentRequest` body and serialised;
//! - response: a whole answer parsed as a `ChatCompletion` (every path does
//!   that) vs. translated from a Message / `GenerateContentResponse` first;
//! - stream: the same 40-event answer through `UpstreamEvents` (SSE parsing,
//!   plus the translator for Anthropic and Gemini), one network read per event.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use deja_providers::{anthropic, gemini, ProviderKind, UpstreamEvents};
use serde_json::{json, Value};

/// A support question with a system prompt, two earlier turns and one tool.
fn request() -> Value {
    json!({
        "model": "auto", "temperature": 0.2, "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "You are the support assistant of Acme Inc. Answer briefly and politely."},
            {"role": "user", "content": "Hi, I have a question about my order."},
            {"role": "assistant", "content": "Of course, what would you like to know?"},
            {"role": "user", "content": "When will order number 4242 arrive? I ordered it last Tuesday."},
        ],
        "tools": [{"type": "function", "function": {"name": "track_order", "description": "Where an order is.",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}}}],
    })
}

/// The answer's text, in the 40 pieces a stream sends it in.
fn pieces() -> Vec<String> {
    let words: Vec<String> = (0..80).map(|i| format!("word{i} ")).collect();
    words.chunks(2).map(|p| p.concat()).collect()
}

fn text() -> String {
    pieces().concat()
}

fn openai_whole() -> Vec<u8> {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text()}, "logprobs": null,
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 80, "total_tokens": 140}})
    .to_string()
    .into_bytes()
}

fn anthropic_whole() -> Vec<u8> {
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": text()}], "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 60, "output_tokens": 80, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}})
    .to_string()
    .into_bytes()
}

fn gemini_whole() -> Vec<u8> {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": text()}]}, "finishReason": "STOP",
            "index": 0}],
        "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 80, "totalTokenCount": 140},
        "modelVersion": "m", "responseId": "r1"})
    .to_string()
    .into_bytes()
}

/// Each provider's stream of the same answer, one network read per event.
fn openai_stream() -> Vec<Vec<u8>> {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {c}\n\n").into_bytes()
    };
    let mut out = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    out.extend(pieces().into_iter().map(|p| chunk(json!({"content": p}), Value::Null)));
    out.push(chunk(json!({}), json!("stop")));
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

fn anthropic_stream() -> Vec<Vec<u8>> {
    let event = |e: Value| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")).into_bytes();
    let mut out = vec![
        event(json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "content": [], "model": "m", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 60, "output_tokens": 1}}})),
        event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
    ];
    out.extend(pieces().into_iter().map(|p| {
        event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))
    }));
    out.push(event(json!({"type": "content_block_stop", "index": 0})));
    out.push(event(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
        "usage": {"output_tokens": 80}})));
    out.push(event(json!({"type": "message_stop"})));
    out
}

fn gemini_stream() -> Vec<Vec<u8>> {
    let pieces = pieces();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut candidate = json!({"content": {"role": "model", "parts": [{"text": p}]}, "index": 0});
            if i == last {
                candidate["finishReason"] = json!("STOP");
            }
            let e = json!({"candidates": [candidate], "modelVersion": "m", "responseId": "r1",
                "usageMetadata": {"promptTokenCount": 60, "candidatesTokenCount": 2 * (i + 1),
                    "totalTokenCount": 60 + 2 * (i + 1)}});
            format!("data: {e}\r\n\r\n").into_bytes()
        })
        .collect()
}

fn translation(c: &mut Criterion) {
    let body = request();
    let mut g = c.benchmark_group("request");
    g.bench_function("openai", |b| b.iter(|| black_box(&body).to_string()));
    g.bench_function("anthropic", |b| {
        b.iter(|| anthropic::to_messages_request(black_box(&body), "claude", 4096).map(|v| v.to_string()))
    });
    g.bench_function("gemini", |b| b.iter(|| gemini::to_generate_request(black_box(&body)).map(|v| v.to_string())));
    g.finish();

    let parse = |raw: &[u8]| serde_json::from_slice::<deja_api::ChatCompletion>(raw).map(|c| c.choices.len());
    let mut g = c.benchmark_group("response");
    let raw = openai_whole();
    g.bench_function("openai", |b| b.iter(|| parse(black_box(&raw))));
    let raw = anthropic_whole();
    g.bench_function("anthropic", |b| {
        b.iter(|| anthropic::to_chat_completion(black_box(&raw), 1).map(|v| parse(v.to_string().as_bytes())))
    });
    let raw = gemini_whole();
    g.bench_function("gemini", |b| {
        b.iter(|| gemini::to_chat_completion(black_box(&raw), "m", 1).map(|v| parse(v.to_string().as_bytes())))
    });
    g.finish();

    let mut g = c.benchmark_group("stream");
    for (kind, reads) in [
        (ProviderKind::OpenAi, openai_stream()),
        (ProviderKind::Anthropic, anthropic_stream()),
        (ProviderKind::Gemini, gemini_stream()),
    ] {
        g.bench_with_input(BenchmarkId::from_parameter(kind.as_str()), &reads, |b, reads| {
            b.iter(|| {
                let mut events = UpstreamEvents::new(kind, "m", 1);
                let mut n = 0;
                for read in reads {
                    n += events.push(black_box(read)).map_or(0, |e| e.len());
                }
                assert!(n >= 42, "{kind:?}: {n} events");
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, translation);
criterion_main!(benches);
