//! Configuration: TOML parsed once into [`RawConfig`], then validated into
//! [`Config`]. Every error names the field at fault (`cache.semantic.threshold`).

mod clients;
mod cluster;
mod duration;
mod ladder;
mod model_defaults;
mod raw;
mod routes;
mod slo;
mod verifier_prompt;

pub use clients::{ClientSettings, OnBudget};
pub use cluster::ClusterSettings;

pub use duration::{parse_duration, parse_duration_at_most, MAX_DURATION, MAX_TIMEOUT};
pub use model_defaults::{default_threshold, semantic_defaults, SemanticDefaults};
pub use routes::{DEFAULT_ROUTE_THRESHOLD, NO_ROUTE};
pub use slo::SloSettings;
pub use verifier_prompt::DEFAULT_VERIFIER_PROMPT;

use deja_cache::{GuardSettings, SemanticSettings};
use deja_providers::ProviderKind;
use deja_router::{Catalog, HealthSettings, LadderSpec, ModelSpec, RouteSpec, StartRule};
use raw::RawConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// A byte size from the file; at least 1 MiB, since a smaller cap would evict
/// everything it stores.
fn bytes(path: &str, raw: &raw::RawBytes) -> Result<u64, ConfigError> {
    let n = match raw {
        raw::RawBytes::Number(n) => *n,
        raw::RawBytes::Text(t) => t
            .trim()
            .parse::<bytesize::ByteSize>()
            .map_err(|e| invalid(path, format!("`{t}` is not a size like 500MB or 2GiB ({e})")))?
            .as_u64(),
    };
    if n < 1 << 20 {
        return Err(invalid(path, format!("{n} bytes is below the least useful cap, 1MiB")));
    }
    Ok(n)
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.into(), message: message.into() }
}

/// `providers[i].kind` and the `default_max_tokens` that goes with it.
fn provider_kind(i: usize, p: &raw::RawProvider) -> Result<(ProviderKind, u64), ConfigError> {
    let name = p.kind.as_deref().unwrap_or("openai");
    let Some(kind) = ProviderKind::parse(name) else {
        let known = ProviderKind::NAMES.join(", ");
        return Err(invalid(format!("providers[{i}].kind"), format!("`{name}` is not one of {known}")));
    };
    match (kind, p.default_max_tokens) {
        (ProviderKind::Anthropic, Some(0)) => {
            Err(invalid(format!("providers[{i}].default_max_tokens"), "must be at least 1"))
        }
        (ProviderKind::Anthropic, n) => Ok((kind, n.unwrap_or(deja_providers::anthropic::DEFAULT_MAX_TOKENS))),
        (_, Some(_)) => Err(invalid(
            format!("providers[{i}].default_max_tokens"),
            "only an anthropic provider needs one (OpenAI-compatible providers have their own default)",
        )),
        (_, None) => Ok((kind, 0)),
    }
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub kind: ProviderKind,
    /// The `max_tokens` an Anthropic request gets when the client set none.
    pub default_max_tokens: u64,
}

/// A provider whose key variable is unset or empty ([`Config::missing_keys`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKey {
    pub provider: String,
    /// The variable `api_key_env` names: for operators, never for clients.
    pub variable: String,
    /// The catalog's models served by this provider, in catalog order.
    pub models: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// With it, `/admin/*` and `/metrics` are served there and not on `listen`.
    pub admin_listen: Option<SocketAddr>,
    pub admin_token_env: Option<String>,
    pub client_keys_env: Option<String>,
    pub max_body_bytes: usize,
    pub metrics: bool,
    /// `/metrics` needs this variable's token as a bearer, when set.
    pub metrics_token_env: Option<String>,
    /// Namespaces counted one by one in `/metrics` and the store (read at start-up).
    pub metrics_namespaces: usize,
    pub tls: Option<TlsFiles>,
    /// Read at start-up only: a reload reports it as needing a restart.
    pub log_format: LogFormat,
}

