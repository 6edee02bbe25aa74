//! The client side: sends one attempt to a provider over hyper + rustls, with
//! a first-byte timeout and a total deadline, its key sent the way the
//! provider's API expects ([`Dialect`]).
//!
//! It acts, it does not decide: which provider, which model and whether to
//! fall back are the router's calls.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod client;
mod error;
mod response;
mod retry_after;

pub use client::{Attempt, Dialect, UpstreamClient, ANTHROPIC_VERSION};
pub use error::UpstreamError;
pub use response::UpstreamResponse;
pub use retry_after::MAX_RETRY_AFTER;
