//! The client side: sends one attempt to an OpenAI-compatible provider over
//! hyper + rustls, with a first-byte timeout and a total deadline.
//!
//! It acts, it does not decide: which provider, which model and whether to
//! fall back are the router's calls.

mod client;
mod error;
mod response;
mod retry_after;

pub use client::{Attempt, UpstreamClient};
pub use error::UpstreamError;
pub use response::UpstreamResponse;