/// How `deja serve` writes its log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (coloured only when stderr is a terminal).
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl CacheSettings {
    /// What the store may hold: `max_entries` and `[store] max_bytes`.
    pub fn bounds(&self) -> deja_cache::maintenance::Bounds {
        deja_cache::maintenance::Bounds { max_entries: self.max_entries, max_bytes: self.max_bytes }
    }
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub enabled: bool,
    pub default_ttl: Duration,
    /// The longest any answer is kept, whatever the client's `x-deja-ttl` (at least `default_ttl`).
    pub max_ttl: Duration,
    pub max_entries: u64,
    /// `[store] max_bytes`: entries and vectors as stored (the store's `bytes()`).
    pub max_bytes: Option<u64>,
    pub sweep_interval: Duration,
    /// `cache.semantic.search_breadth`: HNSW's `ef` for every search.
    pub search_breadth: usize,
    pub semantic_enabled: bool,
    pub semantic: SemanticSettings,
    /// `None`: grey-band candidates are misses.
    pub verifier: Option<VerifierSettings>,
    /// `[cache.semantic.conversations]`; applies only with a verifier.
    pub conversations: Option<ConversationSettings>,
    /// `[cache.semantic.slo]`: shadow calls for sampled semantic hits.
    pub slo: SloSettings,
}

/// The model that settles grey-band candidates (`[cache.semantic.verifier]`).
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// A model or ladder name from the catalog.
    pub model: String,
    pub max_candidates: usize,
    pub timeout: Duration,
    /// The system message; the texts follow in the user message.
    pub prompt: String,
    pub mode: VerifierMode,
}

/// When the verifier is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierMode {
    /// Before answering: a yes serves the candidate now, at the cost of a
    /// judge call on this request's critical path.
    Sync,
    /// After answering: the request is a miss answered upstream at once, as
    /// with the threshold alone; the candidate is verified in the background
    /// and a yes learns the wording as an alias, served from its next ask.
    Async,
}

/// Conversations whose earlier turns differ (`[cache.semantic.conversations]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConversationSettings {
    /// The least cosine similarity between the two histories' embeddings.
    pub history_min: f32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingBackend {
    /// A sentence model through fastembed.
    Model(deja_embed::EmbeddingModel),
    /// Deterministic hashed features: for tests and demos without the model.
    Hash,
}

#[derive(Debug, Clone)]
pub struct EmbeddingSettings {
    pub backend: EmbeddingBackend,
    pub model_dir: PathBuf,
    pub ort_library: Option<PathBuf>,
    pub threads: usize,
    pub max_batch: usize,
}

#[derive(Debug, Clone)]
pub struct RoutingSettings {
    pub first_byte_timeout: Duration,
    pub attempt_timeout: Duration,
    pub model_retries: u32,
    pub retry_after_cap: Duration,
    pub health: HealthSettings,
}

/// Limits at the edge: connections, slow clients, deadlines and rates.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeLimits {
    /// Open connections served at once; past it a connection is refused with 503.
    pub max_connections: usize,
    /// A request head must arrive whole within this time (HTTP/1).
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this time.
    pub body_read_timeout: Duration,
    /// A response head must be ready within this time: the whole answer for
    /// unary requests, the first event for streams.
    pub request_timeout: Duration,
    /// Rate limits for callers without an override.
    pub rate: RateLimit,
    /// Per key overrides, by the environment variable that holds the key.
    pub rate_keys: Vec<KeyRate>,
}

/// Requests and tokens per minute; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_minute: Option<NonZeroU32>,
}

