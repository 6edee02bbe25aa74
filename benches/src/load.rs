//! What the load benchmarks share: child processes killed on drop, free
//! ports, one request over a pooled client, and the results table.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(HttpConnector::new())
}

/// Child processes, killed when dropped.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// POSTs `body`; the status and the `x-deja-cache` header, once the body is read.
pub async fn send(client: &HttpClient, url: &str, body: String, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut req = http::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let cache = resp.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    resp.into_body().collect().await.ok()?;
    Some((status, cache))
}

pub struct Summary {
    pub name: String,
    pub sent: usize,
    pub ok: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rps: f64,
    pub note: String,
}

pub fn summarize(name: &str, mut lat: Vec<Duration>, sent: usize, elapsed: Duration, note: String) -> Summary {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Summary {
        name: name.into(),
        sent,
        ok: lat.len(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rps: lat.len() as f64 / elapsed.as_secs_f64(),
        note,
    }
}

/// The results as a Markdown table.
pub fn table(results: &[Summary]) -> String {
    let mut out =
        String::from("| scenario | sent | ok | p50 ms | p99 ms | req/s | note |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.0} | {} |\n",
            r.name, r.sent, r.ok, r.p50_ms, r.p99_ms, r.rps, r.note
        ));
    }
    out
}

/// What a closed loop saw: the latency of each 200, requests sent, time
/// taken, and each 200's `x-deja-cache`.
pub struct Run {
    pub lat: Vec<Duration>,
    pub sent: usize,
    pub elapsed: Duration,
    pub kinds: Vec<String>,
}

impl Run {
    /// A results row noting how many answers were `want`, and their rate.
    pub fn summary(self, name: &str, want: &str) -> Summary {
        let served = self.kinds.iter().filter(|k| *k == want).count();
        let note = format!(
            "{served}/{} answered `{want}` ({:.0}/s)",
            self.kinds.len(),
            served as f64 / self.elapsed.as_secs_f64().max(1e-9)
        );
        summarize(name, self.lat, self.sent, self.elapsed, note)
    }
}

/// Closed loop: `concurrency` clients, spread over `urls`, send back to back
/// for `seconds`. Request `i` (each index taken once, in order) is
/// `body(i)`; `None` ends the loop.
pub async fn closed_loop(
    client: &HttpClient,
    urls: &[&str],
    concurrency: usize,
    seconds: u64,
    body: impl Fn(usize) -> Option<String> + Send + Sync + 'static,
) -> Run {
    let body = Arc::new(body);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, body, next) = (client.clone(), body.clone(), next.clone());
        let url = urls.get(w % urls.len().max(1)).map(|u| u.to_string()).unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut kinds, mut sent) = (Vec::new(), Vec::new(), 0);
            while Instant::now() < end {
                let Some(b) = body(next.fetch_add(1, Ordering::Relaxed)) else { break };
                sent += 1;
                let t = Instant::now();
                if let Some((200, cache)) = send(&client, &url, b, &[]).await {
                    lat.push(t.elapsed());
                    kinds.push(cache);
                }
            }
            (lat, kinds, sent)
        }));
    }
    let mut run = Run { lat: Vec::new(), sent: 0, elapsed: Duration::ZERO, kinds: Vec::new() };
    for t in tasks {
        if let Ok((l, k, s)) = t.await {
            run.lat.extend(l);
            run.kinds.extend(k);
            run.sent += s;
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// The simulated upstream and a gateway from `deja` in front of it, on free
/// ports, with `config/demo.toml` (its store in `dir`, edited by `edit`) and
/// `env` set for the gateway. Returns the processes (stopped when dropped),
/// the gateway's base URL and its pid, once it answers.
pub async fn start_demo(
    deja: &std::path::Path,
    dir: &std::path::Path,
    edit: impl Fn(String) -> String,
    env: &[(&str, &str)],
) -> Result<(Procs, String, u32), Box<dyn std::error::Error>> {
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (mock_port, proxy_port) = (free_port(), free_port());
    let config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
        .replace("data/demo.sled", &dir.join("store").display().to_string())
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    let config_path = dir.join("deja.toml");
    std::fs::write(&config_path, edit(config))?;
    let mut procs = Procs(Vec::new());
    let mut mock = std::process::Command::new(deja);
    mock.args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")]).stderr(std::process::Stdio::null());
    procs.0.push(mock.spawn()?);
    let mut serve = std::process::Command::new(deja);
    serve.args(["serve", "--config"]).arg(&config_path).env("RUST_LOG", "warn").stderr(std::process::Stdio::null());
    serve.envs(env.iter().copied());
    let gateway = serve.spawn()?;
    let pid = gateway.id();
    procs.0.push(gateway);
    let base = format!("http://127.0.0.1:{proxy_port}");
    let client = http_client();
    let warm = serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "warm-up"}]}).to_string();
    for _ in 0..300 {
        let url = format!("{base}/v1/chat/completions");
        if send(&client, &url, warm.clone(), &[("cache-control", "no-store")]).await.is_some_and(|(s, _)| s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((procs, base, pid))
}
