//! The verifier's instructions when the configuration gives none.

/// The system message unless `[cache.semantic.verifier] prompt` replaces it.
pub const DEFAULT_VERIFIER_PROMPT: &str =
    "You decide whether a cached answer may be reused. You are given a new request \
and one or more numbered cached requests, all in the same conversation context. A cached request matches only \
if its correct answer is exactly the correct answer to the new request: a different object, number, name, time, \
negation or intent means no match. Reply with only the number of the matching cached request, or with none.";
