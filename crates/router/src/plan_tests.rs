use super::*;
use crate::catalog::{CatalogError, LadderSpec, ModelSpec, StartRule};
use crate::health::HealthSettings;
use crate::latency::Latency;
use crate::order::{LatencyPolicy, Strategy};
use std::collections::HashMap;
use std::time::Duration;

fn model(name: &str, window: u64) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        provider: "p".into(),
        upstream_name: name.into(),
        input_usd_per_mtok: 1.0,
        cached_input_usd_per_mtok: 1.0,
        cache_write_usd_per_mtok: 1.0,
        output_usd_per_mtok: 1.0,
        context_window: window,
    }
}

fn catalog() -> Catalog {
    let models = vec![model("cheap", 8_000), model("mid", 32_000), model("big", 128_000)];
    let ladder = LadderSpec {
        name: "auto".into(),
        rungs: vec!["cheap".into(), "mid".into(), "big".into()],
        start_rules: vec![StartRule { min_prompt_tokens: 2_000, rung: "mid".into() }],
        tasks: HashMap::from([("reasoning".to_string(), "big".to_string())]),
        latency: LatencyPolicy::default(),
    };
    Catalog::new(models, vec![ladder]).expect("valid catalog")
}

fn health() -> Health {
    Health::new(HealthSettings { failures_to_cool: 2, cooldown: Duration::from_secs(30) })
}

fn input(target: &'static str, tokens: u64, task: Option<&'static str>) -> RouteInput<'static> {
    RouteInput { target, prompt_tokens: tokens, task, route: None }
}

#[test]
fn short_prompts_start_at_the_cheapest_rung() {
    let p = plan(
        &catalog(),
        input("auto", 10, None),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![0, 1, 2]);
}

#[test]
fn long_prompts_and_tasks_start_higher() {
    let c = catalog();
    let p = plan(
        &c,
        input("auto", 3_000, None),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![1, 2]);
    assert_eq!(p.skipped, vec![(0, SkipReason::BelowStart)]);
    let p = plan(
        &c,
        input("auto", 10, Some("reasoning")),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![2]);
    let p = plan(
        &c,
        input("auto", 10, Some("unknown-task")),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![0, 1, 2]);
}

#[test]
fn rungs_with_small_windows_are_skipped() {
    let c = catalog();
    let p = plan(
        &c,
        input("auto", 50_000, None),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![2]);
    assert!(matches!(
        plan(
            &c,
            input("auto", 500_000, None),
            Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
            3
        ),
        Err(PlanError::PromptTooLarge { .. })
    ));
}

#[test]
fn cooling_rungs_are_skipped_unless_all_are_cooling() {
    let c = catalog();
    let h = health();
    let now = Instant::now();
    h.record_failure("cheap", now, None);
    h.record_failure("cheap", now, None);
    let p = plan(&c, input("auto", 10, None), Live { health: &h, latency: &Latency::new(), now }, 3).expect("plan");
    assert_eq!(p.attempts, vec![1, 2]);
    assert!(p.skipped.contains(&(0, SkipReason::CoolingDown)));
    for m in ["mid", "big"] {
        h.record_failure(m, now, None);
        h.record_failure(m, now, None);
    }
    let p = plan(&c, input("auto", 10, None), Live { health: &h, latency: &Latency::new(), now }, 3).expect("plan");
    assert_eq!(p.attempts, vec![0, 1, 2]);
}

fn latency_ladder(policy: LatencyPolicy) -> Catalog {
    let models = vec![model("cheap", 8_000), model("mid", 32_000), model("big", 128_000)];
    let ladder = LadderSpec {
        name: "fast".into(),
        rungs: vec!["cheap".into(), "mid".into(), "big".into()],
        start_rules: vec![],
        tasks: HashMap::new(),
        latency: policy,
    };
    Catalog::new(models, vec![ladder]).expect("valid catalog")
}

#[test]
fn slow_rungs_are_skipped_and_reported_but_never_all() {
    let policy = LatencyPolicy { max_ttfb: Some(Duration::from_millis(500)), ..Default::default() };
    let c = latency_ladder(policy);
    let (h, l, now) = (health(), Latency::new(), Instant::now());
    l.record_first_byte("cheap", Duration::from_millis(900), now);
    let p = plan(&c, input("fast", 10, None), Live { health: &h, latency: &l, now }, 3).expect("plan");
    assert_eq!(p.attempts, vec![1, 2]);
    assert_eq!(p.skipped, vec![(0, SkipReason::SlowFirstByte)]);
    assert!(!p.all_over_max_ttfb);
    // A cooling rung is skipped for cooling; slowness is judged among the rest.
    h.record_failure("mid", now, None);
    h.record_failure("mid", now, None);
    l.record_first_byte("big", Duration::from_millis(700), now);
    let p = plan(&c, input("fast", 10, None), Live { health: &h, latency: &l, now }, 3).expect("plan");
    assert_eq!(p.attempts, vec![0, 2], "every healthy rung is slow: none is skipped for it");
    assert_eq!(p.skipped, vec![(1, SkipReason::CoolingDown)]);
    assert!(p.all_over_max_ttfb);
}

