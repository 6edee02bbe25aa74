//! `POST /v1/embeddings` request type.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingsRequest {
    pub fn parse(body: &[u8]) -> Result<Self, crate::ApiError> {
        let req: Self = serde_json::from_slice(body)
            .map_err(|e| crate::ApiError::invalid_request(format!("invalid request body: {e}"), None))?;
        let ok = match &req.input {
            Value::String(_) => true,
            Value::Array(items) => !items.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(crate::ApiError::invalid_request(
                "`input` must be a string or a non-empty array",
                Some("input"),
            ));
        }
        Ok(req)
    }

    /// Rough input size in characters, for the prompt-token estimate.
    pub fn input_chars(&self) -> usize {
        self.input.to_string().len()
    }
}