impl RateLimit {
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRate {
    pub key_env: String,
    pub limit: RateLimit,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub server: ServerSettings,
    pub store_path: PathBuf,
    pub cache: CacheSettings,
    pub embedding: EmbeddingSettings,
    pub routing: RoutingSettings,
    pub providers: HashMap<String, Provider>,
    pub catalog: Catalog,
    pub limits: EdgeLimits,
    /// `[cluster]`: `None` runs on sled alone.
    pub cluster: Option<ClusterSettings>,
    /// `[[ladders.routes]]` by ladder name.
    pub routes: HashMap<String, Vec<RouteSpec>>,
    /// `[[clients]]`: budgets and allowed models per client key.
    pub clients: Vec<ClientSettings>,
    secrets: Secrets,
}

/// Provider keys, client keys and the admin token, read from the environment
/// once per load (and again on reload), never on the request path, never printed.
#[derive(Clone, Default)]
struct Secrets {
    provider_keys: HashMap<String, String>,
    client_keys: Option<Vec<String>>,
    admin_token: Option<String>,
    metrics_token: Option<String>,
    /// The key held by each `limits.rate.keys[i].key_env`, in order.
    rate_keys: Vec<Option<String>>,
    /// The key held by each `clients[i].key_env`, in order.
    clients: Vec<Option<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(redacted)")
    }
}

impl Secrets {
    fn from_env(
        server: &ServerSettings,
        providers: &HashMap<String, Provider>,
        limits: &EdgeLimits,
        clients: &[ClientSettings],
    ) -> Self {
        let read = |var: &Option<String>| var.as_ref().and_then(|v| std::env::var(v).ok()).filter(|v| !v.is_empty());
        let provider_keys =
            providers.values().filter_map(|p| read(&p.api_key_env).map(|k| (p.name.clone(), k))).collect();
        let client_keys = read(&server.client_keys_env)
            .map(|v| v.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect::<Vec<_>>());
        let client_budget_keys: Vec<Option<String>> = clients.iter().map(|c| read(&Some(c.key_env.clone()))).collect();
        // A `[[clients]]` key is a client key too: it joins the list (or starts it).
        let mut client_keys = client_keys.unwrap_or_default();
        for key in client_budget_keys.iter().flatten() {
            if !client_keys.contains(key) {
                client_keys.push(key.clone());
            }
        }
        let client_keys = Some(client_keys);
        Self {
            provider_keys,
            client_keys: client_keys.filter(|k| !k.is_empty()),
            admin_token: read(&server.admin_token_env),
            metrics_token: read(&server.metrics_token_env),
            rate_keys: limits.rate_keys.iter().map(|k| read(&Some(k.key_env.clone()))).collect(),
            clients: client_budget_keys,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        let mut config = Self::parse(&text)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::new(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            invalid(if path == "." { "config".into() } else { path }, message)
        })?;
        Self::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        let listen = raw.server.listen.parse().map_err(|_| {
            invalid("server.listen", format!("`{}` is not an address like 127.0.0.1:8080", raw.server.listen))
        })?;
        if raw.server.max_body_bytes == 0 {
            return Err(invalid("server.max_body_bytes", "must be greater than 0"));
        }
        let log_format = match raw.server.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(invalid("server.log_format", format!("`{other}` is not one of \"text\", \"json\""))),
        };
        let dur = |path: &str, v: &str| parse_duration(v).map_err(|m| invalid(path, m));
        let timeout = |path: &str, v: &str| parse_duration_at_most(v, MAX_TIMEOUT).map_err(|m| invalid(path, m));
        let backend = embedding_backend(&raw.embedding)?;
        let model = match backend {
            EmbeddingBackend::Model(m) => Some(m),
            EmbeddingBackend::Hash => None,
        };
        let defaults = semantic_defaults(model, raw.cache.semantic.verifier.is_some());
        let sem = &raw.cache.semantic;
        let threshold = sem.threshold.unwrap_or(defaults.threshold);
        // An explicit threshold below the default band's floor keeps a band
        // of the same width under it rather than none.
        let verify_from = sem.verify_from.unwrap_or(defaults.verify_from.min(threshold));
        let check_threshold = |path: String, t: f32| {
            if (0.0..=1.0).contains(&t) {
                Ok(())
            } else {
                Err(invalid(path, format!("{t} is not a cosine similarity in [0, 1]")))
            }
        };
        check_threshold("cache.semantic.threshold".into(), threshold)?;
        for (ladder, t) in &sem.ladder_thresholds {
            check_threshold(format!("cache.semantic.ladder_thresholds.{ladder}"), *t)?;
        }
        check_threshold("cache.semantic.verify_from".into(), verify_from)?;
        if verify_from > threshold {
            return Err(invalid(
                "cache.semantic.verify_from",
                format!("{verify_from} is above the threshold ({threshold})"),
            ));
        }
        if !(8..=4096).contains(&sem.search_breadth) {
            return Err(invalid("cache.semantic.search_breadth", "must be between 8 and 4096"));
        }
        if sem.candidates == 0 {
            return Err(invalid("cache.semantic.candidates", "must be at least 1"));
        }
        if raw.embedding.threads == 0 || raw.embedding.max_batch == 0 {
            return Err(invalid("embedding", "threads and max_batch must be at least 1"));
        }

