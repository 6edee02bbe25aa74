//! Deterministic answers: the same request always gets the same content.

use crate::control::UsageStyle;
use serde_json::{json, Value};

pub(crate) struct Answer {
    pub id: String,
    pub model: String,
    pub content: Option<String>,
    pub tool_call: Option<Value>,
    pub prompt_tokens: u64,
    /// Of `prompt_tokens`, those "read from the prompt cache":
    /// `prompt_tokens_details.cached_tokens` when not 0.
    pub cached_tokens: u64,
    /// A `max_tokens` under 5 cuts the answer short, as a real model would.
    pub truncated: bool,
    /// A long answer's pieces ([`Answer::long`]): one streamed content chunk
    /// and one completion token each; `content` is their concatenation.
    pub pieces: Option<Vec<String>>,
}

/// The whole text of a [`crate::Fault::LongStream`] answer to `question` (the
/// last user message), for tests to compare what reached a client with.
pub fn long_answer(question: &str, chunks: usize, chunk_bytes: usize) -> String {
    long_pieces(question, chunks, chunk_bytes).concat()
}

/// `chunks` pieces of exactly `chunk_bytes` ASCII bytes, numbered and filled
/// from a hash of `question`: the same question always gets the same text,
/// another question other text.
pub(crate) fn long_pieces(question: &str, chunks: usize, chunk_bytes: usize) -> Vec<String> {
    let seed = blake3::hash(question.as_bytes()).to_hex().to_string();
    (0..chunks)
        .map(|i| {
            let mut piece = format!("{i:06}:");
            while piece.len() < chunk_bytes {
                piece.push_str(&seed);
                piece.push(' ');
            }
            piece.truncate(chunk_bytes);
            piece
        })
        .collect()
}

fn last_user_text(req: &Value) -> String {
    req["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str().map(str::to_string).or_else(|| Some(m["content"].to_string())))
        .unwrap_or_default()
}

impl Answer {
    pub fn for_request(req: &Value) -> Self {
        let model = req["model"].as_str().unwrap_or("unknown").to_string();
        let question = last_user_text(req);
        let prompt_tokens = (req["messages"].to_string().len() as u64).div_ceil(4);
        let id = format!("chatcmpl-mock{}", &blake3::hash(req.to_string().as_bytes()).to_hex()[..16]);
        let first_tool = req["tools"].as_array().and_then(|t| t.first()).cloned();
        match first_tool {
            Some(tool) => Answer {
                id,
                model,
                content: None,
                truncated: false,
                tool_call: Some(json!({
                    "id": "call_mock1",
                    "type": "function",
                    "function": {
                        "name": tool["function"]["name"].as_str().unwrap_or("tool"),
                        "arguments": json!({"query": question}).to_string(),
                    }
                })),
                prompt_tokens,
                cached_tokens: 0,
                pieces: None,
            },
            None => Answer {
                truncated: req["max_tokens"].as_u64().is_some_and(|m| m < 5),
                content: Some(format!("[{model}] Simulated answer to: {question}")),
                id,
                model,
                tool_call: None,
                prompt_tokens,
                cached_tokens: 0,
                pieces: None,
            },
        }
    }

    /// The long answer of [`crate::control::Fault::LongStream`]: plain text,
    /// never a tool call, never truncated.
    pub fn long(req: &Value, chunks: usize, chunk_bytes: usize) -> Self {
        let mut answer = Self::for_request(req);
        let pieces = long_pieces(&last_user_text(req), chunks, chunk_bytes);
        answer.content = Some(pieces.concat());
        answer.pieces = Some(pieces);
        answer.tool_call = None;
        answer.truncated = false;
        answer
    }

    pub fn completion_tokens(&self) -> u64 {
        if let Some(pieces) = &self.pieces {
            return pieces.len() as u64;
        }
        self.content.as_deref().map_or(8, |c| c.split_whitespace().count() as u64)
    }

    fn usage(&self) -> Value {
        let mut u = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens(),
            "total_tokens": self.prompt_tokens + self.completion_tokens(),
        });
        if self.cached_tokens > 0 {
            u["prompt_tokens_details"] = json!({"cached_tokens": self.cached_tokens, "audio_tokens": 0});
        }
        u
    }

    fn finish_reason(&self) -> &'static str {
        if self.truncated {
            "length"
        } else if self.tool_call.is_some() {
            "tool_calls"
        } else {
            "stop"
        }
    }

    pub fn completion(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.content});
        if let Some(tc) = &self.tool_call {
            message["tool_calls"] = json!([tc]);
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish_reason()}],
            "usage": self.usage(),
            "system_fingerprint": "fp_mock",
        })
    }

    /// The chunks of a streamed answer, shaped as OpenAI's
    /// `chat.completion.chunk`: (content chunks, tail chunks). `[DONE]` is
    /// the framing's business.
    pub fn stream_chunks(&self, include_usage: bool, style: UsageStyle) -> (Vec<Value>, Vec<Value>) {
        let null_usage = include_usage && style == UsageStyle::NullInEveryChunk;
        let chunk = |delta: Value, finish: Value| {
            let mut v = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                "model": self.model, "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            });
            if null_usage {
                v["usage"] = Value::Null;
            }
            v
        };
        let mut body = vec![chunk(
            json!({"role": "assistant", "content": if self.content.is_some() { json!("") } else { Value::Null }}),
            Value::Null,
        )];
        if let Some(pieces) = &self.pieces {
            for piece in pieces {
                body.push(chunk(json!({"content": piece}), Value::Null));
            }
        } else if let Some(content) = &self.content {
            let words: Vec<&str> = content.split_inclusive(' ').collect();
            for piece in words.chunks(2) {
                body.push(chunk(json!({"content": piece.concat()}), Value::Null));
            }
        }
        if let Some(tc) = &self.tool_call {
            let mut tc = tc.clone();
            tc["index"] = json!(0);
            body.push(chunk(json!({"tool_calls": [tc]}), Value::Null));
        }
        let mut tail = Vec::new();
        match body.pop() {
            // Some providers end on the last content chunk itself: its delta,
            // the finish reason and the usage in one event.
            Some(mut last) if style == UsageStyle::OnFinalChunk => {
                last["choices"][0]["finish_reason"] = json!(self.finish_reason());
                last["usage"] = self.usage();
                tail.push(last);
            }
            Some(last) => {
                body.push(last);
                tail.push(chunk(json!({}), json!(self.finish_reason())));
            }
            None => {}
        }
        if include_usage && matches!(style, UsageStyle::NullInEveryChunk | UsageStyle::AbsentUntilLast) {
            tail.push(json!({
                "id": self.id, "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                "model": self.model, "system_fingerprint": "fp_mock", "choices": [], "usage": self.usage(),
            }));
        }
        (body, tail)
    }
}

/// A deterministic unit vector for embeddings requests.
pub(crate) fn embedding_for(text: &str, dims: usize) -> Vec<f32> {
    let hash = blake3::hash(text.as_bytes());
    let mut v: Vec<f32> = (0..dims).map(|i| f32::from(hash.as_bytes()[i % 32]) - 127.5).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}
