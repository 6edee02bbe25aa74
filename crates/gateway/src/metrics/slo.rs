//! `deja_slo_*`: the live quality SLO's families (written by `slo/`).

use super::labels::{NamespaceCap, NamespaceLabels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Prometheus series of the SLO, per namespace.
pub struct SloMetrics {
    pub shadow_calls: Family<NamespaceLabels, Counter>,
    pub shadow_usd: Family<NamespaceLabels, Counter<f64, AtomicU64>>,
    pub samples: Family<NamespaceLabels, Counter>,
    pub false_hits: Family<NamespaceLabels, Counter>,
    pub estimate: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub lower: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub upper: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub threshold_raise: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    /// Which namespaces get series of their own (shared with [`super::Metrics`]).
    pub namespaces: std::sync::Arc<NamespaceCap>,
}

impl SloMetrics {
    pub fn register(registry: &mut Registry, namespaces: std::sync::Arc<NamespaceCap>) -> Self {
        let m = Self {
            namespaces,
            shadow_calls: Family::default(),
            shadow_usd: Family::default(),
            samples: Family::default(),
            false_hits: Family::default(),
            estimate: Family::default(),
            lower: Family::default(),
            upper: Family::default(),
            threshold_raise: Family::default(),
        };
        registry.register("slo_shadow_calls", "Shadow calls made for sampled semantic hits", m.shadow_calls.clone());
        registry.register("slo_shadow_usd", "USD spent on shadow calls and their checks", m.shadow_usd.clone());
        registry.register("slo_samples", "Sampled semantic hits checked against a fresh answer", m.samples.clone());
        registry.register("slo_false_hits", "Sampled semantic hits whose fresh answer disagreed", m.false_hits.clone());
        registry.register(
            "slo_false_hit_rate",
            "Estimated false-hit rate since the last adjustment",
            m.estimate.clone(),
        );
        registry.register("slo_false_hit_rate_lower", "Lower bound of its 95% Wilson interval", m.lower.clone());
        registry.register("slo_false_hit_rate_upper", "Upper bound of its 95% Wilson interval", m.upper.clone());
        registry.register("slo_threshold_raise", "Automatic raise of the serve threshold", m.threshold_raise.clone());
        m
    }
}
