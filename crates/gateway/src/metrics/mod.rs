//! Prometheus metrics, in the text exposition format at `GET /metrics`.
//!
//! Cache totals start from the store's persisted counters at boot, so they
//! match `/admin/stats` across restarts.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

mod fleet;
mod labels;
mod rungs;
mod slo;

pub use fleet::FleetMetrics;
pub use labels::*;
pub use rungs::{HedgeLabels, LadderLabels, RungMetrics, SkipLabels};
pub use slo::SloMetrics;

pub struct Metrics {
    /// Which namespaces get series of their own.
    pub namespaces: std::sync::Arc<NamespaceCap>,
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub cache_hits: Family<KindLabels, Counter>,
    pub cache_misses: Counter,
    pub saved_usd: FloatCounter,
    pub spent_usd: Family<ModelLabels, FloatCounter>,
    /// Calls billed without a usable answer (a stream cut off, an unreadable body).
    pub unfinished_usd: Family<ModelLabels, FloatCounter>,
    pub upstream_latency: Family<ModelLabels, Histogram>,
    pub upstream_errors: Family<ModelErrorLabels, Counter>,
    pub overhead: Histogram,
    pub embedding_latency: Histogram,
    pub entries: Gauge,
    /// What `[store] max_bytes` bounds: entries and vectors as stored.
    pub store_bytes: Gauge,
    /// An estimate of the semantic index's memory: vectors, links, ids.
    pub index_memory_bytes: Gauge,
    pub index_entries: Gauge,
    pub cooldowns: Family<ModelLabels, Gauge>,
    pub models: ModelGauges,
    pub guard_refusals: Family<KindLabels, Counter>,
    /// Semantic lookups of questions the model cannot read, by reason.
    pub unmatchable: Family<ReasonLabels, Counter>,
    pub verifications: Family<NamespaceLabels, Counter>,
    pub verification_usd: Family<NamespaceLabels, FloatCounter>,
    pub cluster_degraded: Gauge,
    pub cluster_redis_hits: Counter,
    pub cluster_corrupt_values: Counter,
    pub cluster_events_applied: Counter,
    pub cluster_writes_skipped: Counter,
    pub cluster_entries_replicated: Counter,
    pub cluster_entries_backfilled: Counter,
    pub fleet: FleetMetrics,
    pub slo: SloMetrics,
    pub rungs: RungMetrics,
}

/// Live per-model figures (`deja_router::Latency`), refreshed when `/metrics` is read.
#[derive(Default)]
pub struct ModelGauges {
    pub ttfb_ewma: Family<ModelLabels, FloatGauge>,
    pub ttfb_p90: Family<ModelLabels, FloatGauge>,
    pub tokens_per_s: Family<ModelLabels, FloatGauge>,
    pub error_rate: Family<ModelLabels, FloatGauge>,
}

impl ModelGauges {
    fn register(registry: &mut Registry) -> Self {
        let g = Self::default();
        let help = [
            ("model_ttfb_ewma_seconds", "Time to first byte per model, exponentially weighted"),
            ("model_ttfb_p90_seconds", "90th percentile of a model's recent times to first byte"),
            ("model_tokens_per_second", "Completion tokens per second of a model's answer bodies, weighted"),
            ("model_error_rate", "Share of a model's recent attempts that failed (weighted; client faults excluded)"),
        ];
        let families = [&g.ttfb_ewma, &g.ttfb_p90, &g.tokens_per_s, &g.error_rate];
        for ((name, help), family) in help.into_iter().zip(families) {
            registry.register(name, help, family.clone());
        }
        g
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~100 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_namespace_cap(NAMESPACES_LABELLED)
    }

