//! The two cache stages and what keeps them honest.
//!
//! - [`exact`]: the entry stored under a request's blake3 key.
//! - [`semantic`]: the nearest stored question under the same context
//!   fingerprint, above the threshold, that passes the [`guards`], decided
//!   on what differs between the two texts ([`compare`]).
//! - [`coalesce`]: one upstream call for identical requests in flight.
//! - [`maintenance`]: TTL sweeps and LRU eviction.
//!
//! Nothing here calls an upstream: a miss is reported, not resolved.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod coalesce;
pub mod compare;
pub mod conversation;
pub mod exact;
pub mod freshness;
pub mod guards;
pub mod maintenance;
pub mod semantic;
pub mod spans;

pub use coalesce::{Coalescer, Role};
pub use compare::{Compared, Comparer, Unreadable};
pub use freshness::Freshness;
pub use guards::{GuardSettings, Guards};
pub use semantic::{
    graphs_dir, IndexStats, PersistError, SemanticHit, SemanticIndex, SemanticSettings, DEFAULT_SEARCH_BREADTH,
};
pub use spans::SpanVectors;

/// Milliseconds since the Unix epoch: the store's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
