//! A chat completion stream → the Responses event stream.
//!
//! `response.created` and `response.in_progress` open it; text opens a
//! `message` item and an `output_text` part (a refusal, a `refusal` part) and
//! each delta is passed on as it arrives; a tool call opens a
//! `function_call` item whose arguments stream as deltas. The finish reason
//! closes every item (the `.done` events); the end of the chat stream, after
//! its usage chunk, sends `response.completed` (or `response.incomplete`)
//! with the whole response. A chat stream that ends in an error object ends
//! with `response.failed`.

use super::answer::{item_status, message_item, refusal_part, text_part, Call};
use super::{response, status, usage, Echo, Ids, Shape};
use crate::{Event, Shaper};
use serde_json::{json, Map, Value};

/// Reshapes a chat stream into the Responses event stream.
pub fn shaper(echo: Echo) -> Box<dyn Shaper> {
    Box::new(Stream { echo, ..Stream::default() })
}

#[derive(Default)]
struct Stream {
    echo: Echo,
    /// The next event's `sequence_number`.
    seq: u64,
    /// Set by the first chunk: the stream has been opened.
    ids: Option<Ids>,
    created: Value,
    model: Option<String>,
    items: Vec<Item>,
    /// The message item text goes to, while it is open.
    message: Option<usize>,
    /// Message items opened so far, for their ids.
    messages: usize,
    /// The chat tool call index of each call item: (chat index, item).
    calls: Vec<(u64, usize)>,
    finish: Option<String>,
    usage: Option<Value>,
    /// The terminal event has been sent.
    ended: bool,
}

enum Item {
    Message { id: String, parts: Vec<Part>, done: bool },
    Call { call: Call, done: bool },
}

struct Part {
    refusal: bool,
    text: String,
}

impl Part {
    fn json(&self) -> Value {
        if self.refusal {
            refusal_part(&self.text)
        } else {
            text_part(&self.text)
        }
    }
}

impl Item {
    fn json(&self, status: &str) -> Value {
        match self {
            Item::Message { id, parts, .. } => message_item(id, status, parts.iter().map(Part::json).collect()),
            Item::Call { call, .. } => call.item(status),
        }
    }
}

impl Shaper for Stream {
    fn chunk(&mut self, chunk: &Value) -> Vec<Event> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.open(chunk, &mut out);
        if let Some(error) = chunk.get("error") {
            self.fail(error, &mut out);
            return out;
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
            return out;
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                self.text(text, false, &mut out);
            }
            if let Some(text) = delta.get("refusal").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                self.text(text, true, &mut out);
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                self.call(call, &mut out);
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish.to_string());
            self.close(&mut out);
        }
        out
    }

    fn end(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if self.ids.is_none() {
            self.open(&Value::Null, &mut out);
            self.fail(&json!({"message": "the answer stream ended before it began"}), &mut out);
            return out;
        }
        if self.finish.is_none() {
            // The chat stream stopped before its finish reason: cut off, not complete.
            self.fail(&json!({"message": "the answer stream ended before it was complete"}), &mut out);
            return out;
        }
        self.close(&mut out);
        let (status, incomplete) = status(self.finish.as_deref());
        let snapshot = self.snapshot(status, incomplete, Value::Null);
        let name = if status == "completed" { "response.completed" } else { "response.incomplete" };
        out.push(self.event(name, json!({"response": snapshot})));
        self.ended = true;
        out
    }
}

impl Stream {
    fn event(&mut self, name: &'static str, data: Value) -> Event {
        let mut fields = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        fields.insert("type".into(), json!(name));
        fields.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        Event::named(name, Value::Object(fields))
    }

    fn ids(&self) -> Ids {
        self.ids.clone().unwrap_or_else(|| Ids::from_chat(None))
    }

    /// The whole response as it stands.
    fn snapshot(&self, status: &'static str, incomplete: Option<&'static str>, error: Value) -> Value {
        let item_status = if status == "failed" { "incomplete" } else { item_status(status) };
        let output = self.items.iter().map(|i| i.json(item_status)).collect();
        let usage = if status == "in_progress" { Value::Null } else { usage(self.usage.as_ref()) };
        let shape = Shape { status, incomplete, output, usage, error };
        response(&self.echo, &self.ids(), &self.created, self.model.as_deref(), shape)
    }

    /// The first chunk opens the stream: its id names the response.
    fn open(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if self.ids.is_some() {
            return;
        }
        self.ids = Some(Ids::from_chat(chunk.get("id").and_then(Value::as_str)));
        self.created = chunk.get("created").cloned().unwrap_or(Value::Null);
        self.model = chunk.get("model").and_then(Value::as_str).map(str::to_string);
        let snapshot = self.snapshot("in_progress", None, Value::Null);
        out.push(self.event("response.created", json!({"response": snapshot})));
        let snapshot = self.snapshot("in_progress", None, Value::Null);
        out.push(self.event("response.in_progress", json!({"response": snapshot})));
    }

