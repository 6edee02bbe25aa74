//! The fleet's periodic work, every `cluster.counters_flush`: add this
//! replica's counts to the fleet's and read the totals back
//! ([`super::counters`]), and pick up cooldowns whose message was missed
//! ([`super::cooldowns`]). A last flush runs when the replica stops.

use super::{cooldowns, counters, Fleet};
use deja_gateway::state::AppState;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the loop looks at `stopping`.
const TICK: Duration = Duration::from_millis(200);

pub(super) async fn run(state: Arc<AppState>, fleet: Arc<Fleet>) {
    let mut next = Instant::now();
    loop {
        if state.stopping.load(Ordering::SeqCst) {
            counters::flush(&fleet).await;
            return;
        }
        if Instant::now() >= next {
            next = Instant::now() + fleet.settings.counters_flush;
            counters::flush(&fleet).await;
            cooldowns::refresh(&state, &fleet).await;
        }
        tokio::time::sleep(TICK.min(next.saturating_duration_since(Instant::now()))).await;
    }
}
