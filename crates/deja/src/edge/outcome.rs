//! The two plain outcomes every route answers with.

use deja_api::ApiError;
use deja_gateway::reply::{self, Body, Outcome};
use http::Response;

/// A response that did not touch the cache.
pub fn plain(response: Response<Body>) -> Outcome {
    Outcome { response, cache: "none" }
}

/// An OpenAI-shaped error.
pub fn err(e: ApiError) -> Outcome {
    Outcome { response: reply::error(&e), cache: "error" }
}
