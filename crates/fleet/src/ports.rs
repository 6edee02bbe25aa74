//! This crate as the gateway's ports: one [`Replica`] plugs the shared
//! tier, the fleet lock, the counters, the cooldowns and the admin
//! operations into the request path.
//!
//! The gateway's state is built with the ports, so the replica learns the
//! state only once it exists ([`Replica::start`]); until then (and after
//! it is gone) every port does without Redis.

use crate::{coalesce, cooldowns, counters, events, shared, Fleet};
use deja_api::CacheKey;
use deja_gateway::config::ClusterSettings;
use deja_gateway::metrics::Metrics;
use deja_gateway::ports::{self, FleetAdmin, FleetAdminError, FleetLock, Ports, SharedCooldowns, SharedTier};
use deja_gateway::state::AppState;
use deja_store::{Entry, ListFilter};
use futures_util::future::BoxFuture;
use std::sync::{Arc, OnceLock, Weak};

pub struct Replica {
    fleet: Arc<Fleet>,
    state: OnceLock<Weak<AppState>>,
}

impl Replica {
    pub fn new(settings: ClusterSettings, metrics: &Metrics) -> Arc<Self> {
        Arc::new(Self { fleet: Arc::new(Fleet::new(settings, metrics)), state: OnceLock::new() })
    }

    /// Every port, served by this replica.
    pub fn ports(self: &Arc<Self>) -> Ports {
        Ports {
            shared: Some(self.clone()),
            lock: Some(self.clone()),
            tally: Some(self.fleet.clone()),
            cooldowns: Some(self.clone()),
            admin: Some(self.clone()),
        }
    }

    /// Starts the background work (pub/sub, counters, cooldowns) and applies
    /// the deletes made while this replica was down.
    pub async fn start(&self, state: &Arc<AppState>) {
        let _ = self.state.set(Arc::downgrade(state));
        crate::start(state, &self.fleet).await;
    }

    fn state(&self) -> Option<Arc<AppState>> {
        self.state.get()?.upgrade()
    }
}

impl SharedTier for Replica {
    fn lookup<'a>(&'a self, key: &'a CacheKey, namespace: &'a str, now_ms: u64) -> BoxFuture<'a, Option<Entry>> {
        Box::pin(async move {
            let state = self.state()?;
            shared::lookup(&state, &self.fleet, key, namespace, now_ms).await
        })
    }

    fn share(&self, entry: &Entry, vector: Option<&[f32]>) {
        if let Some(state) = self.state() {
            shared::share(&state, &self.fleet, entry, vector);
        }
    }
}

impl FleetLock for Replica {
    fn turn<'a>(&'a self, namespace: &'a str, key: &'a CacheKey) -> BoxFuture<'a, ports::Turn> {
        Box::pin(async move {
            let Some(state) = self.state() else { return ports::Turn::Call(None) };
            match coalesce::turn(&state, &self.fleet, namespace, key).await {
                coalesce::Turn::Call(lock) => ports::Turn::Call(lock.map(|l| Box::new(l) as ports::HeldLock)),
                coalesce::Turn::Answered(answer) => ports::Turn::Answered(answer),
            }
        })
    }
}

impl SharedCooldowns for Replica {
    fn cooled(&self, model: &str) {
        if let Some(state) = self.state() {
            cooldowns::cooled(&state, &self.fleet, model);
        }
    }
}

impl FleetAdmin for Replica {
    fn stats(&self) -> serde_json::Value {
        self.fleet.stats()
    }

    fn figures(&self) -> serde_json::Value {
        match self.state() {
            Some(state) => counters::figures(&state, &self.fleet),
            None => serde_json::json!({"enabled": true}),
        }
    }

    fn state_label(&self) -> &'static str {
        self.fleet.state_label()
    }

    fn delete<'a>(
        &'a self,
        key: &'a CacheKey,
        namespace: Option<&'a str>,
    ) -> BoxFuture<'a, Result<usize, FleetAdminError>> {
        Box::pin(async move {
            events::delete(&self.fleet, key, namespace)
                .await
                .map(usize::from)
                .map_err(|e| FleetAdminError(e.to_string()))
        })
    }

    fn purge(&self, filter: ListFilter) -> BoxFuture<'_, Result<usize, FleetAdminError>> {
        Box::pin(async move {
            events::purge(&self.fleet, &filter).await.map(|n| n as usize).map_err(|e| FleetAdminError(e.to_string()))
        })
    }
}
