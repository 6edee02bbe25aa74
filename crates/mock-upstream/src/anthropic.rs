//! `POST /v1/messages`: a simulated Anthropic Messages API, written from
//! Anthropic's published reference and sharing no code with Deja's
//! translation. It checks what the real API insists on (the version header,
//! a key, `max_tokens`, alternating user/assistant turns, tool results that
//! answer the tool uses before them, no unknown fields), answers with
//! deterministic content and frames its own `event:`/`data:` stream. Status
//! faults come back as Anthropic error bodies (529 is `overloaded_error`).

use crate::control::{Fault, MockControl, PromptCache};
use crate::seen::AnthropicHeaders;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::time::Duration;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

impl MockControl {
    /// The headers of the last Messages call for `model`.
    pub fn anthropic_headers(&self, model: &str) -> Option<AnthropicHeaders> {
        self.anthropic.lock().unwrap_or_else(|e| e.into_inner()).get(model).cloned()
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    raw(status, v.to_string())
}

fn raw(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n: Infallible| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// Anthropic's error type for a status, as its reference lists them.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error(status: u16, message: &str) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &json!({"type": "error", "error": {"type": error_type(status), "message": message}}))
}

const FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
];

/// What the real API would refuse with a 400, if anything.
fn invalid(req: &Value) -> Option<String> {
    let obj = req.as_object()?;
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Some(format!("{k}: Extra inputs are not permitted"));
    }
    if req["max_tokens"].as_u64().unwrap_or(0) == 0 {
        return Some("max_tokens: Field required".into());
    }
    let Some(messages) = req["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Some("messages: at least one message is required".into());
    };
    let mut last_role = "";
    let mut tool_uses: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Some(format!("messages.{i}.role: Input should be 'user' or 'assistant'"));
        }
        if role == last_role {
            return Some("messages: roles must alternate between \"user\" and \"assistant\"".into());
        }
        last_role = role;
        let blocks = match &m["content"] {
            Value::String(_) => Vec::new(),
            Value::Array(b) => b.clone(),
            _ => return Some(format!("messages.{i}.content: Input should be a valid list")),
        };
        let mut used = Vec::new();
        for b in &blocks {
            match b["type"].as_str() {
                Some("text") | Some("image") => {}
                Some("tool_use") if role == "assistant" => used.push(b["id"].as_str().unwrap_or("").to_string()),
                Some("tool_result") if role == "user" => {
                    let id = b["tool_use_id"].as_str().unwrap_or("");
                    if !tool_uses.iter().any(|u| u == id) {
                        return Some(format!("messages.{i}: tool_result {id} answers no tool_use before it"));
                    }
                }
                other => return Some(format!("messages.{i}.content: unexpected block type {other:?}")),
            }
        }
        tool_uses = used;
    }
    None
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The deterministic answer: a tool use when tools are offered (and the
/// last turn is not a tool result), text otherwise.
struct Reply {
    id: String,
    model: String,
    text: Option<String>,
    tool: Option<(String, Value)>,
    stop_reason: &'static str,
    input_tokens: u64,
    /// Prompt tokens read from and written to the prompt cache, beside `input_tokens`.
    cache: PromptCache,
}

impl Reply {
    fn for_request(req: &Value) -> Self {
        let model = req["model"].as_str().unwrap_or("unknown").to_string();
        let id = format!("msg_mock{}", &blake3::hash(req.to_string().as_bytes()).to_hex()[..16]);
        let input_tokens = (req["messages"].to_string().len() as u64).div_ceil(4);
        let last = req["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        let results: Vec<String> = last["content"]
            .as_array()
            .map(|b| b.iter().filter(|b| b["type"] == "tool_result").map(|b| text_of(&b["content"])).collect())
            .unwrap_or_default();
        let question = text_of(&last["content"]);
        let tools = req["tools"].as_array().filter(|t| !t.is_empty() && req["tool_choice"]["type"] != "none");
        if let (Some(tools), true) = (tools, results.is_empty()) {
            let name = req["tool_choice"]["name"].as_str().or_else(|| tools[0]["name"].as_str()).unwrap_or("tool");
            let tool = Some((name.to_string(), json!({"query": question})));
            return Reply {
                id,
                model,
                text: None,
                tool,
                stop_reason: "tool_use",
                input_tokens,
                cache: PromptCache::default(),
            };
        }
        let text = if results.is_empty() {
            format!("[{model}] Simulated answer to: {question}")
        } else {
            format!("[{model}] Tool said: {}", results.join("; "))
        };
        let stop_reason = if req["max_tokens"].as_u64().is_some_and(|m| m < 5) { "max_tokens" } else { "end_turn" };
        Reply { id, model, text: Some(text), tool: None, stop_reason, input_tokens, cache: PromptCache::default() }
    }

    fn output_tokens(&self) -> u64 {
        self.text.as_deref().map_or(8, |t| t.split_whitespace().count() as u64)
    }

    fn content(&self) -> Vec<Value> {
        let mut blocks = Vec::new();
        if let Some(t) = &self.text {
            blocks.push(json!({"type": "text", "text": t}));
        }
        if let Some((name, input)) = &self.tool {
            blocks.push(json!({"type": "tool_use", "id": "toolu_mock1", "name": name, "input": input}));
        }
        blocks
    }

    /// A `usage` object: `output` tokens (none: the field is left out, as
    /// `message_start` may), with the prompt-cache counts and service tier
    /// the reference shows unless `sparse` (the cache counts even then when
    /// a [`PromptCache`] is set).
    fn usage(&self, output: Option<u64>, sparse: bool) -> Value {
        let mut u = json!({"input_tokens": self.input_tokens});
        if !sparse || self.cache != PromptCache::default() {
            u["cache_creation_input_tokens"] = json!(self.cache.write);
            u["cache_read_input_tokens"] = json!(self.cache.read);
        }
        if !sparse {
            u["service_tier"] = json!("standard");
        }
        if let Some(n) = output {
            u["output_tokens"] = json!(n);
        }
        u
    }

    fn message(&self, sparse: bool) -> Value {
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": self.content(), "stop_reason": self.stop_reason, "stop_sequence": null,
            "usage": self.usage(Some(self.output_tokens()), sparse),
        })
    }

    /// The stream's events, in the order the streaming guide shows them.
    /// `message_delta`'s usage is cumulative: in full, it repeats the input
    /// and cache counts as the current API does; sparse, it has only
    /// `output_tokens`, as the streaming guide's example.
    fn events(&self, sparse: bool) -> Vec<Value> {
        let mut events = vec![
            json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "content": [], "model": self.model,
                "stop_reason": null, "stop_sequence": null,
                "usage": self.usage((!sparse).then_some(1), sparse),
            }}),
            json!({"type": "ping"}),
        ];
        let mut index = 0;
        if let Some(text) = &self.text {
            events.push(
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            );
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            for piece in words.chunks(2) {
                let delta = json!({"type": "text_delta", "text": piece.concat()});
                events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
            }
            events.push(json!({"type": "content_block_stop", "index": index}));
            index += 1;
        }
        if let Some((name, input)) = &self.tool {
            let block = json!({"type": "tool_use", "id": "toolu_mock1", "name": name, "input": {}});
            events.push(json!({"type": "content_block_start", "index": index, "content_block": block}));
            let json = input.to_string();
            let (a, b) = json.split_at(json.len() / 2);
            for part in ["", a, b] {
                let delta = json!({"type": "input_json_delta", "partial_json": part});
                events.push(json!({"type": "content_block_delta", "index": index, "delta": delta}));
            }
            events.push(json!({"type": "content_block_stop", "index": index}));
        }
        let usage = if sparse {
            json!({"output_tokens": self.output_tokens()})
        } else {
            self.usage(Some(self.output_tokens()), false)
        };
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
            "usage": usage}));
        events.push(json!({"type": "message_stop"}));
        events
    }
}

