//! The TOML file as written: serde structs that refuse unknown keys, with
//! named defaults. [`super::Config`] is what the rest of Deja sees.

use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub embedding: RawEmbedding,
    #[serde(default)]
    pub routing: RawRouting,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    #[serde(default)]
    pub ladders: Vec<RawLadder>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub cluster: Option<super::cluster::RawCluster>,
    #[serde(default)]
    pub clients: Vec<super::clients::RawClient>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serve the admin API, the dashboard and /metrics here only, apart from client traffic.
    #[serde(default)]
    pub admin_listen: Option<String>,
    #[serde(default)]
    pub admin_token_env: Option<String>,
    #[serde(default)]
    pub client_keys_env: Option<String>,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "yes")]
    pub metrics: bool,
    /// A variable holding a bearer token `/metrics` then requires.
    #[serde(default)]
    pub metrics_token_env: Option<String>,
    /// Namespaces with series of their own in `/metrics` (and store counters); the rest are `(other)`.
    #[serde(default = "default_metrics_namespaces")]
    pub metrics_namespaces: usize,
    #[serde(default)]
    pub tls: Option<RawTls>,
    #[serde(default = "default_log_format")]
    pub log_format: String,
}

fn default_metrics_namespaces() -> usize {
    100
}
fn default_log_format() -> String {
    "text".into()
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> u64 {
    1024 * 1024
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// `"2GiB"`, `"500MB"` or a number of bytes; absent: no byte cap.
    #[serde(default)]
    pub max_bytes: Option<RawBytes>,
}

/// A size as written in the file: a number of bytes or a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBytes {
    Number(u64),
    Text(String),
}

impl Default for RawStore {
    fn default() -> Self {
        Self { path: default_store_path(), max_bytes: None }
    }
}

fn default_store_path() -> PathBuf {
    "data/deja.sled".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ttl")]
    pub default_ttl: String,
    /// The longest a client's `x-deja-ttl` may keep an answer.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: String,
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
    #[serde(default = "default_sweep")]
    pub sweep_interval: String,
    #[serde(default)]
    pub semantic: RawSemantic,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            enabled: true,
            default_ttl: default_ttl(),
            max_ttl: default_max_ttl(),
            max_entries: default_max_entries(),
            sweep_interval: default_sweep(),
            semantic: RawSemantic::default(),
        }
    }
}

fn default_ttl() -> String {
    "24h".into()
}
fn default_max_ttl() -> String {
    "7d".into()
}
fn default_max_entries() -> u64 {
    1_000_000
}
fn default_sweep() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSemantic {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Default: per embedding model, and higher with a verifier ([`super::model_defaults`]).
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub verify_from: Option<f32>,
    #[serde(default)]
    pub ladder_thresholds: HashMap<String, f32>,
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Graph nodes a search keeps in view (HNSW's `ef`).
    #[serde(default = "default_search_breadth")]
    pub search_breadth: usize,
    #[serde(default)]
    pub guards: deja_cache::GuardSettings,
    /// Off unless the table is present.
    #[serde(default)]
    pub verifier: Option<RawVerifier>,
    /// Off unless the table is present (and then only with a verifier).
    #[serde(default)]
    pub conversations: Option<RawConversations>,
    /// Off unless `sample_rate` is above 0.
    #[serde(default)]
    pub slo: super::slo::RawSlo,
}

/// `[cache.semantic.verifier]`: a model asked whether a grey-band candidate
/// has the same answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerifier {
    /// A model or ladder name from the catalog.
    pub model: String,
    #[serde(default = "default_max_candidates")]
    pub max_candidates: usize,
    #[serde(default = "default_verifier_timeout")]
    pub timeout: String,
    /// Instructions sent as the system message; the texts follow in the user message.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `sync` (default): verify before answering; `async`: answer at once
    /// and verify in the background.
    #[serde(default)]
    pub mode: Option<String>,
}

/// `[cache.semantic.conversations]`: multi-turn requests whose earlier turns
/// differ may be served an entry, on the verifier's yes only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConversations {
    /// The least cosine similarity between the two conversations' earlier turns.
    #[serde(default = "default_history_min")]
    pub history_min: f32,
}

fn default_history_min() -> f32 {
    0.5
}

fn default_search_breadth() -> usize {
    deja_cache::DEFAULT_SEARCH_BREADTH
}

fn default_max_candidates() -> usize {
    3
}
fn default_verifier_timeout() -> String {
    "2s".into()
}

