//! Latency-aware ladders: the order a ladder's capable rungs are tried in
//! (`strategy`), rungs skipped for a slow first byte (`max_ttfb`), and when
//! a second rung is raced against a slow first one (`hedge_after`, carried
//! out by the gateway's walker).
//!
//! Only recent samples count ([`crate::latency::RECENT`]): a rung skipped
//! for being slow gets no new samples, so once its old ones age out it is
//! unknown again and is tried, which is how a recovered model comes back.

use crate::catalog::ModelSpec;
use crate::latency::Latency;
// The policy types are in `policy.rs` so that the catalog, which stores them,
// need not import this module; they stay reachable here too.
pub use crate::policy::{LatencyPolicy, Strategy};
use std::time::Instant;

/// The rungs to try, in order, and those dropped for a slow first byte.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Arranged {
    pub attempts: Vec<usize>,
    pub slow: Vec<usize>,
    /// Every candidate was over `max_ttfb`: none was skipped.
    pub all_slow: bool,
}

/// Orders `rungs` (catalog index and spec, in cost order) by `policy`.
pub(crate) fn arrange(
    rungs: Vec<(usize, &ModelSpec)>,
    policy: &LatencyPolicy,
    latency: &Latency,
    now: Instant,
) -> Arranged {
    let budget_ms = policy.max_ttfb.map(|d| d.as_secs_f64() * 1000.0);
    let rated: Vec<(usize, Option<f64>)> =
        rungs.into_iter().map(|(m, spec)| (m, latency.recent_p90_ms(&spec.name, now))).collect();
    let over = |p90: Option<f64>| matches!((p90, budget_ms), (Some(p), Some(b)) if p > b);
    let (mut kept, slow): (Vec<_>, Vec<_>) = rated.iter().copied().partition(|(_, p90)| !over(*p90));
    let all_slow = kept.is_empty() && !slow.is_empty();
    let slow = if all_slow {
        // Never refuse outright for slowness: try them all, in the strategy's order.
        kept = slow;
        Vec::new()
    } else {
        slow.into_iter().map(|(m, _)| m).collect()
    };
    if policy.strategy == Strategy::Latency {
        // Stable: equal keys keep cost order.
        kept.sort_by_key(|(_, p90)| p90.map_or((0, 0), |p| (1, speed_class(p))));
    }
    Arranged { attempts: kept.into_iter().map(|(m, _)| m).collect(), slow, all_slow }
}