    /// The metrics, giving the first `namespace_cap` namespaces series of their own.
    pub fn with_namespace_cap(namespace_cap: usize) -> Self {
        let mut registry = Registry::with_prefix("deja");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests by endpoint, route, cache outcome and status", requests.clone());
        let cache_hits = Family::<KindLabels, Counter>::default();
        registry.register("cache_hits", "Cache hits by kind (exact, semantic)", cache_hits.clone());
        let cache_misses = Counter::default();
        registry.register("cache_misses", "Requests answered upstream after a cache lookup", cache_misses.clone());
        let saved_usd = FloatCounter::default();
        registry.register("saved_usd", "USD not spent thanks to cache hits", saved_usd.clone());
        let spent_usd = Family::<ModelLabels, FloatCounter>::default();
        registry.register("spent_usd", "USD spent upstream, by model", spent_usd.clone());
        let unfinished_usd = Family::<ModelLabels, FloatCounter>::default();
        registry.register(
            "unfinished_usd",
            "Estimated USD of upstream calls billed without a usable answer (cut streams, unreadable bodies), by model",
            unfinished_usd.clone(),
        );
        let upstream_latency = Family::<ModelLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "upstream_request_duration_seconds",
            "Upstream attempt latency to the response head",
            upstream_latency.clone(),
        );
        let upstream_errors = Family::<ModelErrorLabels, Counter>::default();
        registry.register("upstream_errors", "Failed upstream attempts by model and kind", upstream_errors.clone());
        let overhead = latency_histogram();
        registry.register(
            "proxy_overhead_seconds",
            "Time Deja itself adds to a request (total minus upstream time)",
            overhead.clone(),
        );
        let embedding_latency = latency_histogram();
        registry.register(
            "embedding_duration_seconds",
            "Embedding forward pass latency per micro-batch",
            embedding_latency.clone(),
        );
        let entries = Gauge::default();
        registry.register("cache_entries", "Entries in the store", entries.clone());
        let store_bytes = Gauge::default();
        registry.register(
            "cache_stored_bytes",
            "Bytes of cache entries and their vectors as stored (what store.max_bytes bounds)",
            store_bytes.clone(),
        );
        let index_memory_bytes = Gauge::default();
        registry.register(
            "semantic_index_memory_bytes",
            "Estimated memory of the semantic index: vectors, graph links and ids",
            index_memory_bytes.clone(),
        );
        let index_entries = Gauge::default();
        registry.register("semantic_index_entries", "Live entries in the semantic index", index_entries.clone());
        let cooldowns = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "ladder_cooldown",
            "1 while a model is cooling down and skipped by ladders",
            cooldowns.clone(),
        );
        let models = ModelGauges::register(&mut registry);
        let guard_refusals = Family::<KindLabels, Counter>::default();
        registry.register(
            "semantic_guard_refusals",
            "Semantic candidates above the threshold refused by a guard",
            guard_refusals.clone(),
        );
        let unmatchable = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "semantic_unmatchable",
            "Semantic lookups of questions the embedding model cannot read (too_long, unknown_tokens): exact hits only",
            unmatchable.clone(),
        );
        let verifications = Family::<NamespaceLabels, Counter>::default();
        registry.register(
            "semantic_verifications",
            "Verifier calls made for grey-band semantic candidates, by namespace",
            verifications.clone(),
        );
        let verification_usd = Family::<NamespaceLabels, FloatCounter>::default();
        registry.register(
            "semantic_verification_usd",
            "USD spent on verifier calls, by namespace",
            verification_usd.clone(),
        );
        let cluster_degraded = Gauge::default();
        registry.register(
            "cluster_degraded",
            "1 while [cluster] is set and Redis is unreachable (serving from this replica alone)",
            cluster_degraded.clone(),
        );
        let cluster_redis_hits = Counter::default();
        registry.register(
            "cluster_redis_hits",
            "Exact hits found in Redis, stored by another replica",
            cluster_redis_hits.clone(),
        );
        let cluster_corrupt_values = Counter::default();
        registry.register(
            "cluster_corrupt_values",
            "Values in Redis that were not the entry their key names; treated as misses",
            cluster_corrupt_values.clone(),
        );
        let cluster_events_applied = Counter::default();
        registry.register(
            "cluster_events_applied",
            "Deletes and purges read from the events stream and applied here",
            cluster_events_applied.clone(),
        );
        let cluster_writes_skipped = Counter::default();
        registry.register(
            "cluster_writes_skipped",
            "Entries not written to Redis because too many writes were in flight",
            cluster_writes_skipped.clone(),
        );
        let cluster_entries_replicated = Counter::default();
        registry.register(
            "cluster_entries_replicated",
            "Semantic entries stored by another replica, read from the events stream and indexed here",
            cluster_entries_replicated.clone(),
        );
        let cluster_entries_backfilled = Counter::default();
        registry.register(
            "cluster_entries_backfilled",
            "Entries rebuilt from Redis copies after the events stream was trimmed past this replica",
            cluster_entries_backfilled.clone(),
        );
        let fleet = FleetMetrics::register(&mut registry);
        let namespaces = std::sync::Arc::new(NamespaceCap::new(namespace_cap));
        let slo = SloMetrics::register(&mut registry, namespaces.clone());
        let rungs = RungMetrics::register(&mut registry);
        Self {
            namespaces,
            registry,
            requests,
            cache_hits,
            cache_misses,
            saved_usd,
            spent_usd,
            unfinished_usd,
            upstream_latency,
            upstream_errors,
            overhead,
            embedding_latency,
            entries,
            store_bytes,
            index_memory_bytes,
            index_entries,
            cooldowns,
            models,
            guard_refusals,
            unmatchable,
            verifications,
            verification_usd,
            cluster_degraded,
            cluster_redis_hits,
            cluster_corrupt_values,
            cluster_events_applied,
            cluster_writes_skipped,
            cluster_entries_replicated,
            cluster_entries_backfilled,
            fleet,
            slo,
            rungs,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