        let mut providers = HashMap::new();
        for (i, p) in raw.providers.into_iter().enumerate() {
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err(invalid(format!("providers[{i}].base_url"), "must start with http:// or https://"));
            }
            if providers.contains_key(&p.name) {
                return Err(invalid(format!("providers[{i}].name"), format!("duplicate provider `{}`", p.name)));
            }
            let (kind, default_max_tokens) = provider_kind(i, &p)?;
            let provider = Provider {
                name: p.name.clone(),
                base_url: p.base_url,
                api_key_env: p.api_key_env,
                kind,
                default_max_tokens,
            };
            providers.insert(p.name, provider);
        }
        let mut models = Vec::new();
        for (i, m) in raw.models.into_iter().enumerate() {
            if !providers.contains_key(&m.provider) {
                return Err(invalid(format!("models[{i}].provider"), format!("unknown provider `{}`", m.provider)));
            }
            let cached_input = m.cached_input_usd_per_mtok.unwrap_or(m.input_usd_per_mtok);
            let cache_write = m.cache_write_usd_per_mtok.unwrap_or(m.input_usd_per_mtok);
            for (field, v) in [
                ("input_usd_per_mtok", m.input_usd_per_mtok),
                ("cached_input_usd_per_mtok", cached_input),
                ("cache_write_usd_per_mtok", cache_write),
                ("output_usd_per_mtok", m.output_usd_per_mtok),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(invalid(format!("models[{i}].{field}"), "must be a non-negative price"));
                }
            }
            if m.context_window == 0 {
                return Err(invalid(format!("models[{i}].context_window"), "must be greater than 0"));
            }
            models.push(ModelSpec {
                upstream_name: m.upstream_name.unwrap_or_else(|| m.name.clone()),
                name: m.name,
                provider: m.provider,
                input_usd_per_mtok: m.input_usd_per_mtok,
                cached_input_usd_per_mtok: cached_input,
                cache_write_usd_per_mtok: cache_write,
                output_usd_per_mtok: m.output_usd_per_mtok,
                context_window: m.context_window,
            });
        }
        let routes = routes::validate(&raw.ladders)?;
        let first_byte_timeout = timeout("routing.first_byte_timeout", &raw.routing.first_byte_timeout)?;
        let mut ladders = Vec::with_capacity(raw.ladders.len());
        for (i, l) in raw.ladders.into_iter().enumerate() {
            let latency = ladder::latency_policy(i, &l, first_byte_timeout)?;
            ladders.push(LadderSpec {
                name: l.name,
                rungs: l.rungs,
                start_rules: l
                    .start_rules
                    .into_iter()
                    .map(|r| StartRule { min_prompt_tokens: r.min_prompt_tokens, rung: r.start_at })
                    .collect(),
                tasks: l.tasks,
                latency,
            });
        }
        let catalog = Catalog::new(models, ladders).map_err(|e| {
            let msg = e.to_string();
            match msg.split_once(": ") {
                Some((path, rest)) => invalid(path, rest),
                None => invalid("ladders", msg),
            }
        })?;
        for ladder in sem.ladder_thresholds.keys() {
            if catalog.resolve(ladder).is_none() {
                return Err(invalid(
                    format!("cache.semantic.ladder_thresholds.{ladder}"),
                    "no ladder or model has this name",
                ));
            }
        }

        let verifier = match &sem.verifier {
            None => None,
            Some(v) => {
                if catalog.resolve(&v.model).is_none() {
                    return Err(invalid("cache.semantic.verifier.model", format!("no ladder or model `{}`", v.model)));
                }
                if v.max_candidates == 0 || v.max_candidates > 9 {
                    return Err(invalid("cache.semantic.verifier.max_candidates", "must be between 1 and 9"));
                }
                let timeout = timeout("cache.semantic.verifier.timeout", &v.timeout)?;
                if timeout.is_zero() {
                    return Err(invalid("cache.semantic.verifier.timeout", "must be greater than 0"));
                }
                let prompt = v.prompt.clone().unwrap_or_else(|| DEFAULT_VERIFIER_PROMPT.to_string());
                let mode = match v.mode.as_deref().unwrap_or("sync") {
                    "sync" => VerifierMode::Sync,
                    "async" => VerifierMode::Async,
                    other => {
                        return Err(invalid(
                            "cache.semantic.verifier.mode",
                            format!("`{other}` is not one of sync, async"),
                        ))
                    }
                };
                Some(VerifierSettings {
                    model: v.model.clone(),
                    max_candidates: v.max_candidates,
                    timeout,
                    prompt,
                    mode,
                })
            }
        };
        let conversations = match &sem.conversations {
            None => None,
            Some(c) => {
                if !(0.0..=1.0).contains(&c.history_min) {
                    return Err(invalid("cache.semantic.conversations.history_min", "must be between 0 and 1"));
                }
                if verifier.is_none() {
                    tracing::warn!("[cache.semantic.conversations] needs [cache.semantic.verifier]: it does not apply");
                }
                Some(ConversationSettings { history_min: c.history_min })
            }
        };

        let admin_listen =
            match &raw.server.admin_listen {
                None => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    invalid("server.admin_listen", format!("`{a}` is not an address like 127.0.0.1:9090"))
                })?),
            };
        let server = ServerSettings {
            listen,
            admin_listen,
            admin_token_env: raw.server.admin_token_env,
            client_keys_env: raw.server.client_keys_env,
            max_body_bytes: raw.server.max_body_bytes as usize,
            metrics: raw.server.metrics,
            metrics_token_env: raw.server.metrics_token_env,
            metrics_namespaces: match raw.server.metrics_namespaces {
                n @ 0..=10_000 => n,
                n => return Err(invalid("server.metrics_namespaces", format!("{n} is more than 10000"))),
            },
            tls: raw.server.tls.map(|t| TlsFiles { cert: t.cert, key: t.key }),
            log_format,
        };
        let limits = validate_limits(raw.limits)?;
        let clients = clients::validate(raw.clients, &catalog)?;
        let secrets = Secrets::from_env(&server, &providers, &limits, &clients);
        for (i, key) in secrets.clients.iter().enumerate() {
            if key.is_none() {
                return Err(invalid(format!("clients[{i}].key_env"), "the environment variable is unset or empty"));
            }
        }
        for (i, key) in secrets.rate_keys.iter().enumerate() {
            let path = format!("limits.rate.keys[{i}].key_env");
            let Some(key) = key else {
                return Err(invalid(path, "the environment variable is unset or empty"));
            };
            if secrets.client_keys.as_ref().is_some_and(|keys| !keys.contains(key)) {
                return Err(invalid(path, "the key it holds is not one of the client keys"));
            }
        }
        Ok(Config {
            source: None,
            secrets,
            routes,
            cluster: cluster::validate(raw.cluster)?,
            clients,
            server,
            store_path: raw.store.path,
            cache: CacheSettings {
                enabled: raw.cache.enabled,
                default_ttl: dur("cache.default_ttl", &raw.cache.default_ttl)?,
                max_ttl: dur("cache.max_ttl", &raw.cache.max_ttl)?
                    .max(dur("cache.default_ttl", &raw.cache.default_ttl)?),
                max_entries: raw.cache.max_entries,
                max_bytes: raw.store.max_bytes.as_ref().map(|b| bytes("store.max_bytes", b)).transpose()?,
                sweep_interval: dur("cache.sweep_interval", &raw.cache.sweep_interval)?,
                search_breadth: sem.search_breadth,
                semantic_enabled: sem.enabled,
                verifier,
                conversations,
                slo: slo::validate(&sem.slo)?,
                semantic: SemanticSettings {
                    threshold,
                    verify_from,
                    ladder_thresholds: sem.ladder_thresholds.clone(),
                    guards: sem.guards,
                    candidates: sem.candidates,
                },
            },
            embedding: EmbeddingSettings {
                backend,
                model_dir: raw.embedding.model_dir,
                ort_library: raw.embedding.ort_library,
                threads: raw.embedding.threads,
                max_batch: raw.embedding.max_batch,
            },
            routing: RoutingSettings {
                first_byte_timeout,
                attempt_timeout: timeout("routing.attempt_timeout", &raw.routing.attempt_timeout)?,
                model_retries: raw.routing.model_retries,
                // Upstream `Retry-After` values are clamped to this already.
                retry_after_cap: parse_duration_at_most(&raw.routing.retry_after_cap, deja_upstream::MAX_RETRY_AFTER)
                    .map_err(|m| invalid("routing.retry_after_cap", m))?,
                health: HealthSettings {
                    failures_to_cool: raw.routing.failures_to_cool.max(1),
                    cooldown: dur("routing.cooldown", &raw.routing.cooldown)?,
                },
            },
            providers,
            catalog,
            limits,
        })
    }

    /// The rate limit for a caller presenting `client_key` (`None`: the open gateway).
    pub fn rate_limit(&self, client_key: Option<&str>) -> RateLimit {
        let key_limit = client_key
            .and_then(|presented| self.secrets.rate_keys.iter().position(|k| k.as_deref() == Some(presented)));
        key_limit.and_then(|i| self.limits.rate_keys.get(i)).map_or(self.limits.rate, |k| k.limit)
    }

    /// The `[[clients]]` entry of the caller presenting `client_key`, if any.
    pub fn client(&self, client_key: Option<&str>) -> Option<&ClientSettings> {
        let presented = client_key?;
        let i = self.secrets.clients.iter().position(|k| k.as_deref() == Some(presented))?;
        self.clients.get(i)
    }

    /// The key held by each `clients[i].key_env`, in order: only for hashing.
    pub fn client_budget_keys(&self) -> &[Option<String>] {
        &self.secrets.clients
    }

    /// The API key of `provider`, from its environment variable.
    pub fn api_key(&self, provider: &str) -> Option<&str> {
        self.secrets.provider_keys.get(provider).map(String::as_str)
    }

    /// Providers whose `api_key_env` names a variable that is unset or empty,
    /// by name, each with the models whose rungs are skipped for it (one no
    /// model uses is left out). A provider without `api_key_env` (a local
    /// server) needs no key.
    pub fn missing_keys(&self) -> Vec<MissingKey> {
        let mut missing: Vec<MissingKey> = self
            .providers
            .values()
            .filter(|p| self.api_key(&p.name).is_none())
            .filter_map(|p| {
                let variable = p.api_key_env.clone()?;
                let models: Vec<String> =
                    self.catalog.models.iter().filter(|m| m.provider == p.name).map(|m| m.name.clone()).collect();
                (!models.is_empty()).then(|| MissingKey { provider: p.name.clone(), variable, models })
            })
            .collect();
        missing.sort_by(|a, b| a.provider.cmp(&b.provider));
        missing
    }

    /// Client keys from `server.client_keys_env`, if set and non-empty.
    pub fn client_keys(&self) -> Option<&[String]> {
        self.secrets.client_keys.as_deref()
    }

    /// The token `/metrics` requires, from `server.metrics_token_env`, if set and non-empty.
    pub fn metrics_token(&self) -> Option<&str> {
        self.secrets.metrics_token.as_deref()
    }

    /// The admin token from `server.admin_token_env`, if set and non-empty.
    pub fn admin_token(&self) -> Option<&str> {
        self.secrets.admin_token.as_deref()
    }

    pub fn guard_settings(&self) -> GuardSettings {
        self.cache.semantic.guards
    }

    /// The same configuration embedding with `model`, at that model's
    /// default threshold and band (`deja eval --model`).
    pub fn with_embedding_model(mut self, model: deja_embed::EmbeddingModel) -> Self {
        let d = semantic_defaults(Some(model), self.cache.verifier.is_some());
        self.embedding.backend = EmbeddingBackend::Model(model);
        self.cache.semantic.threshold = d.threshold;
        self.cache.semantic.verify_from = d.verify_from;
        self
    }
}

