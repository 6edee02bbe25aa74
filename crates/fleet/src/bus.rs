//! One pub/sub subscription per replica, for what must travel at once:
//! cooldowns (`{prefix}:cool`) and "the answer is in Redis" for replicas
//! waiting on another's upstream call (`{prefix}:ready`). Messages are hints:
//! one lost while the subscription is down is made up for by polling
//! ([`super::cooldowns::refresh`], [`super::coalesce`]'s probes), so this
//! task only reconnects, never blocks anything.

use super::{Fleet, FleetError};
use deja_gateway::state::AppState;
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Pause before resubscribing after a failure.
const RETRY: Duration = Duration::from_millis(250);
/// A silent subscription is pinged this often, so a dead one is noticed.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How often the loop looks at `stopping`.
const TICK: Duration = Duration::from_millis(200);

pub(super) async fn listen(state: Arc<AppState>, fleet: Arc<Fleet>) {
    while !state.stopping.load(Ordering::SeqCst) {
        if let Err(e) = session(&state, &fleet).await {
            tracing::debug!(error = %e, "cluster: the pub/sub subscription failed; resubscribing");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Subscribes and dispatches messages until the connection fails or the state stops.
async fn session(state: &Arc<AppState>, fleet: &Arc<Fleet>) -> Result<(), FleetError> {
    let limit = fleet.settings.timeout.max(Duration::from_millis(500));
    let client = fleet.client()?;
    let pubsub = match tokio::time::timeout(limit, client.get_async_pubsub()).await {
        Ok(r) => r?,
        Err(_) => return Err(FleetError::Timeout(limit)),
    };
    let (mut sink, mut messages) = pubsub.split();
    let (cool, ready) = (fleet.cool_channel(), fleet.ready_channel());
    match tokio::time::timeout(limit, sink.subscribe(&[&cool, &ready])).await {
        Ok(r) => r?,
        Err(_) => return Err(FleetError::Timeout(limit)),
    }
    let mut quiet = Duration::ZERO;
    while !state.stopping.load(Ordering::SeqCst) {
        match tokio::time::timeout(TICK, messages.next()).await {
            Ok(Some(msg)) => {
                quiet = Duration::ZERO;
                let Ok(payload) = msg.get_payload::<String>() else { continue };
                if msg.get_channel_name() == cool {
                    super::cooldowns::heard(state, fleet, &payload);
                } else {
                    fleet.locks.wake(&payload);
                }
            }
            Ok(None) => return Err(FleetError::Unreachable),
            Err(_) => {
                quiet += TICK;
                if quiet >= PING_EVERY {
                    quiet = Duration::ZERO;
                    match tokio::time::timeout(limit, sink.ping::<redis::Value>()).await {
                        Ok(r) => {
                            r?;
                        }
                        Err(_) => return Err(FleetError::Timeout(limit)),
                    }
                }
            }
        }
    }
    Ok(())
}

impl Fleet {
    /// A client for `cluster.redis_url`, with the password from `password_env`.
    fn client(&self) -> Result<redis::Client, FleetError> {
        use redis::IntoConnectionInfo;
        let mut info = self.settings.redis_url.as_str().into_connection_info()?;
        if let Some(p) = &self.settings.password {
            info.redis.password = Some(p.clone());
        }
        Ok(redis::Client::open(info)?)
    }
}
