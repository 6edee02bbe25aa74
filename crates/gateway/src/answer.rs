//! An upstream answer, as shared between the request that fetched it and the
//! identical requests that waited for it.

use deja_api::{ApiError, ChatCompletion};
use std::sync::Arc;

#[derive(Debug)]
pub struct Answer {
    pub completion: ChatCompletion,
    pub answered_by: String,
    pub attempts: usize,
    pub cost_usd: f64,
}

/// What a coalescing leader publishes to its followers.
pub type Shared = Result<Arc<Answer>, ApiError>;
