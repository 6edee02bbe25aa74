//! Deja's server: the listener, the request pipeline that calls the stages in
//! order, the admin API, metrics, configuration and the command line.
//!
//! Read [`pipeline`] first: it is the request's life in one file.

pub mod admin;
pub mod auth;
pub mod cache_control;
pub mod cli;
pub mod config;
pub mod embeddings;
pub mod eval;
pub mod metrics;
pub mod miss;
pub mod models;
pub mod pipeline;
pub mod relay;
pub mod remember;
pub mod reply;
pub mod respond;
pub mod server;
pub mod state;
pub mod tls;
pub mod walker;

use config::Config;
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Re-reads the config file and applies it. An invalid file changes nothing.
pub fn reload(state: &AppState) -> Result<Vec<&'static str>, deja_api::ApiError> {
    let current = state.config();
    let Some(path) = current.source.clone() else {
        return Err(deja_api::ApiError::invalid_request("this instance was not started from a config file", None));
    };
    match Config::load(&path) {
        Ok(new) => {
            let needs_restart = state.replace_config(new);
            tracing::info!(path = %path.display(), ?needs_restart, "configuration reloaded");
            Ok(needs_restart)
        }
        Err(e) => {
            tracing::warn!(error = %e, "configuration reload refused; the running configuration stays");
            Err(deja_api::ApiError::invalid_request(format!("reload refused: {e}"), None))
        }
    }
}

/// A running server, for `deja serve`, tests and benchmarks.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish, flushes the store, and
    /// waits until nothing holds it, so the same store can be opened again.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        self.state.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.state.sweep_now.notify_one();
        let _ = self.state.store.flush();
        for _ in 0..500 {
            if Arc::strong_count(&self.state) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
        let _ = self.state.store.flush();
    }

    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds the listener and starts serving with background maintenance.
pub async fn start(
    config: Config,
    embedder: Option<Arc<dyn deja_embed::Embedder>>,
) -> Result<Running, Box<dyn std::error::Error + Send + Sync>> {
    let tls = match &config.server.tls {
        Some(files) => Some(tls::acceptor(files)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
    let addr = listener.local_addr()?;
    let state = tokio::task::spawn_blocking(move || AppState::build(config, embedder)).await??;
    if !state.index_ready.load(std::sync::atomic::Ordering::SeqCst) {
        let s = state.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            match s.index.rebuild_from(&s.store) {
                Ok(live) => {
                    tracing::info!(indexed = live, took_s = started.elapsed().as_secs_f64(), "semantic index ready")
                }
                Err(e) => tracing::error!(error = %e, "semantic index rebuild failed; semantic lookups will miss"),
            }
            s.index_ready.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    spawn_maintenance(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(state.clone(), listener, tls, async {
        let _ = rx.await;
    }));
    Ok(Running { addr, state, shutdown: Some(tx), task })
}

/// Sweeps expired entries, evicts past capacity and rebuilds the index when
/// tombstones pile up: on a timer, and at once when asked.
fn spawn_maintenance(state: Arc<AppState>) {
    tokio::spawn(async move {
        loop {
            let interval = state.config().cache.sweep_interval.max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = state.sweep_now.notified() => {}
            }
            if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let s = state.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let max = s.config().cache.max_entries;
                let report = deja_cache::maintenance::sweep(&s.store, Some(&s.index), deja_cache::now_ms(), max)?;
                // Never two rebuilds at once: the start-up one may still run.
                if s.index_ready.load(std::sync::atomic::Ordering::SeqCst) && s.index.needs_rebuild() {
                    s.index.rebuild_from(&s.store)?;
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
