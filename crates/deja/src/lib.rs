//! The `deja` binary's library: the listener that routes requests to the
//! request path (`deja-gateway`) and the operator surface (`deja-admin`), TLS,
//! the command line, `deja eval` and the admin client.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

mod admin_guard;
pub mod capacity;
pub mod cli;
mod doors;
mod edge;
pub mod eval;
pub mod eval_routes;
mod rate;
pub mod reembed;
pub mod server;
pub mod tls;

pub use deja_gateway::config;
pub use deja_gateway::reload;
pub use deja_gateway::state;

use deja_gateway::maintenance;
use deja_gateway::{AppState, Config};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running server, for `deja serve`, tests and benchmarks.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin listener's address, with `server.admin_listen`.
    pub admin_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish, flushes the store, and
    /// waits until nothing holds it, so the same store can be opened again.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        let _ = (&mut self.task).await;
        self.state.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.state.sweep_now.notify_one();
        save_index(&self.state).await;
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
        save_index(&self.state).await;
        let _ = self.state.store.flush();
    }

    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
    }
}

/// Saves the semantic index at a clean shutdown, so the next start loads it.
async fn save_index(state: &Arc<AppState>) {
    let s = state.clone();
    let _ = tokio::task::spawn_blocking(move || maintenance::save_index_if_changed(&s)).await;
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
    let admin_listener = match config.server.admin_listen {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
        None => None,
    };
    let admin_addr = admin_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    // With [cluster], the replica's ports are made once the metrics exist,
    // and the replica is started once the state exists.
    let replica: Arc<std::sync::OnceLock<Arc<deja_fleet::Replica>>> = Arc::default();
    let made = replica.clone();
    let fleet: deja_gateway::state::FleetPorts = Box::new(move |cluster, metrics| {
        let r = deja_fleet::Replica::new(cluster.clone(), metrics);
        let ports = r.ports();
        let _ = made.set(r);
        ports
    });
    let state = tokio::task::spawn_blocking(move || AppState::build_with(config, embedder, Some(fleet))).await??;
    if !state.index_ready.load(std::sync::atomic::Ordering::SeqCst) {
        maintenance::spawn_background_index(state.clone());
    }
    maintenance::spawn(state.clone());
    maintenance::spawn_index_saver(&state);
    // With [cluster]: apply the deletes made while this replica was down before serving (bounded wait).
    if let Some(replica) = replica.get() {
        replica.start(&state).await;
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let serves = if admin_listener.is_some() { server::Serves::Clients } else { server::Serves::Everything };
    let clients = server::serve(state.clone(), listener, tls.clone(), serves, stopped(rx.clone()));
    let admin = admin_listener.map(|l| server::serve(state.clone(), l, tls, server::Serves::Admin, stopped(rx)));
    let task = tokio::spawn(async move {
        match admin {
            Some(admin) => {
                tokio::join!(clients, admin);
            }
            None => clients.await,
        }
    });
    Ok(Running { addr, admin_addr, state, shutdown: Some(tx), task })
}
