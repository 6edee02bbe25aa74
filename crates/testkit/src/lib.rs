//! Test harness: a real Deja on `127.0.0.1:0` in front of a mock upstream,
//! with its own store in a temporary directory.

use deja::config::Config;
use deja::Running;
use deja_embed::{Embedder, FastEmbedder, HashEmbedder, ModelPaths};
use deja_mock_upstream::MockUpstream;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub mod redis_server;
pub use redis_server::RedisServer;

/// Which embedder the proxy uses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Embedding {
    /// all-MiniLM-L6-v2 from `models/`: for tests where the model matters.
    Real,
    /// EmbeddingGemma-300M from `models/gemma` (fetched with
    /// `models/fetch.py --gemma`): for the few tests about that model.
    Gemma,
    /// The deterministic hashed stand-in.
    Hash,
    /// Semantic cache off.
    Off,
}

/// Knobs a test may turn; everything else is a sensible default.
#[derive(Clone, Debug)]
pub struct TestConfig {
    pub embedding: Embedding,
    pub threshold: f32,
    /// `cache.semantic.verify_from`; the default (0.80, or the threshold when lower) when `None`.
    pub verify_from: Option<f32>,
    pub default_ttl: String,
    pub max_entries: u64,
    /// `store.max_bytes`; no byte cap when `None`.
    pub max_bytes: Option<u64>,
    pub first_byte_timeout: String,
    pub attempt_timeout: String,
    pub model_retries: u32,
    pub failures_to_cool: u32,
    pub cooldown: String,
    pub max_body_bytes: u64,
    /// Client keys to require (none: open gateway).
    pub client_keys: Vec<String>,
    pub admin_token: Option<String>,
    /// The key the mock provider expects from Deja.
    pub provider_key: Option<String>,
    /// Appended verbatim (new tables only), with `{upstream}` replaced by
    /// the mock's base URL.
    pub extra_toml: String,
    /// Serve the admin API and /metrics on a listener of their own (`server.admin_listen`).
    pub admin_listen: bool,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            embedding: Embedding::Hash,
            threshold: 0.90,
            verify_from: None,
            default_ttl: "1h".into(),
            max_entries: 100_000,
            max_bytes: None,
            first_byte_timeout: "2s".into(),
            attempt_timeout: "5s".into(),
            model_retries: 1,
            failures_to_cool: 3,
            cooldown: "30s".into(),
            max_body_bytes: 1024 * 1024,
            client_keys: Vec::new(),
            admin_token: Some("test-admin-token".into()),
            provider_key: Some("sk-provider-secret".into()),
            extra_toml: String::new(),
            admin_listen: false,
        }
    }
}

static ENV_SEQ: AtomicU64 = AtomicU64::new(0);

/// A unique environment variable holding `value`, so parallel tests never share one.
pub fn env_var(prefix: &str, value: &str) -> String {
    let name = format!("DEJA_TEST_{prefix}_{}_{}", std::process::id(), ENV_SEQ.fetch_add(1, Ordering::Relaxed));
    std::env::set_var(&name, value);
    name
}

pub fn models_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models"))
}

/// Whether EmbeddingGemma has been fetched. Its tests run only then, unless
/// `DEJA_REQUIRE_GEMMA=1` (CI) makes a missing model a failure.
pub fn gemma_available() -> bool {
    let present = models_dir().join("gemma/model.onnx").exists();
    if !present && std::env::var("DEJA_REQUIRE_GEMMA").is_ok_and(|v| v == "1") {
        panic!("DEJA_REQUIRE_GEMMA=1 but models/gemma is missing: run `python3 models/fetch.py --gemma --accept-gemma-terms-of-use`");
    }
    if !present {
        eprintln!(
            "SKIPPED: EmbeddingGemma is not fetched (python3 models/fetch.py --gemma --accept-gemma-terms-of-use)"
        );
    }
    present
}

/// EmbeddingGemma, loaded once per test binary.
pub fn gemma_embedder() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<FastEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let paths = ModelPaths::of(deja_embed::EmbeddingModel::Gemma, &models_dir());
            Arc::new(FastEmbedder::load(&paths, 2).expect("run `python3 models/fetch.py --gemma` first"))
        })
        .clone()
}

/// The real model, loaded once per test binary.
pub fn real_embedder() -> Arc<dyn Embedder> {
    static MODEL: OnceLock<Arc<FastEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            Arc::new(
                FastEmbedder::load(&ModelPaths::in_dir(&models_dir()), 2).expect("run `python3 models/fetch.py` first"),
            )
        })
        .clone()
}

