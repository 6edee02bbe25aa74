//! What the index last saved and its counters for `/admin/stats`. The index
//! holds these and the save and restore in `persist.rs` fill them in. They
//! live apart from both so that the index does not import `persist.rs`,
//! which imports the index.

use super::manifest::GraphFiles;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// What was saved, and counters for `/admin/stats`.
#[derive(Default)]
pub(crate) struct Persisted {
    /// Every vector change at or below this is reflected in the live index,
    /// or looked at by the next save (see the module comment of `persist.rs`).
    pub(super) base: u64,
    /// Graphs saved and unchanged since: their stamp and files.
    pub(super) saved: HashMap<[u8; 32], (u64, GraphFiles)>,
    pub(super) last_save: Option<Instant>,
    pub(super) names: u64,
    pub(super) stats: IndexStats,
}

/// The index's health and history since the process started.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IndexStats {
    pub entries: usize,
    pub tombstones: usize,
    pub contexts: usize,
    pub graphs: usize,
    /// Whether start-up loaded a saved index instead of rebuilding it.
    pub loaded_from_dump: bool,
    /// Full rebuilds from the store, the start-up one included.
    pub rebuilt: u64,
    /// Contexts whose saved graph was refused at start-up and rebuilt.
    pub contexts_rebuilt: u64,
    /// Ids looked at again at start-up because they changed after the save.
    pub replayed: u64,
    pub restore_ms: u64,
    pub saves: u64,
    pub save_failures: u64,
    pub last_save_ms: u64,
    /// Inserts and removals not yet in a save.
    pub unsaved_changes: u64,
    /// Bytes of the last save's files.
    pub saved_bytes: u64,
    /// A rough count of the memory the index holds: vectors, links, ids.
    pub approx_bytes: u64,
}