/// `event: <type>\ndata: <json>\n\n`, as Anthropic frames each event.
fn frame(event: &Value) -> Bytes {
    Bytes::from(format!("event: {}\ndata: {}\n\n", event["type"].as_str().unwrap_or("message"), event))
}

pub(crate) async fn messages(control: &MockControl, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen = AnthropicHeaders {
        x_api_key: header("x-api-key"),
        anthropic_version: header("anthropic-version"),
        authorization: header("authorization"),
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else { return error(400, "invalid JSON") };
    let model = req["model"].as_str().unwrap_or("unknown").to_string();
    control.anthropic.lock().unwrap_or_else(|e| e.into_inner()).insert(model.clone(), seen.clone());
    let fault = control.on_call(&model, seen.authorization.clone(), &req);
    if seen.anthropic_version.is_none() {
        return error(400, "anthropic-version: header is required");
    }
    if seen.x_api_key.is_none() {
        return error(401, "x-api-key header is required");
    }
    match &fault {
        Some(Fault::Status { status, retry_after_s, retry_after }) => {
            let mut r = error(*status, if *status == 529 { "Overloaded" } else { "injected failure" });
            let raw = retry_after.clone().or_else(|| retry_after_s.map(|s| s.to_string()));
            if let Some(v) = raw.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                r.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return r;
        }
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(Fault::Malformed) => return raw(StatusCode::OK, "{\"content\": [ not json".into()),
        Some(Fault::Body { body }) => return json_response(StatusCode::OK, body),
        _ => {}
    }
    if let Some(why) = invalid(&req) {
        return error(400, &why);
    }
    let mut reply = Reply::for_request(&req);
    reply.cache = control.prompt_cache();
    let sparse = control.stream_style().sparse;
    if req["stream"].as_bool() != Some(true) {
        return json_response(StatusCode::OK, &reply.message(sparse));
    }
    crate::stream::events(control, fault, reply.events(sparse), frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_must_alternate_and_tool_results_answer_tool_uses() {
        let ok = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
        ]});
        assert_eq!(invalid(&ok), None);
        let twice = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]});
        assert!(invalid(&twice).is_some());
        let stray = json!({"model": "m", "max_tokens": 10, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}]});
        assert!(invalid(&stray).is_some());
        let extra = json!({"model": "m", "max_tokens": 10, "seed": 1, "messages": [{"role": "user", "content": "a"}]});
        assert_eq!(invalid(&extra).as_deref(), Some("seed: Extra inputs are not permitted"));
    }

    #[test]
    fn sparse_answers_leave_out_the_optional_usage_fields() {
        let req = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let reply = Reply::for_request(&req);
        let full = reply.message(false);
        assert_eq!(full["usage"]["cache_read_input_tokens"], 0);
        assert_eq!(full["stop_sequence"], Value::Null);
        let sparse = reply.message(true);
        assert!(sparse["usage"].get("cache_read_input_tokens").is_none());
        assert_eq!(sparse["usage"]["output_tokens"], full["usage"]["output_tokens"]);
        let start = &reply.events(true)[0]["message"]["usage"];
        assert!(start.get("output_tokens").is_none() && start["input_tokens"].is_u64(), "{start}");
        let events = reply.events(false);
        let delta = events.iter().find(|e| e["type"] == "message_delta").expect("a message_delta");
        assert_eq!(delta["usage"]["input_tokens"], full["usage"]["input_tokens"]);
    }

    #[test]
    fn a_prompt_cache_shows_in_every_usage_even_sparse() {
        let req = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
        let mut reply = Reply::for_request(&req);
        reply.cache = PromptCache { read: 300, write: 40 };
        for sparse in [false, true] {
            let u = &reply.message(sparse)["usage"];
            assert_eq!((&u["cache_read_input_tokens"], &u["cache_creation_input_tokens"]), (&json!(300), &json!(40)));
            let start = &reply.events(sparse)[0]["message"]["usage"];
            assert_eq!(start["cache_read_input_tokens"], 300, "{start}");
        }
    }

    #[test]
    fn events_are_framed_with_their_type() {
        assert_eq!(&frame(&json!({"type": "ping"}))[..], b"event: ping\ndata: {\"type\":\"ping\"}\n\n");
    }
}
