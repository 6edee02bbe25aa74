//! Anthropic stream events → OpenAI `chat.completion.chunk` payloads.
//!
//! `message_start` opens the assistant turn, text and tool-input deltas
//! become content and `tool_calls` deltas (tool calls numbered in the order
//! they start), `message_delta` carries the finish reason, and
//! `message_stop` ends with a usage-only chunk and `[DONE]` (the prompt
//! tokens written to the prompt cache are read with
//! [`StreamTranslator::cache_write_tokens`]). An `error`
//! event becomes an OpenAI `{"error": ...}` event, which the relay treats as
//! the upstream failing. `ping` and event types yet to come are skipped.

use super::response::{count, finish_reason, usage};
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    /// Anthropic content block index → OpenAI tool call index.
    tools: HashMap<u64, u64>,
    input_tokens: u64,
    output_tokens: u64,
    cache_write: u64,
    cache_read: u64,
}

impl StreamTranslator {
    /// `model` names the chunks until the stream does.
    pub fn new(model: &str, created: u64) -> Self {
        Self {
            id: String::new(),
            model: model.to_string(),
            created,
            tools: HashMap::new(),
            input_tokens: 0,
            output_tokens: 0,
            cache_write: 0,
            cache_read: 0,
        }
    }

    /// The prompt tokens the message wrote to Anthropic's prompt cache, as
    /// far as the stream has said (`cache_creation_input_tokens`): part of
    /// the usage chunk's `prompt_tokens`, priced apart, and not in it since
    /// OpenAI's usage has no such field.
    pub fn cache_write_tokens(&self) -> u64 {
        self.cache_write
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
        .to_string()
    }

    fn read_usage(&mut self, u: Option<&Value>) {
        for (field, slot) in [
            ("input_tokens", &mut self.input_tokens),
            ("output_tokens", &mut self.output_tokens),
            ("cache_creation_input_tokens", &mut self.cache_write),
            ("cache_read_input_tokens", &mut self.cache_read),
        ] {
            if let Some(n) = count(u, field) {
                *slot = n;
            }
        }
    }

    /// The OpenAI payloads one Anthropic `data` payload stands for. A payload
    /// that is not JSON is passed on as it is, for the relay to refuse.
    pub fn push(&mut self, data: &str) -> Vec<String> {
        let Ok(event) = serde_json::from_str::<Value>(data) else { return vec![data.to_string()] };
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                let message = event.get("message");
                let field = |f: &str| message.and_then(|m| m.get(f)).and_then(Value::as_str).unwrap_or_default();
                self.id = field("id").to_string();
                if let Some(m) = message.and_then(|m| m.get("model")).and_then(Value::as_str) {
                    self.model = m.to_string();
                }
                self.read_usage(message.and_then(|m| m.get("usage")));
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            "content_block_start" => {
                let block = event.get("content_block");
                let field = |f: &str| block.and_then(|b| b.get(f)).and_then(Value::as_str);
                match field("type") {
                    Some("text") => match field("text").filter(|t| !t.is_empty()) {
                        Some(t) => vec![self.chunk(json!({"content": t}), None)],
                        None => Vec::new(),
                    },
                    Some("tool_use") => {
                        let n = self.tools.len() as u64;
                        self.tools.insert(index, n);
                        let call = json!({
                            "index": n, "id": field("id"), "type": "function",
                            "function": {"name": field("name"), "arguments": ""},
                        });
                        vec![self.chunk(json!({"tool_calls": [call]}), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta");
                let field = |f: &str| delta.and_then(|d| d.get(f)).and_then(Value::as_str);
                match (field("type"), self.tools.get(&index)) {
                    (Some("text_delta"), _) => {
                        vec![self.chunk(json!({"content": field("text").unwrap_or_default()}), None)]
                    }
                    (Some("input_json_delta"), Some(n)) => {
                        let call =
                            json!({"index": n, "function": {"arguments": field("partial_json").unwrap_or_default()}});
                        vec![self.chunk(json!({"tool_calls": [call]}), None)]
                    }
                    _ => Vec::new(),
                }
            }
            "message_delta" => {
                self.read_usage(event.get("usage"));
                let stop = event.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str);
                match stop {
                    Some(s) => vec![self.chunk(json!({}), Some(finish_reason(s)))],
                    None => Vec::new(),
                }
            }
            "message_stop" => {
                let u = usage(self.input_tokens, self.output_tokens, self.cache_write, self.cache_read);
                let last = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": u,
                });
                vec![last.to_string(), deja_api::sse::DONE.to_string()]
            }
            "error" => {
                let e = event.get("error");
                let field = |f: &str| e.and_then(|e| e.get(f)).and_then(Value::as_str);
                let error = json!({"error": {
                    "message": field("message").unwrap_or("the upstream sent an error event"),
                    "type": field("type").unwrap_or("api_error"),
                    "param": null, "code": field("type"),
                }});
                vec![error.to_string()]
            }
            _ => Vec::new(),
        }
    }
}