#[test]
fn a_latency_ladder_orders_by_recent_speed_and_carries_its_hedge() {
    let hedge = Some(Duration::from_millis(800));
    let c = latency_ladder(LatencyPolicy { strategy: Strategy::Latency, hedge_after: hedge, ..Default::default() });
    let (h, l, now) = (health(), Latency::new(), Instant::now());
    for (m, ms) in [("cheap", 900), ("mid", 400), ("big", 50)] {
        l.record_first_byte(m, Duration::from_millis(ms), now);
    }
    let p = plan(&c, input("fast", 10, None), Live { health: &h, latency: &l, now }, 3).expect("plan");
    assert_eq!(p.attempts, vec![2, 1, 0]);
    assert_eq!(p.hedge_after, hedge);
    // A model target is one model: no ladder options apply.
    let p = plan(&c, input("cheap", 10, None), Live { health: &h, latency: &l, now }, 2).expect("plan");
    assert_eq!((p.attempts, p.hedge_after), (vec![0, 0], None));
}

#[test]
fn a_model_name_is_tried_alone_with_retries() {
    let p = plan(
        &catalog(),
        input("mid", 10, None),
        Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
        3,
    )
    .expect("plan");
    assert_eq!(p.attempts, vec![1, 1, 1]);
    assert!(matches!(
        plan(
            &catalog(),
            input("nope", 1, None),
            Live { health: &health(), latency: &Latency::new(), now: Instant::now() },
            3
        ),
        Err(PlanError::NotFound(_))
    ));
}

const CLIENT_FAULTS: [u16; 8] = [400, 404, 405, 409, 413, 415, 422, 451];
const DEPLOYMENT_FAULTS: [FailureKind; 12] = [
    FailureKind::Status(429),
    FailureKind::Status(500),
    FailureKind::Status(502),
    FailureKind::Status(503),
    FailureKind::Status(504),
    FailureKind::Status(401),
    FailureKind::Status(403),
    FailureKind::Connect,
    FailureKind::FirstByteTimeout,
    FailureKind::TotalTimeout,
    FailureKind::Malformed,
    FailureKind::NoCredentials,
];

#[test]
fn only_the_requests_own_faults_are_returned() {
    for k in DEPLOYMENT_FAULTS {
        assert_eq!(failure_decision(k), Decision::Next, "{k:?}");
    }
    for s in CLIENT_FAULTS {
        assert_eq!(failure_decision(FailureKind::Status(s)), Decision::Return, "{s}");
    }
}

#[test]
fn client_faults_do_not_count_against_health() {
    for s in CLIENT_FAULTS {
        assert!(!FailureKind::Status(s).counts_against_health(), "{s}");
    }
    for k in DEPLOYMENT_FAULTS {
        assert!(k.counts_against_health(), "{k:?}");
    }
}

#[test]
fn provider_auth_failures_are_labelled_apart_from_client_errors() {
    assert_eq!(FailureKind::Status(401).label(), "auth_error");
    assert_eq!(FailureKind::Status(403).label(), "auth_error");
    assert_eq!(FailureKind::Status(400).label(), "client_error");
    assert_eq!(FailureKind::Status(429).label(), "rate_limited");
}

#[test]
fn catalog_rejects_inconsistent_ladders() {
    let bad = LadderSpec {
        name: "x".into(),
        rungs: vec!["ghost".into()],
        start_rules: vec![],
        tasks: HashMap::new(),
        latency: LatencyPolicy::default(),
    };
    assert!(matches!(Catalog::new(vec![model("a", 1)], vec![bad]), Err(CatalogError::UnknownModel { .. })));
    let clash = LadderSpec {
        name: "a".into(),
        rungs: vec!["a".into()],
        start_rules: vec![],
        tasks: HashMap::new(),
        latency: LatencyPolicy::default(),
    };
    assert!(matches!(Catalog::new(vec![model("a", 1)], vec![clash]), Err(CatalogError::NameClash(_))));
}
