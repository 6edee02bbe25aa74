//! Reading an OpenAI chat request on its way to another provider: what every
//! dialect refuses the same way.

use deja_api::ApiError;
use serde_json::Value;

/// A 400 naming `param`, which `provider` ("an Anthropic model") cannot honour.
pub(crate) fn refuse(provider: &str, param: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(format!("`{param}` cannot be sent to {provider}: {why}"), Some(param))
        .with_code("unsupported_parameter")
}

/// The text of system message `i`: a string or text parts, nothing else.
pub(crate) fn system_text(provider: &str, content: &Value, i: usize) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => Ok(t.to_string()),
                _ => Err(refuse(provider, "messages", format!("messages[{i}]: a system message may hold only text"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|t| t.join("\n")),
        _ => Err(refuse(provider, "messages", format!("messages[{i}]: expected text content"))),
    }
}