/// A model's name as `embedding.model` and `deja eval --model` take it.
pub fn parse_embedding_model(name: &str) -> Option<deja_embed::EmbeddingModel> {
    use deja_embed::EmbeddingModel;
    match name.to_ascii_lowercase().as_str() {
        "minilm" | "all-minilm-l6-v2" => Some(EmbeddingModel::MiniLm),
        "gemma" | "embeddinggemma-300m" | "embeddinggemma" => Some(EmbeddingModel::Gemma),
        _ => None,
    }
}

/// `embedding.model` (or its older spelling `embedding.backend`).
fn embedding_backend(raw: &raw::RawEmbedding) -> Result<EmbeddingBackend, ConfigError> {
    let (field, name) = match (&raw.model, &raw.backend) {
        (Some(_), Some(_)) => {
            return Err(invalid("embedding.backend", "set `embedding.model` only: `backend` is its older name"))
        }
        (Some(m), None) => ("embedding.model", m.as_str()),
        (None, Some(b)) => ("embedding.backend", b.as_str()),
        (None, None) => return Ok(EmbeddingBackend::Model(deja_embed::EmbeddingModel::MiniLm)),
    };
    match parse_embedding_model(name) {
        Some(m) => Ok(EmbeddingBackend::Model(m)),
        None if name == "hash" => Ok(EmbeddingBackend::Hash),
        None => Err(invalid(field, format!("`{name}` is not one of minilm, gemma (or hash, for tests)"))),
    }
}

