//! What one cached answer holds.

use deja_api::CacheKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Chat,
    Embeddings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntryUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// Present on entries the semantic cache may serve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SemanticMeta {
    /// Hex of the context fingerprint (everything but the last user message).
    pub fingerprint: String,
    /// The last user message, for the guards that compare texts.
    pub text: String,
    /// Set on multi-turn requests: how the entry is found by conversations
    /// whose earlier turns differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationMeta>,
    /// The text the vector was made of when it is not `text`: behind a
    /// shared template, the question's own part. Re-embedding reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_of: Option<String>,
}

/// What a conversation candidate is matched on, besides the question's vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMeta {
    /// Hex of the coarse fingerprint (the context without the earlier turns).
    pub coarse: String,
    /// The embedding of the earlier turns' text.
    pub history: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(with = "key_hex")]
    pub id: CacheKey,
    pub kind: EntryKind,
    pub namespace: String,
    /// The `model` the client asked for: a ladder or a model name.
    pub requested_model: String,
    /// The model that produced the answer.
    pub answered_by: String,
    /// The request's messages (chat) or input (embeddings).
    pub request: serde_json::Value,
    /// The `chat.completion` or embeddings response, as a client receives it.
    pub response: serde_json::Value,
    pub usage: EntryUsage,
    pub cost_usd: f64,
    pub created_ms: u64,
    pub expires_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticMeta>,
}

impl Entry {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms <= now_ms
    }

    /// A short preview of the question, for listings.
    pub fn preview(&self, max_chars: usize) -> String {
        let text = match &self.semantic {
            Some(s) => s.text.clone(),
            None => match &self.request {
                serde_json::Value::Array(msgs) => {
                    msgs.iter().rev().find_map(deja_api::chat::message_text).unwrap_or_default()
                }
                other => other.to_string(),
            },
        };
        let mut out: String = text.chars().take(max_chars).collect();
        if text.chars().count() > max_chars {
            out.push('…');
        }
        out
    }
}

/// Hit count and last access, kept apart from the entry so a hit does not
/// rewrite the whole answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HitStats {
    pub hits: u64,
    pub last_access_ms: u64,
}

impl HitStats {
    pub(crate) fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.hits.to_be_bytes());
        b[8..].copy_from_slice(&self.last_access_ms.to_be_bytes());
        b
    }
    pub(crate) fn decode(b: &[u8]) -> Self {
        let word = |r: std::ops::Range<usize>| b.get(r).and_then(|s| s.try_into().ok()).map_or(0, u64::from_be_bytes);
        Self { hits: word(0..8), last_access_ms: word(8..16) }
    }
}

/// Filters for listing and purging.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub namespace: Option<String>,
    pub model: Option<String>,
    /// Only entries created before this time.
    pub created_before_ms: Option<u64>,
}

impl ListFilter {
    pub fn matches(&self, e: &Entry) -> bool {
        self.namespace.as_ref().is_none_or(|ns| &e.namespace == ns)
            && self.model.as_ref().is_none_or(|m| &e.requested_model == m || &e.answered_by == m)
            && self.created_before_ms.is_none_or(|t| e.created_ms < t)
    }
}

mod key_hex {
    use deja_api::CacheKey;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &CacheKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&k.to_hex())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CacheKey, D::Error> {
        let s = String::deserialize(d)?;
        CacheKey::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad entry id"))
    }
}
