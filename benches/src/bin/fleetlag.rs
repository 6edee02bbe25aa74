//! Replication lag across a two-replica fleet over real sockets. Starts a
//! `redis-server` (unix socket, temp dir), the simulated upstream and two
//! release `deja` replicas (A and B) sharing it through `[cluster]`, then for
//! each of `--entries` new questions:
//!
//! - asks A (a miss: A answers from upstream and stores),
//! - from the moment A's answer arrives, asks B the same question until B
//!   answers `exact` (the shared exact tier), and, for another question,
//!   a paraphrase until B answers `semantic` (the replicated semantic tier).
//!
//! B's upstream is an unreachable port, so a poll that misses on B fails
//! fast and stores nothing: B can only answer from what A shared. The
//! baseline, in the same run: the same paraphrase asked of A itself (a local
//! semantic hit), and A's exact hit. Lag includes one request to B (the poll
//! that succeeded), so the hit latencies are shown beside it.
//!
//! Usage: cargo run --release -p deja-benches --bin fleetlag -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{free_port, http_client, send, HttpClient, Procs};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// The redis-server binary.
    #[arg(long, default_value = "redis-server")]
    redis: PathBuf,
    /// Entries written on A (each measured once for exact and once for semantic).
    #[arg(long, default_value_t = 300)]
    entries: usize,
    /// Give up on one entry after this long.
    #[arg(long, default_value_t = 5000)]
    give_up_ms: u64,
}

fn ask(text: String) -> String {
    json!({"model": "auto", "messages": [{"role": "system", "content": "You are the support assistant of Acme Inc."}, {"role": "user", "content": text}]}).to_string()
}

/// A replica's config: demo.toml on its own port and store, upstream at
/// `upstream_port`, the cluster on `socket`.
fn replica_config(
    repo: &Path,
    dir: &Path,
    name: &str,
    port: u16,
    upstream_port: u16,
    socket: &Path,
) -> std::io::Result<PathBuf> {
    let config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{upstream_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace("data/demo.sled", &dir.join(format!("{name}.sled")).display().to_string())
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    let cluster = format!("\n[cluster]\nredis_url = \"redis+unix://{}\"\ntimeout = \"100ms\"\n", socket.display());
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config + &cluster)?;
    Ok(path)
}

/// Asks `url` until it answers with `want`: the time from `since` to that
/// answer, and whether the first request already got it.
async fn until(
    client: &HttpClient,
    url: &str,
    body: &str,
    want: &str,
    since: Instant,
    give_up: Duration,
) -> Option<(Duration, bool)> {
    let mut first = true;
    loop {
        if let Some((200, cache)) = send(client, url, body.to_string(), &[]).await {
            if cache == want {
                return Some((since.elapsed(), first));
            }
        }
        first = false;
        if since.elapsed() > give_up {
            return None;
        }
    }
}

async fn timed(client: &HttpClient, url: &str, body: String, want: &str) -> Option<Duration> {
    let t = Instant::now();
    let (status, cache) = send(client, url, body, &[]).await?;
    (status == 200 && cache == want).then(|| t.elapsed())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("redis.sock");
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&args.redis)
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()?,
    );
    let (mock_port, a_port, b_port, dead_port) = (free_port(), free_port(), free_port(), free_port());
    procs.0.push(
        Command::new(&args.deja)
            .args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    for _ in 0..100 {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_config = replica_config(&repo, dir.path(), "a", a_port, mock_port, &socket)?;
    let b_config = replica_config(&repo, dir.path(), "b", b_port, dead_port, &socket)?;
    for config in [&a_config, &b_config] {
        procs.0.push(
            Command::new(&args.deja)
                .args(["serve", "--config"])
                .arg(config)
                .env("RUST_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    let client = http_client();
    let a = format!("http://127.0.0.1:{a_port}/v1/chat/completions");
    let b = format!("http://127.0.0.1:{b_port}/v1/chat/completions");
    for url in [&a, &b] {
        for _ in 0..300 {
            if send(&client, url, ask("warm-up".into()), &[]).await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let give_up = Duration::from_millis(args.give_up_ms);
    let (mut exact_lag, mut semantic_lag) = (Vec::new(), Vec::new());
    let (mut a_exact, mut a_semantic, mut b_exact, mut b_semantic) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut lost, mut first_try) = ((0, 0), (0, 0));
    for i in 0..args.entries {
        // Exact: the same question on B.
        let q = ask(format!("What is the order status of parcel {i}?"));
        if send(&client, &a, q.clone(), &[]).await.is_some_and(|(s, c)| s == 200 && c == "miss") {
            match until(&client, &b, &q, "exact", Instant::now(), give_up).await {
                Some((d, first)) => {
                    exact_lag.push(d);
                    first_try.0 += usize::from(first);
                }
                None => lost.0 += 1,
            }
            a_exact.extend(timed(&client, &a, q.clone(), "exact").await);
            b_exact.extend(timed(&client, &b, q, "exact").await);
        }
        // Semantic: a paraphrase on B.
        let q = ask(format!("How do I reset the password of account {i}?"));
        let para = ask(format!("How can I reset the password for account {i}?"));
        if send(&client, &a, q, &[]).await.is_some_and(|(s, c)| s == 200 && c == "miss") {
            match until(&client, &b, &para, "semantic", Instant::now(), give_up).await {
                Some((d, first)) => {
                    semantic_lag.push(d);
                    first_try.1 += usize::from(first);
                }
                None => lost.1 += 1,
            }
            a_semantic.extend(timed(&client, &a, para.clone(), "semantic").await);
            b_semantic.extend(timed(&client, &b, para, "semantic").await);
        }
    }

    let mut out = String::from("| measurement | n | p50 ms | p99 ms | note |\n|---|---|---|---|---|\n");
    let rows: [(&str, &mut Vec<Duration>, String); 6] = [
        ("A stores → B serves it `exact`", &mut exact_lag, format!("first request {}, never {}", first_try.0, lost.0)),
        (
            "A stores → B serves a paraphrase `semantic`",
            &mut semantic_lag,
            format!("first request {}, never {}", first_try.1, lost.1),
        ),
        ("exact hit on A (local)", &mut a_exact, "baseline".into()),
        ("exact hit on B (copied from Redis)", &mut b_exact, "after the copy".into()),
        ("semantic hit on A (local)", &mut a_semantic, "baseline".into()),
        ("semantic hit on B (replicated)", &mut b_semantic, "embed + search".into()),
    ];
    for (name, lat, note) in rows {
        lat.sort();
        out.push_str(&format!("| {name} | {} | {:.3} | {:.3} | {note} |\n", lat.len(), pct(lat, 0.5), pct(lat, 0.99)));
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    drop(procs);
    Ok(())
}
