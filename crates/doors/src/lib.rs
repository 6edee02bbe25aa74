//! Front doors other than `/v1/chat/completions`.
//!
//! A door is a translation and nothing else: its request becomes the chat
//! request it means (so every door shares one cache, one ladder, one set of
//! budgets and counters), and the chat answer, whole or streamed, is reshaped
//! into the door's own wire format. The gateway never sees a door's format.

pub mod messages;
pub mod responses;

use deja_api::ApiError;

/// A door request translated into the chat request it means.
#[derive(Debug, Clone)]
pub struct Translated<E> {
    /// The chat completion request body, as `/v1/chat/completions` accepts it.
    pub chat: serde_json::Value,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// What the door needs to echo back in its answer (model, parameters, ids).
    pub echo: E,
}

/// One server-sent event of a door's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event:` field; `None` writes only `data:`.
    pub name: Option<&'static str>,
    pub data: serde_json::Value,
}

impl Event {
    pub fn named(name: &'static str, data: serde_json::Value) -> Self {
        Self { name: Some(name), data }
    }

    /// The event framed for the wire: `event: name\ndata: {json}\n\n`.
    pub fn frame(&self) -> bytes::Bytes {
        let data = self.data.to_string();
        let mut out = String::with_capacity(data.len() + 32);
        if let Some(name) = self.name {
            out.push_str("event: ");
            out.push_str(name);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&data);
        out.push_str("\n\n");
        bytes::Bytes::from(out)
    }
}

/// Reshapes a chat completion stream, chunk by chunk, into a door's events.
pub trait Shaper: Send + 'static {
    /// One `chat.completion.chunk` object (or an `{"error": …}` object that
    /// ended the chat stream) → the door events it completes.
    fn chunk(&mut self, chunk: &serde_json::Value) -> Vec<Event>;
    /// The chat stream ended (`[DONE]` or the body closed): closing events.
    fn end(&mut self) -> Vec<Event>;
}

/// An error as the door's clients expect it: (HTTP status, body).
pub type DoorError = (u16, serde_json::Value);

/// Shorthand for a 400 that names the door field at fault.
pub fn invalid(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::invalid_request(message, Some(param))
}
