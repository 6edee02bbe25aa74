//! Deja's durable state on sled: cache entries with their indexes, the
//! vectors of the semantic cache, and the saved/spent counters.
//!
//! Every entry is written in one sled transaction across its trees, so a kill
//! at any moment leaves either the whole entry or none of it.

mod counters;
mod entry;
mod error;
mod pending;
mod store;

pub use counters::{nano_to_usd, usd_to_nano, Counter, Verifications};
pub use entry::{Entry, EntryKind, EntryUsage, HitStats, ListFilter, SemanticMeta};
pub use error::StoreError;
pub use store::{ListPage, Store, StoredVector, SweptBatch, HIT_FLUSH_INTERVAL};
