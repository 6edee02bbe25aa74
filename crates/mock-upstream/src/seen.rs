//! What the provider-specific routes record about each call (headers, URL
//! query), kept per model in [`MockControl`](crate::MockControl). They are
//! here rather than beside their routes so the control handle that stores
//! them does not depend on the routes, which depend on it.

/// The headers an Anthropic call arrived with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnthropicHeaders {
    pub x_api_key: Option<String>,
    pub anthropic_version: Option<String>,
    pub authorization: Option<String>,
}

/// How a Gemini call arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeminiCall {
    pub x_goog_api_key: Option<String>,
    pub authorization: Option<String>,
    /// The query string of the URL (`alt=sse` for a stream).
    pub query: Option<String>,
}
