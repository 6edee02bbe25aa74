//! Everything a request can reach, built once at start-up.

use crate::answer::Shared;
use crate::assemble::Handles;
use crate::config::{Config, EmbeddingBackend};
use crate::metrics::Metrics;
use crate::routes::RouteVectors;
use crate::stages::Stages;
use crate::walker::Calls;
use deja_cache::{Coalescer, SemanticIndex};
use deja_embed::{EmbedService, Embedder, FastEmbedder, HashEmbedder, ModelPaths};
use deja_router::{Health, Latency};
use deja_store::{Counter, Store};
use deja_upstream::UpstreamClient;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Stores up to this many entries rebuild their index before serving (a few
/// seconds); larger ones serve at once and rebuild in the background. A
/// saved index that can be trusted is loaded before serving, whatever the size.
const SYNC_REBUILD_MAX: u64 = 20_000;

pub struct AppState {
    /// The configuration and the route vectors made from it, swapped together.
    live: RwLock<Live>,
    pub store: Arc<Store>,
    pub index: Arc<SemanticIndex>,
    /// Multi-turn entries by coarse fingerprint: conversation candidates.
    pub conversations: Arc<deja_cache::conversation::ConversationIndex>,
    /// `None` when the semantic cache is off.
    pub embed: Option<EmbedService>,
    /// The same model, for embedding route examples at start-up and reload,
    /// and for reading texts and embedding what differs during a lookup.
    route_embedder: Option<Arc<dyn Embedder>>,
    /// Vectors of templated texts' differing parts, reused across lookups.
    pub spans: Arc<deja_cache::SpanVectors>,
    /// The upstream client, the live health and latency figures, the ledger.
    pub calls: Arc<Calls>,
    pub coalescer: Arc<Coalescer<Shared>>,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub sweep_now: Arc<tokio::sync::Notify>,
    /// False while the start-up rebuild of a large index runs in the
    /// background; exact hits are served meanwhile, semantic lookups miss.
    pub index_ready: std::sync::atomic::AtomicBool,
    /// Tells background tasks to let go of the state.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Grey-band pairs the verifier rejected, never asked twice.
    pub rejections: Arc<crate::verify::Rejections>,
    /// What replicas share (`[cluster]`); none on a single node.
    pub ports: crate::ports::Ports,
    /// Recent semantic lookups and hits per namespace, for the dashboard.
    pub lookups: Arc<crate::lookups::Lookups>,
    /// The one writer of counts, spend and budgets.
    pub ledger: Arc<crate::ledger::Ledger>,
    /// The live quality SLO: samples, false hits, threshold raises; cleared by a reload.
    pub slo: Arc<crate::slo::Tracker>,
    /// The request path's stages, built from the handles above.
    pub stages: Stages,
}

#[derive(Clone)]
struct Live {
    config: Arc<Config>,
    routes: Arc<RouteVectors>,
}

/// Differing parts whose vectors are kept (384 floats each: about 16 MiB).
const SPAN_VECTORS_KEPT: usize = 10_000;

/// How many rejected (request, entry) pairs are remembered.
const REJECTIONS_REMEMBERED: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] deja_store::StoreError),
    #[error("{0}")]
    Embed(#[from] deja_embed::EmbedError),
    #[error("upstream client: {0}")]
    Upstream(#[from] deja_upstream::UpstreamError),
    #[error("{0}")]
    Model(#[from] crate::embedding_model::ModelCheckError),
    #[error("[cluster] is set, but this build was made without the fleet (deja-fleet)")]
    NoFleet,
}

/// Makes the ports replicas share (`deja-fleet`), given `[cluster]` and the metrics.
pub type FleetPorts = Box<dyn FnOnce(&crate::config::ClusterSettings, &Metrics) -> crate::ports::Ports + Send>;

/// Builds the embedder the config asks for.
pub fn load_embedder(config: &Config) -> Result<Arc<dyn Embedder>, StartError> {
    let e = &config.embedding;
    Ok(match e.backend {
        EmbeddingBackend::Hash => Arc::new(HashEmbedder::new(384)),
        EmbeddingBackend::Model(model) => {
            let mut paths = ModelPaths::of(model, &e.model_dir);
            if let Some(lib) = &e.ort_library {
                paths.ort_library = Some(lib.clone());
            }
            Arc::new(FastEmbedder::load(&paths, e.threads)?)
        }
    })
}

impl AppState {
    /// The model, to read texts and embed what differs; `None` with the semantic cache off.
    pub fn reader(&self) -> Option<deja_cache::semantic::Reader<'_>> {
        let model = self.route_embedder.as_deref()?;
        Some(deja_cache::semantic::Reader { model, spans: Some(self.spans.as_ref()) })
    }

    /// The embedding model's name and dimension; `None` with the semantic cache off.
    pub fn embedder_identity(&self) -> Option<(&str, usize)> {
        self.route_embedder.as_ref().map(|e| (e.name(), e.dim()))
    }

    /// Opens the store, loads the embedder (unless `embedder` is given) and
    /// rebuilds the semantic index from the store. A single node: a
    /// configuration with `[cluster]` needs [`AppState::build_with`].
    pub fn build(config: Config, embedder: Option<Arc<dyn Embedder>>) -> Result<Arc<Self>, StartError> {
        Self::build_with(config, embedder, None)
    }

    /// [`AppState::build`], with `fleet` making the ports of `[cluster]`.
    pub fn build_with(
        config: Config,
        embedder: Option<Arc<dyn Embedder>>,
        fleet: Option<FleetPorts>,
    ) -> Result<Arc<Self>, StartError> {
        if let Some(parent) = config.store_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let store = Arc::new(Store::open(&config.store_path)?);
        let metrics = Arc::new(Metrics::with_namespace_cap(config.server.metrics_namespaces));
        let mut route_embedder = None;
        let mut route_vectors = RouteVectors::new();
        let embed = if config.cache.enabled && config.cache.semantic_enabled {
            let embedder = match embedder {
                Some(e) => e,
                None => load_embedder(&config)?,
            };
            crate::embedding_model::check(&store, embedder.as_ref())?;
            route_vectors = crate::routes::embed_routes(&config, embedder.as_ref())?;
            route_embedder = Some(embedder.clone());
            let m = metrics.clone();
            let observer: deja_embed::BatchObserver =
                Arc::new(move |_size, took| m.embedding_latency.observe(took.as_secs_f64()));
            Some(EmbedService::start(embedder, config.embedding.max_batch, Some(observer)))
        } else {
            if !config.routes.is_empty() {
                tracing::warn!("semantic routes are configured but the semantic cache is off: they do not apply");
            }
            None
        };
        let index = Arc::new(SemanticIndex::new());
        index.set_search_breadth(config.cache.search_breadth);
        let conversations = Arc::new(deja_cache::conversation::ConversationIndex::default());
        let started = Instant::now();
        // A large store's index is loaded (or rebuilt) in the background, so
        // the listener, exact hits and /readyz answer at once; semantic
        // lookups miss until it is ready (`spawn_background_index`).
        let index_ready = store.len() <= SYNC_REBUILD_MAX;
        let restored = index_ready && crate::index_restore::restore_index(&index, &store);
        if restored {
            tracing::info!(entries = store.len(), indexed = index.len(), "store opened");
            // The saved graphs hold the semantic index only: conversation
            // entries are read back from the store.
            conversations.rebuild_from(&store)?;
        } else if index_ready {
            let live = index.rebuild_from(&store)?;
            conversations.rebuild_from(&store)?;
            let took_ms = started.elapsed().as_millis() as u64;
            tracing::info!(entries = store.len(), indexed = live, took_ms, "store opened");
        } else {
            tracing::info!(entries = store.len(), "store opened; the semantic index is loaded in the background");
        }
        seed_metrics(&metrics, &store)?;
        let ports = match (&config.cluster, fleet) {
            (Some(cluster), Some(make)) => make(cluster, &metrics),
            (Some(_), None) => return Err(StartError::NoFleet),
            (None, _) => crate::ports::Ports::none(),
        };
        let lookups = Arc::new(crate::lookups::Lookups::default());
        let ledger = crate::ledger::Ledger::new(store.clone(), metrics.clone(), lookups.clone(), ports.tally.clone());
        let calls = Arc::new(Calls {
            upstream: UpstreamClient::new()?,
            health: Health::new(config.routing.health),
            latency: Latency::new(),
            metrics: metrics.clone(),
            ledger: ledger.clone(),
            cooldowns: ports.cooldowns.clone(),
        });
        let handles = Handles {
            store: store.clone(),
            index: index.clone(),
            conversations: conversations.clone(),
            embed: embed.clone(),
            model: route_embedder.clone(),
            spans: Arc::new(deja_cache::SpanVectors::new(SPAN_VECTORS_KEPT)),
            calls: calls.clone(),
            metrics: metrics.clone(),
            ledger: ledger.clone(),
            lookups: lookups.clone(),
            slo: Arc::new(crate::slo::Tracker::new()),
            rejections: Arc::new(crate::verify::Rejections::new(REJECTIONS_REMEMBERED)),
            coalescer: Arc::new(Coalescer::default()),
            sweep_now: Arc::new(tokio::sync::Notify::new()),
            ports: ports.clone(),
        };
        let stages = handles.stages();
        Ok(Arc::new(Self {
            live: RwLock::new(Live { config: Arc::new(config), routes: Arc::new(route_vectors) }),
            route_embedder,
            spans: handles.spans,
            calls,
            coalescer: handles.coalescer,
            started,
            sweep_now: handles.sweep_now,
            index_ready: std::sync::atomic::AtomicBool::new(index_ready),
            stopping: std::sync::atomic::AtomicBool::new(false),
            rejections: handles.rejections,
            slo: handles.slo,
            store,
            index,
            conversations,
            embed,
            metrics,
            ports,
            lookups,
            ledger,
            stages,
        }))
    }

    pub fn config(&self) -> Arc<Config> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).config.clone()
    }

    /// The route vectors made from `config`; none when a reload has
    /// replaced it since (a request never mixes two loads).
    pub fn routes_of(&self, config: &Arc<Config>) -> Arc<RouteVectors> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        if Arc::ptr_eq(&live.config, config) {
            live.routes.clone()
        } else {
            Arc::default()
        }
    }

    /// Swaps in a new configuration. Settings that need a restart (listener,
    /// store, embedding model) keep their running values; the rest apply to
    /// the next request.
    pub fn replace_config(&self, new: Config) -> Vec<&'static str> {
        let old = self.config();
        let mut routes = RouteVectors::new();
        if let Some(embedder) = &self.route_embedder {
            // A handful of examples: a short forward pass, once per reload.
            match crate::routes::embed_routes(&new, embedder.as_ref()) {
                Ok(r) => routes = r,
                Err(e) => {
                    tracing::warn!(error = %e, "could not embed the route examples; routes are off until the next reload")
                }
            }
        }
        let mut needs_restart = Vec::new();
        if old.server.listen != new.server.listen {
            needs_restart.push("server.listen");
        }
        if old.server.admin_listen != new.server.admin_listen {
            needs_restart.push("server.admin_listen");
        }
        if old.server.log_format != new.server.log_format {
            needs_restart.push("server.log_format");
        }
        if old.store_path != new.store_path {
            needs_restart.push("store.path");
        }
        if old.embedding.model_dir != new.embedding.model_dir || old.embedding.backend != new.embedding.backend {
            needs_restart.push("embedding");
        }
        if old.cache.semantic_enabled != new.cache.semantic_enabled {
            needs_restart.push("cache.semantic.enabled");
        }
        if old.limits.max_connections != new.limits.max_connections {
            needs_restart.push("limits.max_connections");
        }
        self.calls.health.set_settings(new.routing.health);
        self.index.set_search_breadth(new.cache.search_breadth);
        self.slo.reset(&self.metrics.slo);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) =
            Live { config: Arc::new(new), routes: Arc::new(routes) };
        needs_restart
    }
}

