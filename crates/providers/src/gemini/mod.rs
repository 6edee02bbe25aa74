//! Google's Gemini API (`generateContent`, `x-goog-api-key`).
//!
//! - [`to_generate_request`]: an OpenAI chat request to a
//!   `GenerateContentRequest`, or a 400 naming the parameter Gemini cannot
//!   honour.
//! - [`path`]: where it goes (the model and whether it streams are in the URL).
//! - [`to_chat_completion`]: a `GenerateContentResponse` to a `chat.completion`.
//! - [`StreamTranslator`]: the `GenerateContentResponse`s of a stream to
//!   `chat.completion.chunk`s.
//! - [`error_status`]: the `status` of a Gemini error body.

mod request;
mod response;
mod stream;

pub use request::to_generate_request;
pub use response::{error_status, finish_reason, to_chat_completion};
pub use stream::StreamTranslator;

/// Where a request for `model` goes, below the provider's base URL: the
/// streaming method asks for server-sent events (`alt=sse`). A leading
/// `models/` in the configured name is not repeated.
pub fn path(model: &str, stream: bool) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

#[cfg(test)]
mod tests;
