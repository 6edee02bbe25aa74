//! `chat.completion.chunk`s → Anthropic's stream events.
//!
//! `message_start` on the first chunk (the prompt's estimated size as
//! `input_tokens`, since chat reports usage only at the end); a text block
//! for content, a `tool_use` block per tool call, each opened by
//! `content_block_start`, fed by `text_delta` / `input_json_delta` and
//! closed by `content_block_stop` when the next block opens or the choice
//! finishes; then, once the chat stream ends, `message_delta` with the stop
//! reason and the upstream's usage, and `message_stop`. A chat stream that
//! ends in `{"error": ...}` (or stops before its finish reason) ends with
//! an `error` event and nothing after it.

use super::answer::model;
use super::{message_id, stop_reason, usage, Echo, Usage};
use crate::{Event, Shaper};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Reshapes a chat stream into Anthropic's event stream.
pub fn shaper(echo: Echo) -> Box<dyn Shaper> {
    Box::new(Messages {
        echo,
        started: false,
        done: false,
        next: 0,
        open: None,
        tools: HashMap::new(),
        stop: None,
        usage: None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text(u64),
    Tool(u64),
}

struct Messages {
    echo: Echo,
    started: bool,
    /// An `error` or `message_stop` was sent: nothing may follow.
    done: bool,
    /// The index the next content block gets: blocks are numbered in the
    /// order they start, as the SDKs index the message's content by it.
    next: u64,
    open: Option<Open>,
    /// Chat tool call index → content block index.
    tools: HashMap<u64, u64>,
    stop: Option<(&'static str, Option<String>)>,
    usage: Option<Usage>,
}

impl Messages {
    fn start(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = json!({
            "input_tokens": self.echo.input_tokens,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        });
        let message = json!({
            "id": message_id(chunk.get("id").and_then(Value::as_str)),
            "type": "message",
            "role": "assistant",
            "model": model(&self.echo, chunk),
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage,
        });
        out.push(Event::named("message_start", json!({"type": "message_start", "message": message})));
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.push(Event::named("content_block_stop", json!({"type": "content_block_stop", "index": i})));
        }
    }

    /// Opens a block of its own for `block`, closing the one before.
    fn open(&mut self, block: Value, tool: bool, out: &mut Vec<Event>) -> u64 {
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some(if tool { Open::Tool(index) } else { Open::Text(index) });
        out.push(Event::named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => self.open(json!({"type": "text", "text": ""}), false, out),
        };
        let delta = json!({"type": "text_delta", "text": text});
        out.push(Event::named(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    /// One `tool_calls` delta. A call's first delta opens its block; its
    /// arguments arrive as `input_json_delta`s. A call resumed after another
    /// began (chat allows it, providers rarely do it) is fed to its own
    /// block by index, which the SDKs accept.
    fn tool(&mut self, call: &Value, position: usize, out: &mut Vec<Event>) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let function = call.get("function");
        let field = |f: &str| function.and_then(|x| x.get(f)).and_then(Value::as_str);
        let index = match self.tools.get(&chat_index) {
            Some(i) => *i,
            None => {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .map_or_else(|| format!("toolu_deja{}", self.next), str::to_string);
                let block =
                    json!({"type": "tool_use", "id": id, "name": field("name").unwrap_or_default(), "input": {}});
                let index = self.open(block, true, out);
                self.tools.insert(chat_index, index);
                index
            }
        };
        if let Some(args) = field("arguments").filter(|a| !a.is_empty()) {
            let delta = json!({"type": "input_json_delta", "partial_json": args});
            out.push(Event::named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
    }

    fn fail(&mut self, chat_error: &Value) -> Vec<Event> {
        self.done = true;
        vec![super::error::event(chat_error)]
    }
}

impl Shaper for Messages {
    fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        if chunk.get("error").is_some() {
            return self.fail(chunk);
        }
        let mut out = Vec::new();
        self.start(chunk, &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(Some(u)));
        }
        let choices = chunk.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        // One choice: a Messages request cannot ask for more.
        for choice in choices.iter().filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0) {
            let delta = choice.get("delta");
            for field in ["content", "refusal"] {
                if let Some(t) = delta.and_then(|d| d.get(field)).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    self.text(t, &mut out);
                }
            }
            let calls = delta.and_then(|d| d.get("tool_calls")).and_then(Value::as_array);
            for (position, call) in calls.into_iter().flatten().enumerate() {
                self.tool(call, position, &mut out);
            }
            if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close(&mut out);
                self.stop = Some(stop_reason(&self.echo, Some(finish), Some(choice)));
            }
        }
        out
    }

    fn end(&mut self) -> Vec<Event> {
        if self.done {
            return Vec::new();
        }
        let Some((stop, sequence)) = self.stop.clone() else {
            let cut = json!({"error": {"message": "the answer stream ended before the answer was complete"}});
            return self.fail(&cut);
        };
        self.done = true;
        let mut out = Vec::new();
        self.close(&mut out);
        let usage = match self.usage {
            Some(u) => u.to_json(),
            None => json!({"output_tokens": 0}),
        };
        out.push(Event::named(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": sequence}, "usage": usage}),
        ));
        out.push(Event::named("message_stop", json!({"type": "message_stop"})));
        out
    }
}
