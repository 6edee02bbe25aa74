//! Background upkeep of the cache: sweeping expired entries, evicting past
//! capacity, rebuilding the semantic index when tombstones pile up, and
//! saving it beside the store so a restart need not rebuild it.

use crate::state::AppState;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the saver asks the index whether a save is due.
const SAVE_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Saves the semantic index now if anything is unsaved (at shutdown).
pub fn save_index_if_changed(state: &AppState) {
    if state.index_ready.load(Ordering::SeqCst) && state.index.has_unsaved() {
        save_index(state);
    }
}

fn save_index(state: &AppState) {
    let Some(dir) = deja_cache::graphs_dir(&state.store) else { return };
    let started = Instant::now();
    match state.index.save(&state.store, &dir) {
        Ok(r) => tracing::info!(
            graphs_written = r.graphs_written,
            graphs_kept = r.graphs_kept,
            bytes = r.bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "semantic index saved"
        ),
        Err(e) => tracing::warn!(error = %e, "saving the semantic index failed; a restart will rebuild it"),
    }
}

/// Saves the index in the background when enough changed (or long enough
/// ago). Holds the state only while saving, so a stopping server is not kept.
pub fn spawn_index_saver(state: &Arc<AppState>) {
    if deja_cache::graphs_dir(&state.store).is_none() {
        return;
    }
    let weak: Weak<AppState> = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SAVE_CHECK_EVERY).await;
            let Some(state) = weak.upgrade() else { return };
            if state.stopping.load(Ordering::SeqCst) {
                return;
            }
            if state.index_ready.load(Ordering::SeqCst) && state.index.should_save() {
                let _ = tokio::task::spawn_blocking(move || save_index(&state)).await;
            }
        }
    });
}

/// Loads the semantic index of a store too large to index before serving
/// from its last save, or rebuilds it from the store. Changes made meanwhile
/// are replayed into it either way (see `SemanticIndex::rebuild_from`).
pub fn spawn_background_index(state: Arc<AppState>) {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        if !crate::index_restore::restore_index(&state.index, &state.store) {
            match state.index.rebuild_from(&state.store) {
                Ok(live) => {
                    tracing::info!(indexed = live, took_s = started.elapsed().as_secs_f64(), "semantic index ready")
                }
                Err(e) => tracing::error!(error = %e, "semantic index rebuild failed; semantic lookups will miss"),
            }
        }
        state.index_ready.store(true, Ordering::SeqCst);
        // Conversation entries are a scan of every entry: after the index,
        // so single questions hit first (conversations miss meanwhile).
        if let Err(e) = state.conversations.rebuild_from(&state.store) {
            tracing::error!(error = %e, "conversation index rebuild failed; conversations will miss");
        }
    });
}

/// Sweeps on a timer, and at once when asked, until the state is stopping.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            let interval = state.config().cache.sweep_interval.max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = state.sweep_now.notified() => {}
            }
            if state.stopping.load(Ordering::SeqCst) {
                return;
            }
            let s = state.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let bounds = s.config().cache.bounds();
                let report = deja_cache::maintenance::sweep(&s.store, Some(&s.index), deja_cache::now_ms(), bounds)?;
                // Never two rebuilds at once: the start-up one may still run.
                if s.index_ready.load(Ordering::SeqCst) && s.index.needs_rebuild() {
                    s.index.rebuild_from(&s.store)?;
                }
                // Entries swept, evicted or deleted leave the conversation index here.
                if !s.conversations.is_empty() {
                    s.conversations.prune(&s.store)?;
                }
                Ok::<_, deja_store::StoreError>(report)
            })
            .await;
            match outcome {
                Ok(Ok(r)) if r.expired + r.evicted > 0 => {
                    tracing::info!(expired = r.expired, evicted = r.evicted, "cache swept")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cache sweep failed"),
                _ => {}
            }
            state.metrics.entries.set(state.store.len() as i64);
            state.metrics.index_entries.set(state.index.len() as i64);
        }
    });
}
