//! OpenAI's Responses API (`POST /v1/responses`), stateless subset.
//!
//! A Responses request carries its whole conversation in `input`, so it is
//! translated into the chat request it means (`request.rs`, `input.rs`) and
//! answered by the chat pipeline; the chat answer becomes a `response` object
//! (`answer.rs`) or, streamed, the Responses event stream (`stream.rs`).
//!
//! Deja keeps no responses on the server. Whatever needs one (a
//! `previous_response_id`, a `conversation`, `background`, a stored `prompt`,
//! an `item_reference`) or OpenAI's own servers (built-in tools) is refused
//! with a 400 naming the field; `store` is accepted and nothing is stored.
//!
//! Ids are derived from the chat completion's id, so an answer served again
//! from the cache is the same `response`, id included.

#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod answer;
mod input;
mod request;
mod stream;
mod tools;

pub use answer::answer;
pub use request::translate;
pub use stream::shaper;

use serde_json::{json, Map, Value};

/// What a Responses answer echoes back from its request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// The model the client asked for, for an answer that names none.
    model: String,
    /// Request fields the `response` object repeats, already in its shape.
    fields: Map<String, Value>,
}

/// The ids of one answer's `response` and output items.
#[derive(Debug, Clone)]
struct Ids {
    base: String,
}

impl Ids {
    /// From the chat completion's id (`chatcmpl-abc` → `abc`), so a cached
    /// answer keeps its ids; a random one when the answer has no usable id.
    fn from_chat(chat_id: Option<&str>) -> Self {
        let id = chat_id.unwrap_or_default();
        let rest = match id.split_once(['-', '_']) {
            Some((prefix, rest)) if prefix.chars().all(|c| c.is_ascii_alphabetic()) => rest,
            _ => id,
        };
        let mut base: String = rest.chars().filter(char::is_ascii_alphanumeric).collect();
        if base.is_empty() {
            use std::hash::{BuildHasher, Hasher};
            let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
            base = format!("{random:016x}");
        }
        Self { base }
    }

    fn response(&self) -> String {
        format!("resp_{}", self.base)
    }

    /// The `n`th message item (0 for the usual one).
    fn message(&self, n: usize) -> String {
        match n {
            0 => format!("msg_{}", self.base),
            n => format!("msg_{}_{n}", self.base),
        }
    }

    /// The item of the chat answer's `n`th tool call.
    fn call(&self, n: usize) -> String {
        format!("fc_{}_{n}", self.base)
    }
}

/// How a chat answer ended, as the `response` says it.
fn status(finish_reason: Option<&str>) -> (&'static str, Option<&'static str>) {
    match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// Chat `usage` → Responses `usage`; null when the answer reported none.
fn usage(chat: Option<&Value>) -> Value {
    let Some(u) = chat.filter(|u| u.is_object()) else { return Value::Null };
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let input = count(u.get("prompt_tokens"));
    let output = count(u.get("completion_tokens"));
    let total = u.get("total_tokens").and_then(Value::as_u64).unwrap_or(input + output);
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": count(u.get("prompt_tokens_details").and_then(|d| d.get("cached_tokens"))),
        },
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": count(u.get("completion_tokens_details").and_then(|d| d.get("reasoning_tokens"))),
        },
        "total_tokens": total,
    })
}

/// One `response` object: what the answer says, and the request fields it echoes.
struct Shape {
    status: &'static str,
    incomplete: Option<&'static str>,
    output: Vec<Value>,
    usage: Value,
    error: Value,
}

fn response(echo: &Echo, ids: &Ids, created_at: &Value, model: Option<&str>, shape: Shape) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(ids.response()));
    out.insert("object".into(), json!("response"));
    out.insert("created_at".into(), if created_at.is_u64() { created_at.clone() } else { json!(0) });
    out.insert("status".into(), json!(shape.status));
    out.insert("background".into(), json!(false));
    out.insert("error".into(), shape.error);
    out.insert("incomplete_details".into(), shape.incomplete.map_or(Value::Null, |r| json!({"reason": r})));
    out.insert("model".into(), json!(model.filter(|m| !m.is_empty()).unwrap_or(&echo.model)));
    out.insert("output".into(), Value::Array(shape.output));
    out.insert("previous_response_id".into(), Value::Null);
    out.insert("usage".into(), shape.usage);
    for (k, v) in &echo.fields {
        out.insert(k.clone(), v.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
