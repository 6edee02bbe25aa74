//! A whole (non-streamed) chat completion: the plan walked until an
//! attempt answers with a valid one.

use super::{classify, Walker};
use bytes::Bytes;
use deja_api::ApiError;
use deja_router::{FailureKind, ModelSpec};
use deja_upstream::UpstreamError;

/// A whole `chat.completion` in OpenAI's shape, the bytes it came as (after
/// translation from the provider's dialect), the model that answered and
/// what the answer cost (already charged).
pub struct Completed {
    pub completion: deja_api::ChatCompletion,
    pub raw: Bytes,
    pub model: ModelSpec,
    pub cost_usd: f64,
}

impl Walker {
    /// Walks the plan until an attempt answers a non-streamed request with a
    /// valid `chat.completion` of at most `max_bytes`; every other answer is a
    /// failure of that attempt. Records the success and charges the answer.
    pub async fn complete(&mut self, max_bytes: usize) -> Result<Completed, ApiError> {
        loop {
            let mut opened = self.open().await?;
            let raw = match opened.response.collect(max_bytes).await {
                Ok(b) => b,
                Err(e) => {
                    // A 2xx the provider began: billed though unread.
                    let received = match &e {
                        UpstreamError::TooLarge(n) => *n,
                        _ => 0,
                    };
                    self.charge_unfinished(&opened.model, received);
                    let (kind, _, detail) = classify(&e);
                    self.fail(&opened.model, kind, None, detail);
                    continue;
                }
            };
            let received = raw.len();
            let (raw, cache_writes) = match opened.openai_body(raw) {
                Ok(b) => b,
                Err(detail) => {
                    self.charge_unfinished(&opened.model, received);
                    self.fail(&opened.model, FailureKind::Malformed, None, detail);
                    continue;
                }
            };
            match serde_json::from_slice::<deja_api::ChatCompletion>(&raw) {
                Ok(mut completion) if !completion.choices.is_empty() => {
                    super::dialect::set_cache_writes(&mut completion, cache_writes);
                    self.succeeded(&opened.model);
                    let tokens = completion.usage.as_ref().map_or(0, |u| u.completion_tokens);
                    self.throughput(&opened.model, tokens, opened.started.elapsed().saturating_sub(opened.head));
                    let cost_usd = self.charge(&opened.model, completion.usage.as_ref());
                    return Ok(Completed { completion, raw, model: opened.model, cost_usd });
                }
                _ => {
                    self.charge_unfinished(&opened.model, received);
                    self.fail(
                        &opened.model,
                        FailureKind::Malformed,
                        None,
                        "the response was not a chat completion".into(),
                    )
                }
            }
        }
    }
}
