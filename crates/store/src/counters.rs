//! Monotonic counters persisted in sled with a merge operator, so increments
//! from many tasks never race and survive restarts.

/// Every counter Deja keeps. USD amounts are stored in nano-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Requests,
    ExactHits,
    SemanticHits,
    Misses,
    Refreshes,
    Bypasses,
    TokensSaved,
    NanoUsdSaved,
    NanoUsdSpent,
    /// Semantic lookups of a question longer than the embedding model reads.
    UnmatchableTooLong,
    /// Semantic lookups of a question the model's vocabulary cannot represent.
    UnmatchableUnknownTokens,
}

impl Counter {
    pub const ALL: [Counter; 11] = [
        Counter::Requests,
        Counter::ExactHits,
        Counter::SemanticHits,
        Counter::Misses,
        Counter::Refreshes,
        Counter::Bypasses,
        Counter::TokensSaved,
        Counter::NanoUsdSaved,
        Counter::NanoUsdSpent,
        Counter::UnmatchableTooLong,
        Counter::UnmatchableUnknownTokens,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Counter::Requests => "requests",
            Counter::ExactHits => "hits_exact",
            Counter::SemanticHits => "hits_semantic",
            Counter::Misses => "misses",
            Counter::Refreshes => "refreshes",
            Counter::Bypasses => "bypasses",
            Counter::TokensSaved => "tokens_saved",
            Counter::NanoUsdSaved => "nano_usd_saved",
            Counter::NanoUsdSpent => "nano_usd_spent",
            Counter::UnmatchableTooLong => "unmatchable_too_long",
            Counter::UnmatchableUnknownTokens => "unmatchable_unknown_tokens",
        }
    }
}

pub(crate) const SPENT_BY_MODEL_PREFIX: &str = "nano_usd_spent/";
pub(crate) const VERIFICATIONS_PREFIX: &str = "verifications/";
pub(crate) const VERIFICATION_NANO_USD_PREFIX: &str = "verification_nano_usd/";

/// Semantic candidates sent to the verifier, in one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verifications {
    /// Verifier calls made.
    pub calls: u64,
    /// What they cost, in nano-USD.
    pub nano_usd: u64,
}

pub(crate) fn add_u64(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let read = |b: Option<&[u8]>| b.and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
    Some(read(old).saturating_add(read(Some(delta))).to_le_bytes().to_vec())
}

pub fn usd_to_nano(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e9).round() as u64
    } else {
        0
    }
}

pub fn nano_to_usd(nano: u64) -> f64 {
    nano as f64 / 1e9
}
