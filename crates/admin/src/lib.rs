//! The operator surface: the admin API under `/admin/`, the dashboard at
//! `/admin/ui`, the Prometheus `/metrics` page and `/readyz`. Every admin API
//! call here has already been authorised by the listener; the dashboard's
//! static files need no token (they hold no data).

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod api;
pub mod breakdown;
pub mod dashboard;
pub mod figures;
pub mod history;
pub mod lookups;
pub mod observe;
pub mod ui;
pub mod window;

pub use api::handle;
pub use observe::{metrics, readyz};
