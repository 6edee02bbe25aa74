//! The operator surface: the admin API under `/admin/`, the Prometheus
//! `/metrics` page and `/readyz`. Every call here has already been authorised
//! by the listener.

pub mod api;
pub mod observe;

pub use api::handle;
pub use observe::{metrics, readyz};
