//! A request's routing plan, made from the live health and latency figures,
//! with the rungs it left out counted (`deja_rung_skipped_total`).

use crate::config::Config;
use crate::metrics::{LadderLabels, SkipLabels};
use crate::walker::Calls;
use deja_router::{Live, Plan, PlanError, RouteInput};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The "every rung is over max_ttfb" warning is logged at most this often.
const FALLBACK_WARN_EVERY_S: u64 = 60;
static LAST_FALLBACK_WARN_S: AtomicU64 = AtomicU64::new(0);

pub fn make(calls: &Calls, config: &Config, input: RouteInput<'_>) -> Result<Plan, PlanError> {
    let live = Live { health: &calls.health, latency: &calls.latency, now: Instant::now() };
    let plan = deja_router::plan(&config.catalog, input, live, 1 + config.routing.model_retries)?;
    let ladder = plan.ladder.and_then(|l| config.catalog.ladder(l)).map(|l| l.name.clone()).unwrap_or_default();
    let metrics = &calls.metrics.rungs;
    for (m, reason) in &plan.skipped {
        let model = config.catalog.model(*m).map(|s| s.name.clone()).unwrap_or_default();
        tracing::debug!(%ladder, %model, reason = reason.as_str(), "rung skipped");
        metrics
            .skipped
            .get_or_create(&SkipLabels { ladder: ladder.clone(), model, reason: reason.label().into() })
            .inc();
    }
    if plan.all_over_max_ttfb {
        metrics.ttfb_fallback.get_or_create(&LadderLabels { ladder: ladder.clone() }).inc();
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = LAST_FALLBACK_WARN_S.load(Ordering::Relaxed);
        if now_s >= last.saturating_add(FALLBACK_WARN_EVERY_S)
            && LAST_FALLBACK_WARN_S.compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(%ladder, "every candidate rung is over max_ttfb: none skipped, cost order kept");
        }
    }
    Ok(plan)
}
