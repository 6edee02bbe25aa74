//! Fixtures follow the examples in Google's Gemini API reference
//! (`generateContent`, `streamGenerateContent`), its function-calling and
//! structured-output guides, and its error reference.

use super::*;
use crate::{ProviderKind, UpstreamEvents};
use deja_api::{ChatCompletion, StreamAssembler};
use serde_json::{json, Value};

fn translate(body: Value) -> Value {
    to_generate_request(&body).expect("translatable")
}

fn refused(body: Value) -> deja_api::ApiError {
    to_generate_request(&body).expect_err("refused")
}

fn ask(extra: Value) -> Value {
    let mut body = json!({"model": "flash", "messages": [{"role": "user", "content": "Hi"}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[test]
fn the_reference_text_request_and_paths() {
    let out = translate(json!({"model": "flash", "messages": [
        {"role": "user", "content": "Explain how AI works in a few words"}]}));
    assert_eq!(
        out,
        json!({"contents": [{"role": "user", "parts": [{"text": "Explain how AI works in a few words"}]}]})
    );
    assert_eq!(path("gemini-2.0-flash", false), "/models/gemini-2.0-flash:generateContent");
    assert_eq!(path("models/gemini-2.0-flash", true), "/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
}

#[test]
fn system_messages_become_the_system_instruction_and_turns_merge() {
    let out = translate(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a cat."},
            {"role": "user", "content": "Hello"},
            {"role": "developer", "content": [{"type": "text", "text": "Your name is Neko."}]},
            {"role": "user", "content": "Who are you?"},
            {"role": "assistant", "content": "Meow."},
            {"role": "assistant", "content": [{"type": "text", "text": "I am Neko."}]},
            {"role": "user", "content": "Again?"},
        ],
        "temperature": 1.5, "top_p": 0.9, "max_completion_tokens": 50, "max_tokens": 10, "stop": ["END"],
        "n": 2, "seed": 7, "presence_penalty": 0.5, "frequency_penalty": 0, "stream": true,
        "stream_options": {"include_usage": true}, "user": "u-1", "logprobs": false,
        "response_format": {"type": "json_object"}, "logit_bias": {},
    }));
    assert_eq!(
        out,
        json!({
            "systemInstruction": {"parts": [{"text": "You are a cat."}, {"text": "Your name is Neko."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}, {"text": "Who are you?"}]},
                {"role": "model", "parts": [{"text": "Meow."}, {"text": "I am Neko."}]},
                {"role": "user", "parts": [{"text": "Again?"}]},
            ],
            "generationConfig": {
                "temperature": 1.5, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["END"],
                "candidateCount": 2, "seed": 7, "presencePenalty": 0.5, "responseMimeType": "application/json",
            },
        })
    );
}

#[test]
fn images_become_inline_data_or_file_data() {
    let out = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "Caption this image."},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?size=2"}},
    ]}]}));
    assert_eq!(
        out["contents"][0]["parts"],
        json!([
            {"text": "Caption this image."},
            {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.PNG?size=2"}},
        ])
    );
    let e = refused(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/image"}}]}]}));
    assert_eq!(e.param.as_deref(), Some("messages"));
}

#[test]
fn tools_tool_choice_tool_calls_and_function_responses() {
    let tools = json!([{"type": "function", "function": {
        "name": "get_current_temperature", "description": "Gets the current temperature for a given location.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "The city name"}},
            "required": ["location"], "additionalProperties": false},
    }}, {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]);
    let out = translate(json!({
        "model": "m", "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_current_temperature"}},
        "messages": [
            {"role": "user", "content": "What's the temperature in London?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"London\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 12, \"unit\": \"C\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": "cloudy"},
        ],
    }));
    assert_eq!(
        out["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_current_temperature", "description": "Gets the current temperature for a given location.",
             "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "The city name"}},
                "required": ["location"]}},
            {"name": "now"},
        ]}])
    );
    assert_eq!(
        out["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_current_temperature"]}})
    );
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [{"text": "What's the temperature in London?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_current_temperature", "response": {"temperature": 12, "unit": "C"}}},
                {"functionResponse": {"name": "get_current_temperature", "response": {"content": "cloudy"}}},
            ]},
        ])
    );
    for (choice, config) in
        [("auto", json!({"mode": "AUTO"})), ("none", json!({"mode": "NONE"})), ("required", json!({"mode": "ANY"}))]
    {
        let out = translate(ask(json!({"tools": tools, "tool_choice": choice})));
        assert_eq!(out["toolConfig"]["functionCallingConfig"], config);
    }
    let e = refused(json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}));
    assert!(e.message.contains("nope"), "{}", e.message);
}