fn validate_limits(raw: raw::RawLimits) -> Result<EdgeLimits, ConfigError> {
    if raw.max_connections == 0 {
        return Err(invalid("limits.max_connections", "must be at least 1"));
    }
    let positive = |path: &str, v: &str| match parse_duration_at_most(v, MAX_TIMEOUT) {
        Ok(d) if d.is_zero() => Err(invalid(path, "must be longer than 0s")),
        Ok(d) => Ok(d),
        Err(m) => Err(invalid(path, m)),
    };
    let per_minute = |v: Option<u32>| v.and_then(NonZeroU32::new);
    let rate = RateLimit {
        requests_per_minute: per_minute(raw.rate.requests_per_minute),
        tokens_per_minute: per_minute(raw.rate.tokens_per_minute),
    };
    let mut rate_keys: Vec<KeyRate> = Vec::new();
    for (i, k) in raw.rate.keys.into_iter().enumerate() {
        if k.key_env.trim().is_empty() {
            return Err(invalid(format!("limits.rate.keys[{i}].key_env"), "must name an environment variable"));
        }
        if rate_keys.iter().any(|other| other.key_env == k.key_env) {
            return Err(invalid(format!("limits.rate.keys[{i}].key_env"), format!("`{}` is listed twice", k.key_env)));
        }
        // An absent field inherits the default; 0 means unlimited for this key.
        let limit = RateLimit {
            requests_per_minute: k.requests_per_minute.map_or(rate.requests_per_minute, NonZeroU32::new),
            tokens_per_minute: k.tokens_per_minute.map_or(rate.tokens_per_minute, NonZeroU32::new),
        };
        rate_keys.push(KeyRate { key_env: k.key_env, limit });
    }
    Ok(EdgeLimits {
        max_connections: usize::try_from(raw.max_connections).unwrap_or(usize::MAX),
        header_read_timeout: positive("limits.header_read_timeout", &raw.header_read_timeout)?,
        body_read_timeout: positive("limits.body_read_timeout", &raw.body_read_timeout)?,
        request_timeout: positive("limits.request_timeout", &raw.request_timeout)?,
        rate,
        rate_keys,
    })
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
