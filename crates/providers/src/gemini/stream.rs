//! Gemini stream events → OpenAI `chat.completion.chunk` payloads.
//!
//! Each event of `streamGenerateContent?alt=sse` is a whole
//! `GenerateContentResponse` holding the next piece of each candidate. The
//! first piece of a candidate opens its assistant turn, text parts become
//! content deltas, each `functionCall` part a whole tool call, and a
//! `finishReason` the finish chunk. Gemini sends no end marker: once every
//! candidate has finished (or the prompt was blocked), a usage-only chunk
//! (from the last `usageMetadata` seen) and `[DONE]` follow. An `error`
//! event becomes an OpenAI `{"error": ...}` event, which the relay treats as
//! the upstream failing.

use super::response::{call_id, candidate_finish, parts, tool_call, usage};
use serde_json::{json, Value};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

#[derive(Default)]
struct Candidate {
    calls: usize,
    finished: bool,
}

pub struct StreamTranslator {
    id: String,
    /// Gemini's `responseId` (or one made up for it), for tool call ids.
    response_id: String,
    model: String,
    created: u64,
    candidates: BTreeMap<u64, Candidate>,
    /// Function calls of the whole response, for their ids.
    calls: usize,
    usage: Option<Value>,
    done: bool,
}

impl StreamTranslator {
    /// `model` names the chunks until the stream does.
    pub fn new(model: &str, created: u64) -> Self {
        Self {
            id: String::new(),
            response_id: String::new(),
            model: model.to_string(),
            created,
            candidates: BTreeMap::new(),
            calls: 0,
            usage: None,
            done: false,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> String {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
        .to_string()
    }

    /// The OpenAI payloads one Gemini `data` payload stands for. A payload
    /// that is not JSON is passed on as it is, for the relay to refuse.
    pub fn push(&mut self, data: &str) -> Vec<String> {
        let Ok(event) = serde_json::from_str::<Value>(data) else { return vec![data.to_string()] };
        if self.done {
            return Vec::new();
        }
        if let Some(e) = event.get("error") {
            let field = |f: &str| e.get(f).and_then(Value::as_str);
            let error = json!({"error": {
                "message": field("message").unwrap_or("the upstream sent an error event"),
                "type": "api_error", "param": null, "code": field("status"),
            }});
            return vec![error.to_string()];
        }
        if self.id.is_empty() {
            self.response_id = super::response::response_id(&event, self.created);
            self.id = format!("chatcmpl-{}", self.response_id);
        }
        if let Some(m) = event.get("modelVersion").and_then(Value::as_str) {
            self.model = m.to_string();
        }
        if let Some(u) = event.get("usageMetadata") {
            self.usage = Some(u.clone());
        }
        let mut out = Vec::new();
        let candidates = event.get("candidates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for (i, candidate) in candidates.iter().enumerate() {
            let index = candidate.get("index").and_then(Value::as_u64).unwrap_or(i as u64);
            let opened = match self.candidates.entry(index) {
                Entry::Vacant(e) => {
                    e.insert(Candidate::default());
                    true
                }
                Entry::Occupied(_) => false,
            };
            if opened {
                out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
            }
            for part in parts(candidate) {
                if let Some(t) = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    out.push(self.chunk(index, json!({"content": t}), None));
                } else if let Some(call) = part.get("functionCall") {
                    let n = self.candidates.get(&index).map_or(0, |c| c.calls);
                    let mut delta = tool_call(call, call_id(call, &self.response_id, self.calls));
                    if let Some(d) = delta.as_object_mut() {
                        d.insert("index".into(), json!(n));
                    }
                    self.calls += 1;
                    if let Some(c) = self.candidates.get_mut(&index) {
                        c.calls += 1;
                    }
                    out.push(self.chunk(index, json!({"tool_calls": [delta]}), None));
                }
            }
            if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
                let calls = self.candidates.get(&index).map_or(0, |c| c.calls);
                let finish = candidate_finish(Some(reason), calls);
                out.push(self.chunk(index, json!({}), finish));
                if let Some(c) = self.candidates.get_mut(&index) {
                    c.finished = true;
                }
            }
        }
        let blocked = candidates.is_empty()
            && self.candidates.is_empty()
            && event.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
        if blocked {
            out.push(self.chunk(0, json!({"role": "assistant", "content": ""}), None));
            out.push(self.chunk(0, json!({}), Some("content_filter")));
        }
        let all_finished = !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished);
        if blocked || all_finished {
            self.done = true;
            let last = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage(self.usage.as_ref()),
            });
            out.push(last.to_string());
            out.push(deja_api::sse::DONE.to_string());
        }
        out
    }
}