fn seed_metrics(metrics: &Metrics, store: &Store) -> Result<(), deja_store::StoreError> {
    use crate::metrics::{KindLabels, ModelLabels};
    metrics.cache_hits.get_or_create(&KindLabels { kind: "exact".into() }).inc_by(store.counter(Counter::ExactHits)?);
    metrics
        .cache_hits
        .get_or_create(&KindLabels { kind: "semantic".into() })
        .inc_by(store.counter(Counter::SemanticHits)?);
    metrics.cache_misses.inc_by(store.counter(Counter::Misses)?);
    for (reason, counter) in
        [("too_long", Counter::UnmatchableTooLong), ("unknown_tokens", Counter::UnmatchableUnknownTokens)]
    {
        let labels = crate::metrics::ReasonLabels { reason: reason.into() };
        metrics.unmatchable.get_or_create(&labels).inc_by(store.counter(counter)?);
    }
    metrics.saved_usd.inc_by(deja_store::nano_to_usd(store.counter(Counter::NanoUsdSaved)?));
    for (model, nano) in store.spent_by_model()? {
        metrics.spent_usd.get_or_create(&ModelLabels { model }).inc_by(deja_store::nano_to_usd(nano));
    }
    for (namespace, v) in store.verifications_by_namespace()? {
        let labels = metrics.namespaces.label(&namespace);
        metrics.verifications.get_or_create(&labels).inc_by(v.calls);
        metrics.verification_usd.get_or_create(&labels).inc_by(deja_store::nano_to_usd(v.nano_usd));
    }
    metrics.entries.set(store.len() as i64);
    Ok(())
}
