//! Anthropic's Messages API (`anthropic-version: 2023-06-01`).
//!
//! - [`to_messages_request`]: an OpenAI chat request to a Messages request,
//!   or a 400 naming the parameter Anthropic cannot honour.
//! - [`to_chat_completion`]: a Message to a `chat.completion`
//!   ([`to_chat_completion_and_cache_writes`]: and the prompt tokens it wrote
//!   to Anthropic's prompt cache, which OpenAI's usage cannot carry).
//! - [`StreamTranslator`]: Messages stream events to `chat.completion.chunk`s.
//! - [`error_type`]: the `type` of an Anthropic error body.

mod request;
mod response;
mod stream;

pub use request::to_messages_request;
pub use response::{error_type, finish_reason, to_chat_completion, to_chat_completion_and_cache_writes};
pub use stream::StreamTranslator;

/// Where a Messages request goes, below the provider's base URL.
pub const PATH: &str = "/messages";

/// The `max_tokens` sent when the client set none: Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[cfg(test)]
mod tests;