#[test]
fn a_simple_json_schema_becomes_the_response_schema_and_others_are_refused() {
    let schema = json!({"type": "object", "properties": {"recipe_name": {"type": "string"},
        "ingredients": {"type": "array", "items": {"type": "string"}}}, "required": ["recipe_name"],
        "additionalProperties": false});
    let out = translate(ask(
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "r", "strict": true, "schema": schema}}}),
    ));
    assert_eq!(out["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(
        out["generationConfig"]["responseSchema"],
        json!({"type": "object", "properties": {"recipe_name": {"type": "string"},
            "ingredients": {"type": "array", "items": {"type": "string"}}}, "required": ["recipe_name"]})
    );
    let complex = json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}});
    let e = refused(ask(
        json!({"response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": complex}}}),
    ));
    assert_eq!(e.param.as_deref(), Some("response_format"));
    assert!(e.message.contains("anyOf"), "{}", e.message);
}

#[test]
fn parameters_gemini_cannot_honour_are_refused_by_name() {
    for (field, value) in [
        ("logit_bias", json!({"50256": -100})),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("parallel_tool_calls", json!(false)),
        ("reasoning_effort", json!("low")),
        ("temperature", json!(2.5)),
        ("stop", json!(["a", "b", "c", "d", "e", "f"])),
    ] {
        let e = refused(ask(json!({ field: value })));
        assert_eq!(e.param.as_deref(), Some(field), "{field}");
        assert_eq!(e.code.as_deref(), Some("unsupported_parameter"));
        assert!(e.message.contains(field) && e.message.contains("Gemini"), "{}", e.message);
    }
    assert_eq!(
        refused(json!({"model": "m", "messages": [{"role": "system", "content": "only"}]})).param.as_deref(),
        Some("messages")
    );
}

/// The response of the reference text example.
const TEXT_RESPONSE: &str = r#"{
  "candidates": [{
    "content": {"parts": [{"text": "AI learns patterns from data to make predictions."}], "role": "model"},
    "finishReason": "STOP", "index": 0,
    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 9, "totalTokenCount": 40, "thoughtsTokenCount": 23,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
  "modelVersion": "gemini-2.5-flash",
  "responseId": "Il0taoSYJ5Cez7"
}"#;

#[test]
fn a_text_response_becomes_a_chat_completion() {
    let c = to_chat_completion(TEXT_RESPONSE.as_bytes(), "fallback", 1_700_000_000).expect("a response");
    assert_eq!(
        c,
        json!({
            "id": "chatcmpl-Il0taoSYJ5Cez7", "object": "chat.completion", "created": 1_700_000_000u64,
            "model": "gemini-2.5-flash",
            "choices": [{"index": 0, "message": {"role": "assistant",
                "content": "AI learns patterns from data to make predictions."}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 32, "total_tokens": 40,
                "completion_tokens_details": {"reasoning_tokens": 23}},
        })
    );
    serde_json::from_value::<ChatCompletion>(c).expect("an OpenAI chat completion");
}

#[test]
fn function_calls_finish_reasons_and_blocked_prompts() {
    let body = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "thinking...", "thought": true},
        {"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}},
        {"functionCall": {"name": "get_current_temperature", "args": {"location": "Paris"}}},
    ]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 10,
        "totalTokenCount": 60, "cachedContentTokenCount": 20}, "responseId": "r1"});
    let c = to_chat_completion(body.to_string().as_bytes(), "gemini-x", 1).expect("a response");
    assert_eq!(c["model"], "gemini-x");
    assert_eq!(c["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(c["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"],
        json!([
            {"id": "call_r1_0", "type": "function", "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"London\"}"}},
            {"id": "call_r1_1", "type": "function", "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"Paris\"}"}},
        ])
    );
    assert_eq!(c["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    for (reason, openai) in [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("STOP", "stop"),
    ] {
        assert_eq!(finish_reason(reason), openai);
    }
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}});
    let c = to_chat_completion(blocked.to_string().as_bytes(), "m", 1).expect("a response");
    assert_eq!(c["choices"][0]["finish_reason"], "content_filter");
    assert!(to_chat_completion(b"{\"choices\": []}", "m", 1).is_err());
}

#[test]
fn error_bodies_give_their_status() {
    let body = br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#;
    assert_eq!(error_status(body).as_deref(), Some("RESOURCE_EXHAUSTED"));
    assert_eq!(error_status(b"not json"), None);
}

