//! Background upkeep of the cache: sweeping expired entries, evicting past
//! capacity, and rebuilding the semantic index when tombstones pile up.

use crate::state::AppState;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Rebuilds the semantic index of a store too large to index before serving.
pub fn spawn_background_rebuild(state: Arc<AppState>) {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        if let Err(e) = state.conversations.rebuild_from(&state.store) {
            tracing::error!(error = %e, "conversation index rebuild failed; conversations will miss");
        }
        match state.index.rebuild_from(&state.store) {
            Ok(live) => {
                tracing::info!(indexed = live, took_s = started.elapsed().as_secs_f64(), "semantic index ready")
            }
            Err(e) => tracing::error!(error = %e, "semantic index rebuild failed; semantic lookups will miss"),
        }
        state.index_ready.store(true, Ordering::SeqCst);
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
                let max = s.config().cache.max_entries;
                let report = deja_cache::maintenance::sweep(&s.store, Some(&s.index), deja_cache::now_ms(), max)?;
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