/// A p90 rounded down to a ×1.25 scale from 20 ms (everything faster is one
/// class), so a rung overtakes a cheaper one only when it is clearly
/// faster, not on noise: 100 ms and 110 ms may tie, 100 ms and 130 ms do not.
pub fn speed_class(p90_ms: f64) -> u32 {
    const FLOOR_MS: f64 = 20.0;
    if p90_ms.is_nan() || p90_ms <= FLOOR_MS {
        return 0;
    }
    // At most a few hundred for any finite duration: the cast cannot wrap.
    1 + ((p90_ms / FLOOR_MS).ln() / 1.25_f64.ln()).floor().min(1e6) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(name: &str) -> ModelSpec {
        ModelSpec {
            name: name.into(),
            provider: "p".into(),
            upstream_name: name.into(),
            input_usd_per_mtok: 1.0,
            cached_input_usd_per_mtok: 1.0,
            cache_write_usd_per_mtok: 1.0,
            output_usd_per_mtok: 1.0,
            context_window: 1000,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(specs: &[ModelSpec], policy: LatencyPolicy, latency: &Latency, now: Instant) -> Arranged {
        arrange(specs.iter().enumerate().collect(), &policy, latency, now)
    }

    #[test]
    fn speed_classes_are_a_coarse_log_scale() {
        assert_eq!(speed_class(0.0), 0);
        assert_eq!(speed_class(19.9), 0);
        assert_eq!(speed_class(f64::NAN), 0);
        assert_eq!(speed_class(24.0), 1);
        assert_eq!(speed_class(100.0), speed_class(110.0));
        assert!(speed_class(130.0) > speed_class(100.0));
        assert!(speed_class(f64::INFINITY) > speed_class(1e9));
    }

    #[test]
    fn cost_strategy_keeps_the_listed_order_whatever_the_latency() {
        let l = Latency::new();
        let now = Instant::now();
        l.record_first_byte("a", ms(900), now);
        l.record_first_byte("b", ms(10), now);
        let specs = [spec("a"), spec("b"), spec("c")];
        let a = run(&specs, LatencyPolicy::default(), &l, now);
        assert_eq!(a, Arranged { attempts: vec![0, 1, 2], slow: vec![], all_slow: false });
    }

    #[test]
    fn latency_strategy_tries_unknown_rungs_then_the_fastest() {
        let l = Latency::new();
        let now = Instant::now();
        let specs = [spec("a"), spec("b"), spec("c"), spec("d")];
        let policy = LatencyPolicy { strategy: Strategy::Latency, ..Default::default() };
        // Nothing known: cost order.
        assert_eq!(run(&specs, policy, &l, now).attempts, vec![0, 1, 2, 3]);
        l.record_first_byte("a", ms(900), now);
        l.record_first_byte("c", ms(100), now);
        // b and d unknown (cost order), then c (faster), then a.
        assert_eq!(run(&specs, policy, &l, now).attempts, vec![1, 3, 2, 0]);
        l.record_first_byte("b", ms(105), now);
        l.record_first_byte("d", ms(30), now);
        // b and c tie on the coarse scale: the cheaper (b) first.
        assert_eq!(run(&specs, policy, &l, now).attempts, vec![3, 1, 2, 0]);
    }

    #[test]
    fn old_samples_are_forgotten() {
        let l = Latency::new();
        let t0 = Instant::now();
        l.record_first_byte("a", ms(900), t0);
        l.record_first_byte("b", ms(10), t0);
        let specs = [spec("a"), spec("b")];
        let policy = LatencyPolicy { strategy: Strategy::Latency, max_ttfb: Some(ms(500)), ..Default::default() };
        let now = run(&specs, policy, &l, t0 + ms(1000));
        assert_eq!(now, Arranged { attempts: vec![1], slow: vec![0], all_slow: false });
        // Past the window a is unknown: tried again, first, as a probe.
        let later = run(&specs, policy, &l, t0 + crate::latency::RECENT + ms(1));
        assert_eq!(later, Arranged { attempts: vec![0, 1], slow: vec![], all_slow: false });
    }

    #[test]
    fn max_ttfb_skips_slow_rungs_but_never_all() {
        let l = Latency::new();
        let now = Instant::now();
        let specs = [spec("a"), spec("b"), spec("c")];
        let policy = LatencyPolicy { max_ttfb: Some(ms(500)), ..Default::default() };
        l.record_first_byte("a", ms(800), now);
        l.record_first_byte("b", ms(300), now);
        // c is unknown: kept.
        assert_eq!(run(&specs, policy, &l, now), Arranged { attempts: vec![1, 2], slow: vec![0], all_slow: false });
        l.record_first_byte("b", ms(2000), now);
        l.record_first_byte("c", ms(700), now);
        let all = run(&specs, policy, &l, now);
        assert_eq!(all, Arranged { attempts: vec![0, 1, 2], slow: vec![], all_slow: true });
        // With the latency strategy the fallback is fastest first.
        let by_speed = LatencyPolicy { strategy: Strategy::Latency, ..policy };
        assert_eq!(run(&specs, by_speed, &l, now).attempts, vec![2, 0, 1]);
    }

    #[test]
    fn exactly_at_the_budget_is_not_over_it() {
        let l = Latency::new();
        let now = Instant::now();
        l.record_first_byte("a", ms(500), now);
        let specs = [spec("a"), spec("b")];
        let policy = LatencyPolicy { max_ttfb: Some(ms(500)), ..Default::default() };
        assert_eq!(run(&specs, policy, &l, now).attempts, vec![0, 1]);
    }
}
