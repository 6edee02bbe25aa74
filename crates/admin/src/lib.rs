//! The operator surface: the admin API under `/admin/`, the Prometheus
//! `/metrics` page and `/readyz`. Every call here has already been authorised
//! by the listener.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod api;
pub mod observe;

pub use api::handle;
pub use observe::{metrics, readyz};
