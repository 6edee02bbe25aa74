//! Cooldowns shared across the fleet: a model that one replica cools (429s,
//! 5xx, timeouts) is skipped by the others too, instead of each replica
//! paying for its own failures before it learns.
//!
//! The replica that cools a model writes `{prefix}:cool:{model}` with the
//! cooldown as its `PX` and publishes it on `{prefix}:cool`. Every replica
//! applies what it hears at once ([`super::bus`]) and, every
//! `cluster.counters_flush`, reads the keys' remaining times, which covers a
//! message missed while its subscription was down. Remaining times come from
//! Redis's own clock, so replicas' clocks never need to agree. A learned
//! cooldown is not a failure here: it is never published again, and it
//! ends when the key does. Every call is bounded; failures are ignored.

use super::{Fleet, Query};
use deja_gateway::state::AppState;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A cooldown ending within this much of one already published is not published again.
const REPUBLISH_SLACK: Duration = Duration::from_millis(500);

/// When each model's last published cooldown ends.
#[derive(Default)]
pub(crate) struct Published(Mutex<HashMap<String, Instant>>);

impl Fleet {
    fn cool_key(&self, model: &str) -> String {
        format!("{}:cool:{model}", self.prefix())
    }

    pub(super) fn cool_channel(&self) -> String {
        format!("{}:cool", self.prefix())
    }
}

/// Called where a failure was recorded against `model`: if that put it in
/// cooldown here, tells the fleet (on a spawned task; failures ignored).
pub fn cooled(state: &AppState, fleet: &Arc<Fleet>, model: &str) {
    let fleet = fleet.clone();
    if !fleet.settings.share_cooldowns || !fleet.is_connected() {
        return;
    }
    let now = Instant::now();
    let Some(left) = state.calls.health.cooling(now).into_iter().find(|(m, _)| m == model).map(|(_, left)| left) else {
        return;
    };
    let until = now + left;
    {
        let mut published = fleet.cools.0.lock().unwrap_or_else(|e| e.into_inner());
        if published.get(model).is_some_and(|&t| t + REPUBLISH_SLACK >= until) {
            return;
        }
        published.insert(model.to_string(), until);
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
    let ms = left.as_millis().max(1) as u64;
    let model = model.to_string();
    handle.spawn(async move {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(fleet.cool_key(&model)).arg(ms).arg("PX").arg(ms).ignore();
        pipe.cmd("PUBLISH").arg(fleet.cool_channel()).arg(format!("{ms} {model}")).ignore();
        match fleet.run::<()>(Query::Pipe(&pipe)).await {
            Ok(()) => {
                fleet.fleet_metrics.cooldowns_published.inc();
            }
            Err(e) => tracing::debug!(error = %e, %model, "could not share a cooldown"),
        }
    });
}

/// A `{ms} {model}` message from another replica (or this one: applying
/// it again changes nothing).
pub(super) fn heard(state: &AppState, fleet: &Fleet, payload: &str) {
    let Some((ms, model)) = payload.split_once(' ') else { return };
    let Ok(ms) = ms.parse::<u64>() else { return };
    learn(state, fleet, model, ms);
}

fn learn(state: &AppState, fleet: &Fleet, model: &str, ms: u64) {
    // Only models this replica knows, and never longer than a day: a bad
    // message must not switch a model off for good.
    let known = state.config().catalog.models.iter().any(|m| m.name == model);
    if !known || ms == 0 {
        return;
    }
    let now = Instant::now();
    let until = now + Duration::from_millis(ms.min(86_400_000));
    if !state.calls.health.is_cooling(model, now) {
        fleet.fleet_metrics.cooldowns_learned.inc();
    }
    state.calls.health.cool(model, until);
}

/// Reads the remaining time of every configured model's cooldown key (one
/// round trip) and applies those still running.
pub(super) async fn refresh(state: &Arc<AppState>, fleet: &Fleet) {
    if !fleet.settings.share_cooldowns || !fleet.is_connected() {
        return;
    }
    let models: Vec<String> = state.config().catalog.models.iter().map(|m| m.name.clone()).collect();
    if models.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for m in &models {
        pipe.cmd("PTTL").arg(fleet.cool_key(m));
    }
    let Ok(left) = fleet.run::<Vec<i64>>(Query::Pipe(&pipe)).await else { return };
    for (model, ms) in models.iter().zip(left) {
        // -2: no key; -1: no expiry (not written by Deja): ignored.
        if ms > 0 {
            learn(state, fleet, model, ms as u64);
        }
    }
}
