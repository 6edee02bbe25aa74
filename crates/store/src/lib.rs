//! Deja's durable state on sled: cache entries with their indexes, the
//! vectors of the semantic cache, and the saved/spent counters.
//!
//! Every entry is written in one sled transaction across its trees, so a kill
//! at any moment leaves either the whole entry or none of it.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod changes;
mod counters;
mod entry;
mod error;
mod index_keys;
mod pending;
mod store;

pub use counters::{nano_to_usd, usd_to_nano, Counter, Verifications};
pub use entry::{ConversationMeta, Entry, EntryKind, EntryUsage, HitStats, ListFilter, SemanticMeta};
pub use error::StoreError;
pub use store::{ListPage, Store, StoredVector, SweptBatch, CLEAN_SIZES_KEY, HIT_FLUSH_INTERVAL};
