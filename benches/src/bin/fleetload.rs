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
use deja_benches::load::{closed_loop, free_port, http_client, send, summarize, table, HttpClient, Procs, Summary};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
    let r = closed_loop(&client, &[a.as_str()], c, 600, move |i| (i < fill).then(|| ask(i))).await;
    results.push(r.summary("fill: misses on A (stored, shared)", "miss"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let r = closed_loop(&client, &[mock.as_str()], c, secs, |i| Some(ask(i))).await;
    results.push(summarize(&format!("upstream direct, {c} clients"), r.lat, r.sent, r.elapsed, "baseline".into()));
    let r = closed_loop(&client, &[a.as_str()], c, secs, move |i| Some(ask(i % fill))).await;
    results.push(r.summary(&format!("exact hits, local sled (A), {c} clients"), "exact"));
    // Each request a key B has never seen: a local miss and a Redis hit.
    let r = closed_loop(&client, &[b.as_str()], c, secs, move |i| (i < fill).then(|| ask(i))).await;
    let fetched = r.kinds.len();
    results.push(r.summary(&format!("exact hits from Redis (B), {c} clients"), "exact"));
    let r = closed_loop(&client, &[a.as_str()], 1, secs, move |i| Some(ask(i % fill))).await;
    results.push(r.summary("exact hits, local sled (A), 1 client", "exact"));
    let r = closed_loop(&client, &[b.as_str()], 1, secs, move |i| (i + fetched < fill).then(|| ask(i + fetched))).await;
    results.push(r.summary("exact hits from Redis (B), 1 client", "exact"));

    // One replica against two, on keys both hold in their own sled.
    let both = fetched.max(1);
    let r = closed_loop(&client, &[a.as_str()], c, secs, move |i| Some(ask(i % both))).await;
    results.push(r.summary(&format!("one replica (A), {c} clients"), "exact"));
    let r = closed_loop(&client, &[a.as_str(), b.as_str()], c, secs, move |i| Some(ask(i % both))).await;
    results.push(r.summary(&format!("two replicas (A+B), {c} clients"), "exact"));

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
