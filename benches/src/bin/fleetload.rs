//! Fleet load benchmark over real sockets: a `redis-server` on a unix
//! socket, the simulated upstream, and two replicas of the release `deja`
//! binary sharing through Redis (`[cluster]`), measured in the same run:
//!
//! - the upstream directly (the baseline),
//! - exact hits from a replica's own sled,
//! - exact hits found in Redis (a local miss: each request asks replica B
//!   for an entry only replica A stored; B checks it and copies it into its sled),
//! - exact-hit throughput of one replica against both together.
//!
//! The semantic stage is off: these scenarios are about the exact tiers.
//!
//! Usage: cargo run --release -p deja-benches --bin fleetload -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{free_port, http_client, send, summarize, table, HttpClient, Procs, Summary};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Seconds per closed-loop scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Entries replica A stores first (B's Redis hits each use one up).
    #[arg(long, default_value_t = 100_000)]
    fill: usize,
}

fn ask(i: usize) -> String {
    json!({"model": "auto", "messages": [{"role": "system", "content": "You are the support assistant of Acme Inc."}, {"role": "user", "content": format!("Where is parcel {i}?")}]}).to_string()
}

/// Closed loop: `concurrency` clients, spread over `urls`, send back to back
/// for `seconds`, each request taking the next index (at most `limit`).
async fn closed_loop(
    client: &HttpClient,
    urls: &[&str],
    concurrency: usize,
    seconds: u64,
    limit: usize,
    key: impl Fn(usize) -> usize + Send + Sync + Copy + 'static,
) -> (Vec<Duration>, usize, Duration, Vec<String>) {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        let url = urls.get(w % urls.len().max(1)).map(|u| u.to_string()).unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut kinds) = (Vec::new(), Vec::new());
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                if let Some((200, cache)) = send(&client, &url, ask(key(i)), &[]).await {
                    lat.push(t.elapsed());
                    kinds.push(cache);
                }
            }
            (lat, kinds)
        }));
    }
    let (mut lat, mut kinds) = (Vec::new(), Vec::new());
    for t in tasks {
        if let Ok((l, k)) = t.await {
            lat.extend(l);
            kinds.extend(k);
        }
    }
    let n = lat.len();
    (lat, n, start.elapsed(), kinds)
}

fn note(kinds: &[String], want: &str) -> String {
    format!("{}/{} answered `{want}`", kinds.iter().filter(|k| *k == want).count(), kinds.len())
}

fn replica_config(repo: &Path, dir: &Path, name: &str, port: u16, mock_port: u16, redis: &Path) -> String {
    let config = std::fs::read_to_string(repo.join("config/demo.toml")).unwrap_or_default();
    let config = config
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("data/demo.sled", &dir.join(name).display().to_string());
    let semantic_off = disable_semantic(&config);
    format!("{semantic_off}\n[cluster]\nredis_url = \"redis+unix://{}\"\ntimeout = \"50ms\"\n", redis.display())
}

/// The demo config with `[cache.semantic] enabled = false`.
fn disable_semantic(config: &str) -> String {
    let mut out = String::with_capacity(config.len());
    let mut in_semantic = false;
    for line in config.lines() {
        if line.starts_with('[') {
            in_semantic = line.trim() == "[cache.semantic]";
        }
        if in_semantic && line.trim_start().starts_with("enabled") {
            out.push_str("enabled = false\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn wait_ready(client: &HttpClient, url: &str) {
    for _ in 0..300 {
        if send(client, url, ask(usize::MAX), &[("cache-control", "no-store")]).await.is_some_and(|(s, _)| s == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("redis.sock");
    let (mock_port, a_port, b_port) = (free_port(), free_port(), free_port());
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()?,
    );
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    procs.0.push(
        Command::new(&args.deja)
            .args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    for (name, port) in [("a", a_port), ("b", b_port)] {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, replica_config(&repo, dir.path(), name, port, mock_port, &socket))?;
        procs.0.push(
            Command::new(&args.deja)
                .args(["serve", "--config"])
                .arg(&path)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let client = http_client();
    let mock = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
    let a = format!("http://127.0.0.1:{a_port}/v1/chat/completions");
    let b = format!("http://127.0.0.1:{b_port}/v1/chat/completions");
    wait_ready(&client, &a).await;
    wait_ready(&client, &b).await;
    let (c, secs, fill) = (args.concurrency, args.seconds, args.fill);
    let mut results: Vec<Summary> = Vec::new();

    // A stores `fill` answers (and writes each to Redis).
    let (l, n, e, kinds) = closed_loop(&client, &[a.as_str()], c, 600, fill, |i| i).await;
    results.push(summarize("fill: misses on A (stored, shared)", l, n, e, note(&kinds, "miss")));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (l, n, e, _) = closed_loop(&client, &[mock.as_str()], c, secs, usize::MAX, |i| i).await;
    results.push(summarize(&format!("upstream direct, {c} clients"), l, n, e, "baseline".into()));
    let (l, n, e, kinds) = closed_loop(&client, &[a.as_str()], c, secs, usize::MAX, move |i| i % fill).await;
    results.push(summarize(&format!("exact hits, local sled (A), {c} clients"), l, n, e, note(&kinds, "exact")));
    // Each request a key B has never seen: a local miss and a Redis hit.
    let (l, n, e, kinds) = closed_loop(&client, &[b.as_str()], c, secs, fill, |i| i).await;
    let fetched = kinds.len();
    results.push(summarize(&format!("exact hits from Redis (B), {c} clients"), l, n, e, note(&kinds, "exact")));
    let (l, n, e, kinds) = closed_loop(&client, &[a.as_str()], 1, secs, usize::MAX, move |i| i % fill).await;
    results.push(summarize("exact hits, local sled (A), 1 client", l, n, e, note(&kinds, "exact")));
    let offset = fetched;
    let (l, n, e, kinds) = closed_loop(&client, &[b.as_str()], 1, secs, fill - offset, move |i| i + offset).await;
    results.push(summarize("exact hits from Redis (B), 1 client", l, n, e, note(&kinds, "exact")));

    // One replica against two, on keys both hold in their own sled.
    let both = fetched.max(1);
    let (l, n, e, kinds) = closed_loop(&client, &[a.as_str()], c, secs, usize::MAX, move |i| i % both).await;
    results.push(summarize(&format!("one replica (A), {c} clients"), l, n, e, note(&kinds, "exact")));
    let (l, n, e, kinds) =
        closed_loop(&client, &[a.as_str(), b.as_str()], c, secs, usize::MAX, move |i| i % both).await;
    results.push(summarize(&format!("two replicas (A+B), {c} clients"), l, n, e, note(&kinds, "exact")));

    let mut out = table(&results);
    let rps = |prefix: &str| results.iter().find(|r| r.name.starts_with(prefix)).map_or(0.0, |r| r.rps);
    let base = rps("upstream direct").max(1e-9);
    out.push_str(&format!(
        "\nvs upstream direct: local exact {:.2}x, Redis exact {:.2}x; two replicas / one: {:.2}x\n",
        rps(&format!("exact hits, local sled (A), {c}")) / base,
        rps(&format!("exact hits from Redis (B), {c}")) / base,
        rps("two replicas") / rps("one replica").max(1e-9),
    ));
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    drop(procs);
    Ok(())
}
