//! What an upstream error means: the failure kind the router decides on,
//! and the client's error when the request itself is at fault.

use deja_api::{ApiError, ErrorKind};
use deja_providers::{anthropic, gemini, ProviderKind};
use deja_router::{FailureKind, ModelSpec};
use deja_upstream::UpstreamError;
use serde_json::Value;
use std::time::Duration;

/// A 4xx that is the request's own fault, normalized to OpenAI's shape.
pub fn client_error(model: &ModelSpec, e: &UpstreamError, dialect: ProviderKind) -> ApiError {
    let name = &model.name;
    let UpstreamError::Status { status, body, .. } = e else {
        return ApiError::new(ErrorKind::BadGateway, format!("{name}: {e}"));
    };
    let upstream: Option<Value> = serde_json::from_slice(body).ok();
    let field = |key: &str| upstream.as_ref().and_then(|v| v.get("error")?.get(key)?.as_str()).map(str::to_string);
    let message = field("message").unwrap_or_else(|| format!("the upstream refused the request with status {status}"));
    let kind = match status {
        404 => ErrorKind::NotFound,
        413 => ErrorKind::PayloadTooLarge,
        _ => ErrorKind::InvalidRequest,
    };
    let mut err = ApiError::new(kind, format!("{name}: {message}")).with_status(*status);
    err.code = match dialect {
        ProviderKind::OpenAi => field("code"),
        ProviderKind::Anthropic => anthropic::error_type(body),
        ProviderKind::Gemini => gemini::error_status(body),
    };
    err.param = field("param");
    err
}

pub fn classify(e: &UpstreamError) -> (FailureKind, Option<Duration>, String) {
    match e {
        UpstreamError::Connect(m) => (FailureKind::Connect, None, format!("connect failed: {m}")),
        UpstreamError::InvalidUrl(m) => {
            // The URL is configuration: logs only, the client gets the gist.
            tracing::warn!(error = %m, "an upstream request could not be built: check the provider's base_url");
            (FailureKind::Connect, None, "the provider's URL is invalid".into())
        }
        UpstreamError::FirstByteTimeout => (FailureKind::FirstByteTimeout, None, "first-byte timeout".into()),
        UpstreamError::Timeout => (FailureKind::TotalTimeout, None, "attempt timeout".into()),
        UpstreamError::Status { status, retry_after, .. } => {
            let why = if matches!(status, 401 | 403) { ": the provider rejected Deja's credentials" } else { "" };
            (FailureKind::Status(*status), *retry_after, format!("status {status}{why}"))
        }
        UpstreamError::Body(m) => (FailureKind::Malformed, None, format!("connection broke: {m}")),
        UpstreamError::TooLarge(n) => (FailureKind::Malformed, None, format!("response over {n} bytes")),
    }
}