    /// A piece of text or refusal, into the open message (opened if need be).
    fn text(&mut self, piece: &str, refusal: bool, out: &mut Vec<Event>) {
        let index = match self.message {
            Some(i) => i,
            None => {
                let id = self.ids().message(self.messages);
                self.messages += 1;
                let index = self.items.len();
                let item = message_item(&id, "in_progress", Vec::new());
                self.items.push(Item::Message { id, parts: Vec::new(), done: false });
                self.message = Some(index);
                out.push(self.event("response.output_item.added", json!({"output_index": index, "item": item})));
                index
            }
        };
        let Some(Item::Message { id, parts, .. }) = self.items.get_mut(index) else { return };
        let id = id.clone();
        let opened = match parts.last() {
            Some(p) if p.refusal == refusal => None,
            _ => {
                let part = Part { refusal, text: String::new() };
                let json = part.json();
                parts.push(part);
                Some(json)
            }
        };
        let content_index = parts.len().saturating_sub(1);
        if let Some(p) = parts.last_mut() {
            p.text.push_str(piece);
        }
        let at = json!({"item_id": id, "output_index": index, "content_index": content_index});
        if let Some(part) = opened {
            out.push(self.event("response.content_part.added", with(&at, "part", part)));
        }
        let event = if refusal {
            self.event("response.refusal.delta", with(&at, "delta", json!(piece)))
        } else {
            let delta = with(&with(&at, "delta", json!(piece)), "logprobs", json!([]));
            self.event("response.output_text.delta", delta)
        };
        out.push(event);
    }

    /// One tool call delta: the first for its index opens a call item.
    fn call(&mut self, delta: &Value, out: &mut Vec<Event>) {
        let chat_index = delta.get("index").and_then(Value::as_u64).unwrap_or(0);
        let function = delta.get("function").unwrap_or(&Value::Null);
        let index = match self.calls.iter().find(|(c, _)| *c == chat_index) {
            Some((_, i)) => *i,
            None => {
                // Text does not resume after a call: the message is finished.
                if let Some(m) = self.message.take() {
                    self.close_item(m, "completed", out);
                }
                let ids = self.ids();
                let n = self.calls.len();
                let call_id = delta.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
                let call = Call {
                    id: ids.call(n),
                    call_id: call_id.map_or_else(|| ids.call(n), str::to_string),
                    name: function.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                    arguments: String::new(),
                };
                let index = self.items.len();
                let item = call.item("in_progress");
                self.items.push(Item::Call { call, done: false });
                self.calls.push((chat_index, index));
                out.push(self.event("response.output_item.added", json!({"output_index": index, "item": item})));
                index
            }
        };
        let piece = function.get("arguments").and_then(Value::as_str).filter(|a| !a.is_empty());
        let Some(Item::Call { call, done: false }) = self.items.get_mut(index) else { return };
        let Some(piece) = piece else { return };
        call.arguments.push_str(piece);
        let data = json!({"item_id": call.id, "output_index": index, "delta": piece});
        out.push(self.event("response.function_call_arguments.delta", data));
    }

    /// Closes every item still open, in output order.
    fn close(&mut self, out: &mut Vec<Event>) {
        let (status, _) = status(self.finish.as_deref());
        self.message = None;
        for index in 0..self.items.len() {
            self.close_item(index, item_status(status), out);
        }
    }

    /// An item's `.done` events, once.
    fn close_item(&mut self, index: usize, status: &str, out: &mut Vec<Event>) {
        let Some(item) = self.items.get_mut(index) else { return };
        let mut events = Vec::new();
        match item {
            Item::Message { done: true, .. } | Item::Call { done: true, .. } => return,
            Item::Message { id, parts, done } => {
                *done = true;
                for (content_index, part) in parts.iter().enumerate() {
                    let at = json!({"item_id": id, "output_index": index, "content_index": content_index});
                    if part.refusal {
                        events.push(("response.refusal.done", with(&at, "refusal", json!(part.text))));
                    } else {
                        let done = with(&with(&at, "text", json!(part.text)), "logprobs", json!([]));
                        events.push(("response.output_text.done", done));
                    }
                    events.push(("response.content_part.done", with(&at, "part", part.json())));
                }
            }
            Item::Call { call, done } => {
                *done = true;
                let data = json!({"item_id": call.id, "output_index": index, "arguments": call.arguments});
                events.push(("response.function_call_arguments.done", data));
            }
        }
        let item = item.json(status);
        events.push(("response.output_item.done", json!({"output_index": index, "item": item})));
        for (name, data) in events {
            out.push(self.event(name, data));
        }
    }

    /// The chat stream ended in an error: `response.failed`, with what was
    /// answered so far.
    fn fail(&mut self, error: &Value, out: &mut Vec<Event>) {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("the upstream failed mid-answer");
        let error = json!({"code": "server_error", "message": message});
        let snapshot = self.snapshot("failed", None, error);
        out.push(self.event("response.failed", json!({"response": snapshot})));
        self.ended = true;
    }
}

/// `base` with one more field.
fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut fields = base.as_object().cloned().unwrap_or_default();
    fields.insert(key.into(), value);
    Value::Object(fields)
}