impl Default for RawSemantic {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: None,
            verify_from: None,
            ladder_thresholds: HashMap::new(),
            candidates: default_candidates(),
            search_breadth: default_search_breadth(),
            guards: deja_cache::GuardSettings::default(),
            verifier: None,
            conversations: None,
            slo: super::slo::RawSlo::default(),
        }
    }
}

fn default_candidates() -> usize {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbedding {
    /// `minilm` (default) or `gemma`.
    #[serde(default)]
    pub model: Option<String>,
    /// The older spelling of `model`; `hash` is a test embedder.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default = "default_model_dir")]
    pub model_dir: PathBuf,
    #[serde(default)]
    pub ort_library: Option<PathBuf>,
    #[serde(default = "default_threads")]
    pub threads: usize,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

impl Default for RawEmbedding {
    fn default() -> Self {
        Self {
            model: None,
            backend: None,
            model_dir: default_model_dir(),
            ort_library: None,
            threads: default_threads(),
            max_batch: default_max_batch(),
        }
    }
}

fn default_model_dir() -> PathBuf {
    "models".into()
}
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
fn default_max_batch() -> usize {
    32
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    #[serde(default = "default_first_byte")]
    pub first_byte_timeout: String,
    #[serde(default = "default_attempt")]
    pub attempt_timeout: String,
    #[serde(default = "default_retries")]
    pub model_retries: u32,
    #[serde(default = "default_retry_cap")]
    pub retry_after_cap: String,
    #[serde(default = "default_failures")]
    pub failures_to_cool: u32,
    #[serde(default = "default_cooldown")]
    pub cooldown: String,
}

impl Default for RawRouting {
    fn default() -> Self {
        Self {
            first_byte_timeout: default_first_byte(),
            attempt_timeout: default_attempt(),
            model_retries: default_retries(),
            retry_after_cap: default_retry_cap(),
            failures_to_cool: default_failures(),
            cooldown: default_cooldown(),
        }
    }
}

fn default_first_byte() -> String {
    "15s".into()
}
fn default_attempt() -> String {
    "120s".into()
}
fn default_retries() -> u32 {
    2
}
fn default_retry_cap() -> String {
    "5s".into()
}
fn default_failures() -> u32 {
    3
}
fn default_cooldown() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The API it speaks: "openai" (default), "anthropic" or "gemini".
    #[serde(default)]
    pub kind: Option<String>,
    /// Anthropic only: `max_tokens` when the client sets none.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub upstream_name: Option<String>,
    pub input_usd_per_mtok: f64,
    /// A prompt token read from the provider's prompt cache; the input price unless set.
    #[serde(default)]
    pub cached_input_usd_per_mtok: Option<f64>,
    /// A prompt token written to the provider's prompt cache (Anthropic); the input price unless set.
    #[serde(default)]
    pub cache_write_usd_per_mtok: Option<f64>,
    pub output_usd_per_mtok: f64,
    pub context_window: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLadder {
    pub name: String,
    pub rungs: Vec<String>,
    #[serde(default)]
    pub start_rules: Vec<RawStartRule>,
    #[serde(default)]
    pub tasks: HashMap<String, String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// "cost" (default) or "latency".
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub max_ttfb: Option<String>,
    /// Off unless set.
    #[serde(default)]
    pub hedge_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub name: Option<String>,
    pub examples: Vec<String>,
    pub start_at: String,
    #[serde(default)]
    pub threshold: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStartRule {
    pub min_prompt_tokens: u64,
    pub start_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    #[serde(default = "default_header_read")]
    pub header_read_timeout: String,
    #[serde(default = "default_body_read")]
    pub body_read_timeout: String,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    #[serde(default)]
    pub rate: RawRate,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            header_read_timeout: default_header_read(),
            body_read_timeout: default_body_read(),
            request_timeout: default_request_timeout(),
            rate: RawRate::default(),
        }
    }
}

fn default_max_connections() -> u64 {
    1024
}
fn default_header_read() -> String {
    "10s".into()
}
fn default_body_read() -> String {
    "30s".into()
}
fn default_request_timeout() -> String {
    "10m".into()
}

/// Per client key rate limits; absent means no limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRate {
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    #[serde(default)]
    pub keys: Vec<RawKeyRate>,
}

/// Overrides for the key held in `key_env`; an absent field inherits the default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyRate {
    pub key_env: String,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
}