/// A streamed answer as `streamGenerateContent?alt=sse` sends it: CRLF
/// between events, usage in every event, the finish reason on the last.
fn sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect()
}

fn translate_stream(wire: &str) -> Vec<String> {
    let mut events = UpstreamEvents::new(ProviderKind::Gemini, "gemini-test", 1_700_000_000);
    // Fed in small pieces, as a network would.
    wire.as_bytes().chunks(7).flat_map(|c| events.push(c).expect("small events")).collect()
}

#[test]
fn a_text_stream_becomes_chunks_ending_with_usage_and_done() {
    let meta = |c: u64| json!({"promptTokenCount": 8, "candidatesTokenCount": c, "totalTokenCount": 8 + c});
    let piece = |t: &str| json!({"content": {"role": "model", "parts": [{"text": t}]}, "index": 0});
    let mut last = piece(" predictions.");
    last["finishReason"] = json!("STOP");
    let wire = sse(&[
        json!({"candidates": [piece("AI learns")], "usageMetadata": meta(2), "modelVersion": "gemini-2.0-flash", "responseId": "s1"}),
        json!({"candidates": [piece(" patterns to make")], "usageMetadata": meta(6), "modelVersion": "gemini-2.0-flash", "responseId": "s1"}),
        json!({"candidates": [last], "usageMetadata": meta(8), "modelVersion": "gemini-2.0-flash", "responseId": "s1"}),
    ]);
    let out = translate_stream(&wire);
    assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
    let mut assembler = StreamAssembler::new();
    for e in &out {
        if e != "[DONE]" {
            assert!(assembler.push(&serde_json::from_str(e).expect("JSON chunk")), "{e}");
        }
    }
    let c = assembler.finish().expect("assembled");
    let c = serde_json::to_value(c).expect("serializable");
    assert_eq!(c["choices"][0]["message"]["content"], "AI learns patterns to make predictions.");
    assert_eq!(c["choices"][0]["finish_reason"], "stop");
    assert_eq!(c["usage"]["prompt_tokens"], 8);
    assert_eq!(c["usage"]["completion_tokens"], 8);
    assert_eq!(c["id"], "chatcmpl-s1");
    let chunks: Vec<Value> = out.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    assert_eq!(chunks.iter().filter(|c| c.get("usage").is_some()).count(), 1);
}

#[test]
fn a_function_call_stream_and_an_error_event() {
    let wire = sse(&[json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_current_temperature", "args": {"location": "London"}}}]},
        "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5}})]);
    let out = translate_stream(&wire);
    let chunks: Vec<Value> = out.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let call =
        chunks.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"][0].as_object().cloned()).expect("a call");
    assert_eq!(call["index"], 0);
    assert_eq!(call["function"]["arguments"], "{\"location\":\"London\"}");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    assert_eq!(out.last().map(String::as_str), Some("[DONE]"));

    let error = sse(&[json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})]);
    let out = translate_stream(&error);
    let e: Value = serde_json::from_str(out.first().expect("an event")).expect("JSON");
    assert_eq!(e["error"]["code"], "UNAVAILABLE");
    assert_eq!(e["error"]["message"], "The model is overloaded.");
}

#[test]
fn a_sparse_stream_is_named_by_the_requested_model_and_counts_the_last_usage() {
    // No modelVersion, responseId, index or safety ratings; usage only on the
    // last event, which holds the finish reason and an empty text part.
    let piece = |t: &str| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}}]});
    let wire = sse(&[
        piece("Hello "),
        piece("there."),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}}),
    ]);
    let out = translate_stream(&wire);
    let chunks: Vec<Value> = out.iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    assert!(chunks.iter().all(|c| c["model"] == "gemini-test"), "{chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Hello there.");
    assert_eq!(chunks.iter().filter(|c| c["choices"][0]["finish_reason"] == "stop").count(), 1);
    let usage = chunks.iter().find_map(|c| c.get("usage")).expect("a usage chunk");
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(4), Some(2)));
    assert_eq!(out.last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn answers_without_a_response_id_get_ids_of_their_own() {
    let body = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP"}]});
    let a = to_chat_completion(body.to_string().as_bytes(), "m", 7).expect("a response");
    let b = to_chat_completion(body.to_string().as_bytes(), "m", 7).expect("a response");
    assert_ne!(a["id"], b["id"]);
    let call = |c: &Value| c["choices"][0]["message"]["tool_calls"][0]["id"].clone();
    assert!(call(&a).as_str().is_some_and(|id| !id.is_empty()), "{a}");
    assert_ne!(call(&a), call(&b), "a tool result names its call: two answers' calls must differ");
}
