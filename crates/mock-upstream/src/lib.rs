//! A simulated OpenAI-compatible provider.
//!
//! It answers chat completions (plain and streamed) and embeddings with
//! deterministic content, counts calls per model, records the credentials it
//! was sent, and injects faults on demand: status codes with `Retry-After`,
//! delays, malformed bodies, streams that stall or are cut mid-way, and long
//! answers of any size (`Fault::LongStream`, whose text [`long_answer`] gives).
//! Streams can be sent in the styles real providers use ([`StreamStyle`]):
//! usage in different places or not at all, CRLF separators, keep-alive
//! comments, events split across writes. It frames SSE itself.
//! `POST /v1/messages` speaks Anthropic's Messages API the same way, and
//! `POST /v1beta/models/{model}:generateContent` Google's Gemini API; with
//! `StreamStyle::sparse` their answers leave out the fields the providers'
//! references mark optional (Gemini usage only on the last chunk, no
//! `modelVersion`, no cache counts in Anthropic's usage). [`PromptCache`]
//! makes OpenAI and Anthropic answers report prompt tokens read from (and,
//! Anthropic, written to) a prompt cache.
//! Tests drive it through [`MockControl`]; other processes through its
//! `/_mock/*` control routes.

mod answer;
mod anthropic;
mod control;
mod frame;
mod gemini;
mod seen;
mod server;
mod stream;

pub use answer::long_answer;
pub use control::{Fault, MockControl, PromptCache, StreamStyle, UsageStyle, JUDGE_MODEL};
pub use seen::{AnthropicHeaders, GeminiCall};
pub use server::{serve, MockUpstream};
