//! The seam between Deja's OpenAI dialect and providers that speak another:
//! the request body each attempt sends, and its answer (whole or streamed)
//! turned back into OpenAI's shape before the miss paths see it. The
//! translations themselves live in `deja_providers`.

use super::Opened;
use crate::config::Provider;
use bytes::Bytes;
use deja_api::{ApiError, ChatCompletion};
use deja_providers::{anthropic, gemini, ProviderKind, UpstreamEvents};
use deja_router::ModelSpec;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// The Messages request for an OpenAI request `body` sent to `path`, or the
/// 400 that says why this model cannot take it.
pub fn anthropic_body(path: &str, body: &Value, spec: &ModelSpec, provider: &Provider) -> Result<Bytes, ApiError> {
    if path != "/chat/completions" {
        return Err(ApiError::invalid_request(
            format!("provider `{}` speaks Anthropic's Messages API, which has no {path} endpoint", provider.name),
            Some("model"),
        ));
    }
    let translated = anthropic::to_messages_request(body, &spec.upstream_name, provider.default_max_tokens)?;
    Ok(Bytes::from(translated.to_string()))
}

/// The path and `GenerateContentRequest` for an OpenAI request `body`: the
/// model and whether the answer streams are in the path. Or the 400 that
/// says why this model cannot take it.
pub fn gemini_body(
    path: &str,
    body: &Value,
    spec: &ModelSpec,
    provider: &Provider,
) -> Result<(String, Bytes), ApiError> {
    if path != "/chat/completions" {
        return Err(ApiError::invalid_request(
            format!(
                "provider `{}` speaks Google's Gemini API, which Deja uses for chat only, not {path}",
                provider.name
            ),
            Some("model"),
        ));
    }
    let translated = gemini::to_generate_request(body)?;
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    Ok((gemini::path(&spec.upstream_name, stream), Bytes::from(translated.to_string())))
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Opened {
    /// The attempt's stream events as OpenAI chunk payloads.
    pub fn events(&self) -> UpstreamEvents {
        UpstreamEvents::new(self.kind, &self.model.upstream_name, now_s())
    }

    /// A whole answer as an OpenAI `chat.completion` body, and the prompt
    /// tokens it wrote to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`: OpenAI's usage has no field for them,
    /// so they travel beside the body; 0 for the others). `Err` says why it
    /// is not an answer at all.
    pub fn openai_body(&self, raw: Bytes) -> Result<(Bytes, u64), String> {
        match self.kind {
            ProviderKind::OpenAi => Ok((raw, 0)),
            ProviderKind::Anthropic => anthropic::to_chat_completion_and_cache_writes(&raw, now_s())
                .map(|(c, writes)| (Bytes::from(c.to_string()), writes)),
            ProviderKind::Gemini => gemini::to_chat_completion(&raw, &self.model.upstream_name, now_s())
                .map(|c| (Bytes::from(c.to_string()), 0)),
        }
    }
}

/// Sets the prompt tokens `completion` wrote to the provider's prompt cache,
/// counted from beside its body ([`Opened::openai_body`],
/// [`UpstreamEvents::cache_write_tokens`]), where its price is read.
pub fn set_cache_writes(completion: &mut ChatCompletion, cache_write_tokens: u64) {
    if let Some(u) = completion.usage.as_mut() {
        u.cache_write_tokens = cache_write_tokens;
    }
}
