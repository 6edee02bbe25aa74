use super::*;
use prometheus_client::registry::Registry;

fn settings() -> SloSettings {
    SloSettings {
        sample_rate: 1.0,
        max_false_hit_rate: 0.02,
        answer_similarity: 0.85,
        max_threshold: 0.99,
        step: 0.01,
        min_samples: 30,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

#[test]
fn wilson_intervals_match_known_values() {
    // 5 of 100: the textbook 95% Wilson interval is [0.0215, 0.1118].
    let i = wilson(5, 100);
    assert!(close(i.estimate, 0.05) && close(i.lower, 0.021_543) && close(i.upper, 0.111_755), "{i:?}");
    // None of 10: [0, 0.2775].
    let i = wilson(0, 10);
    assert!(close(i.lower, 0.0) && close(i.upper, 0.277_533), "{i:?}");
    // All of 3: [0.4385, 1].
    let i = wilson(3, 3);
    assert!(close(i.lower, 0.438_503) && close(i.upper, 1.0), "{i:?}");
    // No samples: no evidence either way.
    assert_eq!(wilson(0, 0), Interval { estimate: 0.0, lower: 0.0, upper: 1.0 });
    // More false hits than samples cannot happen; it is read as all of them.
    assert!(close(wilson(9, 3).estimate, 1.0));
}

#[test]
fn the_threshold_rises_only_on_enough_evidence_and_never_past_the_cap() {
    let s = settings();
    let bad = wilson(10, 30);
    // Too few samples, however bad.
    assert_eq!(next_raise(0.0, 0.94, wilson(10, 10), 10, &s), None);
    // Enough samples but a lower bound within the target.
    assert_eq!(next_raise(0.0, 0.94, wilson(1, 30), 30, &s), None);
    // Enough of both: one step.
    let r = next_raise(0.0, 0.94, bad, 30, &s).unwrap_or_default();
    assert!((r - 0.01).abs() < 1e-6, "{r}");
    // Capped at max_threshold, then no further.
    let r = next_raise(0.045, 0.94, bad, 30, &s).unwrap_or_default();
    assert!((r - 0.05).abs() < 1e-6, "{r}");
    assert_eq!(next_raise(0.05, 0.94, bad, 30, &s), None);
    // A base already at the cap is never raised.
    assert_eq!(next_raise(0.0, 0.99, bad, 30, &s), None);
}

#[test]
fn a_tracker_raises_its_namespace_and_a_reset_forgets_it() {
    let mut s = settings();
    s.min_samples = 3;
    s.step = 0.02;
    let t = Tracker::new();
    let m = SloMetrics::register(&mut Registry::default(), std::sync::Arc::new(crate::metrics::NamespaceCap::new(100)));
    let check = |false_hit| Check {
        question: "q".into(),
        cached_answer: "a".into(),
        fresh_answer: "b".into(),
        similarity: Some(0.5),
        verifier_agreed: None,
        false_hit,
        at_ms: 0,
    };
    let g = t.generation();
    assert_eq!(t.record(g, "ns", check(true), 0.94, &s, &m), None);
    assert_eq!(t.record(g, "ns", check(true), 0.94, &s, &m), None);
    assert!(t.record(g, "ns", check(true), 0.94, &s, &m).is_some());
    assert!((t.threshold("ns", 0.94, &s) - 0.96).abs() < 1e-6);
    assert!((t.threshold("other", 0.94, &s) - 0.94).abs() < 1e-6, "namespaces are apart");
    let report = t.report(&s, 0.94, true);
    assert_eq!(report["by_namespace"]["ns"]["false_hits_total"], 3);
    assert_eq!(report["by_namespace"]["ns"]["disagreements"].as_array().map(Vec::len), Some(3));
    t.reset(&m);
    assert!((t.threshold("ns", 0.94, &s) - 0.94).abs() < 1e-6);
    assert_eq!(t.record(g, "ns", check(true), 0.94, &s, &m), None, "a check from before the reset is dropped");
    assert!(t.report(&s, 0.94, false)["by_namespace"].as_object().is_some_and(serde_json::Map::is_empty));
}

#[test]
fn sampling_follows_the_rate() {
    let t = Tracker::new();
    assert!(!t.should_sample(0.0) && t.should_sample(1.0));
    let hits = (0..10_000).filter(|_| t.should_sample(0.1)).count();
    assert!((800..1200).contains(&hits), "{hits}");
}

#[test]
fn namespaces_are_bounded_and_a_raise_outlives_the_quiet_ones() {
    let mut s = settings();
    s.min_samples = 1;
    let t = Tracker::new();
    let m = SloMetrics::register(&mut Registry::default(), std::sync::Arc::new(crate::metrics::NamespaceCap::new(100)));
    let check = |false_hit| Check {
        question: "q".repeat(1000),
        cached_answer: "a".into(),
        fresh_answer: "b".into(),
        similarity: Some(0.5),
        verifier_agreed: None,
        false_hit,
        at_ms: 0,
    };
    let g = t.generation();
    assert!(t.record(g, "raised", check(true), 0.94, &s, &m).is_some());
    // A client varying its namespace: far more than are tracked, none raised.
    for i in 0..(NAMESPACES_TRACKED * 5) {
        assert_eq!(t.record(g, &format!("ns-{i}"), check(false), 0.94, &s, &m), None);
    }
    let report = t.report(&s, 0.94, false);
    assert_eq!(report["namespaces_tracked"], NAMESPACES_TRACKED, "{report}");
    assert_eq!(report["namespaces_tracked_max"], NAMESPACES_TRACKED);
    assert!(report["namespaces_forgotten"].as_u64() >= Some((NAMESPACES_TRACKED * 4) as u64));
    assert!(t.threshold("raised", 0.94, &s) > 0.94, "the raised namespace was kept");
}
