//! Loading the semantic index from its last save, at start-up or in the
//! background: what the state and the maintenance tasks both do.

use deja_cache::{PersistError, SemanticIndex};
use deja_store::Store;
use std::time::Instant;

/// Loads the index saved beside the store, if it can be trusted (see
/// `deja_cache::semantic::persist`). Returns whether it did; if not, the
/// caller rebuilds.
pub fn restore_index(index: &SemanticIndex, store: &Store) -> bool {
    let Some(dir) = deja_cache::graphs_dir(store) else { return false };
    let started = Instant::now();
    match index.restore(store, &dir) {
        Ok(r) => {
            tracing::info!(
                indexed = r.entries,
                graphs = r.graphs_loaded,
                replayed = r.replayed,
                contexts_rebuilt = r.contexts_rebuilt,
                took_ms = started.elapsed().as_millis() as u64,
                "semantic index loaded from its last save"
            );
            true
        }
        Err(PersistError::NoRecord) => false,
        Err(e) => {
            tracing::warn!(error = %e, "the saved semantic index was not used; rebuilding it from the store");
            false
        }
    }
}
