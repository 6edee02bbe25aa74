//! The request path: a chat or embeddings request from the moment it is
//! authorised to the moment its answer is sent and stored.
//!
//! Read [`pipeline`] first: it is the request's life in one file.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod answer;
mod assemble;
pub mod auth;
pub mod budget;
pub mod cache_control;
pub mod embedding_model;
pub mod embeddings;
pub mod feed;
pub mod headers;
pub mod hits;
pub mod index_restore;
pub mod ledger;
pub mod lookups;
pub mod maintenance;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod planning;
pub mod ports;
pub mod reload;
pub mod reply;
pub mod respond;
pub mod routes;
pub mod slo;
pub mod stages;
pub mod state;
pub mod verify;
pub mod verify_later;
pub mod walker;

/// The validated configuration lives in its own crate; the request path reads it.
pub use deja_config as config;

pub use config::Config;
pub use reload::reload;
pub use state::AppState;
