//! Provider dialects. Deja speaks OpenAI's chat completions API to its
//! clients and stores every answer in that shape; a provider that speaks
//! another API gets its requests translated on the way out and its answers
//! (whole or streamed) translated back, so the cache, the relay and the
//! price table never see the difference.
//!
//! Pure code: no IO, no clock (`created` timestamps are passed in).

#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod anthropic;
mod events;
pub mod gemini;
mod openai_request;

pub use events::UpstreamEvents;

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// OpenAI's chat completions API (and every compatible provider):
    /// requests and answers pass through untranslated.
    #[default]
    OpenAi,
    /// Anthropic's Messages API (`POST /messages`, `x-api-key`).
    Anthropic,
    /// Google's Gemini API (`models/{model}:generateContent`, `x-goog-api-key`).
    Gemini,
}

impl ProviderKind {
    /// The names accepted in configuration.
    pub const NAMES: &'static [&'static str] = &["openai", "anthropic", "gemini"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            "gemini" => Some(Self::Gemini),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
        }
    }
}