impl TestConfig {
    pub fn to_toml(&self, upstream_base: &str, store: &std::path::Path) -> String {
        let admin =
            self.admin_token.as_ref().map(|t| env_var("ADMIN", t)).unwrap_or_else(|| "DEJA_TEST_UNSET_ADMIN".into());
        let clients = if self.client_keys.is_empty() {
            "DEJA_TEST_UNSET_CLIENTS".to_string()
        } else {
            env_var("CLIENTS", &self.client_keys.join(","))
        };
        let provider_key = match &self.provider_key {
            Some(k) => format!("api_key_env = \"{}\"", env_var("PROVIDER", k)),
            None => String::new(),
        };
        let (semantic, backend) = match self.embedding {
            Embedding::Real => (true, "minilm"),
            Embedding::Gemma => (true, "gemma"),
            Embedding::Hash => (true, "hash"),
            Embedding::Off => (false, "hash"),
        };
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
{admin_listen}
admin_token_env = "{admin}"
client_keys_env = "{clients}"
max_body_bytes = {max_body}

[store]
path = "{store}"
{max_bytes}

[cache]
default_ttl = "{ttl}"
max_entries = {max_entries}
sweep_interval = "200ms"

[cache.semantic]
enabled = {semantic}
threshold = {threshold}
verify_from = {verify_from}

[embedding]
backend = "{backend}"
model_dir = "{models}"
threads = 2

[routing]
first_byte_timeout = "{fbt}"
attempt_timeout = "{at}"
model_retries = {retries}
retry_after_cap = "1s"
failures_to_cool = {ftc}
cooldown = "{cooldown}"

[[providers]]
name = "mock"
base_url = "{upstream_base}"
{provider_key}

[[models]]
name = "cheap"
provider = "mock"
input_usd_per_mtok = 0.20
output_usd_per_mtok = 0.80
context_window = 128000

[[models]]
name = "mid"
provider = "mock"
upstream_name = "mid-upstream"
input_usd_per_mtok = 0.30
output_usd_per_mtok = 1.20
context_window = 128000

[[models]]
name = "top"
provider = "mock"
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00
context_window = 128000

[[models]]
name = "embedder"
provider = "mock"
input_usd_per_mtok = 0.02
output_usd_per_mtok = 0.0
context_window = 8000

[[ladders]]
name = "auto"
rungs = ["cheap", "mid", "top"]
[ladders.tasks]
reasoning = "top"
{extra}
"#,
            max_body = self.max_body_bytes,
            admin_listen = if self.admin_listen { "admin_listen = \"127.0.0.1:0\"" } else { "" },
            store = store.display(),
            ttl = self.default_ttl,
            max_entries = self.max_entries,
            max_bytes = self.max_bytes.map(|b| format!("max_bytes = {b}")).unwrap_or_default(),
            threshold = self.threshold,
            verify_from = self.verify_from.unwrap_or(0.80_f32.min(self.threshold)),
            models = models_dir().display(),
            fbt = self.first_byte_timeout,
            at = self.attempt_timeout,
            retries = self.model_retries,
            ftc = self.failures_to_cool,
            cooldown = self.cooldown,
            extra = self.extra_toml.replace("{upstream}", upstream_base),
        )
    }
}

/// A proxy and its mock upstream.
pub struct Harness {
    pub proxy: Running,
    pub mock: MockUpstream,
    pub config_path: PathBuf,
    pub test_config: TestConfig,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy.addr, path)
    }

    /// Where the admin API is served: its own listener with `admin_listen`, else the client one.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy.admin_addr.unwrap_or(self.proxy.addr), path)
    }

    /// Stops the proxy and starts a new one on the same store and config.
    pub async fn restart(self) -> Harness {
        let Harness { proxy, mock, config_path, test_config, dir } = self;
        proxy.stop().await;
        let proxy = launch(&config_path, test_config.embedding).await;
        Harness { proxy, mock, config_path, test_config, dir }
    }
}

async fn launch(config_path: &std::path::Path, embedding: Embedding) -> Running {
    let config = Config::load(config_path).expect("test config is valid");
    let embedder: Option<Arc<dyn Embedder>> = match embedding {
        Embedding::Real => Some(real_embedder()),
        Embedding::Gemma => Some(gemma_embedder()),
        Embedding::Hash => Some(Arc::new(HashEmbedder::new(384))),
        Embedding::Off => None,
    };
    deja::start(config, embedder).await.expect("proxy starts")
}

/// Starts a mock upstream and a proxy in front of it.
pub async fn spawn_proxy(test_config: TestConfig) -> Harness {
    let mock = MockUpstream::start().await.expect("mock upstream starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("deja.toml");
    std::fs::write(&config_path, test_config.to_toml(&mock.base_url(), &dir.path().join("store")))
        .expect("write config");
    let proxy = launch(&config_path, test_config.embedding).await;
    Harness { proxy, mock, config_path, test_config, dir }
}

/// A second proxy (a replica) in front of an existing mock, with its own
/// store; it can be stopped and started again on that store.
pub struct Replica {
    pub proxy: Option<Running>,
    pub config_path: PathBuf,
    pub test_config: TestConfig,
    pub dir: tempfile::TempDir,
}

impl Replica {
    /// The running proxy's URL for `path`; panics while it is stopped.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy.as_ref().expect("replica is running").addr, path)
    }

    pub async fn stop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop().await;
        }
    }

    pub async fn start(&mut self) {
        self.stop().await;
        self.proxy = Some(launch(&self.config_path, self.test_config.embedding).await);
    }
}

/// Starts another proxy in front of `mock`, with its own store.
pub async fn spawn_replica(mock: &MockUpstream, test_config: TestConfig) -> Replica {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("deja.toml");
    std::fs::write(&config_path, test_config.to_toml(&mock.base_url(), &dir.path().join("store")))
        .expect("write config");
    let proxy = Some(launch(&config_path, test_config.embedding).await);
    Replica { proxy, config_path, test_config, dir }
}

/// Polls `condition` every 10 ms until it holds (true) or `timeout` passes
/// (false). For waiting on background work instead of sleeping a guess.
pub async fn eventually<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
