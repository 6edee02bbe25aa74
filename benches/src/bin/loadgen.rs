//! Load benchmark over real sockets. Starts the release `deja` binary twice
//! (the simulated upstream, and the gateway in front of it), then measures,
//! in the same run:
//!
//! - the upstream directly (the baseline),
//! - the gateway with the cache bypassed (`Cache-Control: no-store`): its added latency,
//! - cache misses with the semantic stage on (embedding + store),
//! - exact hits at full speed,
//! - semantic hits (paraphrases, real model) with concurrent clients.
//!
//! Usage: cargo run --release -p deja-benches --bin loadgen -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{free_port, http_client, send, summarize, table, HttpClient, Procs};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Seconds per open-loop scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Fixed request rates (per second) for the open-loop scenarios.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    rates: Vec<u64>,
    /// Concurrent connections for the closed-loop scenarios.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// Open loop: requests start on a fixed schedule whatever the answers do.
/// Latency counts from the moment each request is issued (tokio's timer has
/// millisecond resolution, which would otherwise add up to 1 ms of noise).
async fn open_loop(
    client: &HttpClient,
    url: &str,
    rate: u64,
    seconds: u64,
    headers: &'static [(&'static str, &'static str)],
    body: impl Fn(usize) -> String,
) -> (Vec<Duration>, usize, Duration) {
    let total = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        let at = start + Duration::from_secs_f64(k as f64 / rate as f64);
        tokio::time::sleep_until(at.into()).await;
        let client = client.clone();
        let url = url.to_string();
        let b = body(k);
        tasks.push(tokio::spawn(async move {
            let issued = Instant::now();
            match send(&client, &url, b, headers).await {
                Some((200, _)) => Some(issued.elapsed()),
                _ => None,
            }
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        if let Ok(Some(d)) = t.await {
            lat.push(d);
        }
    }
    (lat, total, start.elapsed())
}

/// Closed loop: `concurrency` clients send back to back for `seconds`.
async fn closed_loop(
    client: &HttpClient,
    url: &str,
    concurrency: usize,
    seconds: u64,
    body: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> (Vec<Duration>, usize, Duration, Vec<String>) {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut kinds = Vec::new();
            let mut i = w;
            while Instant::now() < end {
                let t = Instant::now();
                if let Some((200, cache)) = send(&client, &url, body(i), &[]).await {
                    lat.push(t.elapsed());
                    kinds.push(cache);
                }
                i += concurrency;
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

fn ask(text: String) -> String {
    json!({"model": "auto", "messages": [{"role": "system", "content": "You are the support assistant of Acme Inc."}, {"role": "user", "content": text}]}).to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let (mock_port, proxy_port) = (free_port(), free_port());
    let config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
        .replace("data/demo.sled", &dir.path().join("store").display().to_string())
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    let config_path = dir.path().join("deja.toml");
    std::fs::write(&config_path, config)?;
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&args.deja)
            .args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    procs.0.push(
        Command::new(&args.deja)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()?,
    );

    let client = http_client();
    let mock_url = format!("http://127.0.0.1:{mock_port}/v1/chat/completions");
    let proxy_url = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    for _ in 0..200 {
        if send(&client, &proxy_url, ask("warm-up".into()), &[("cache-control", "no-store")])
            .await
            .is_some_and(|(s, _)| s == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut results = Vec::new();
    for &rate in &args.rates {
        let (l, n, e) =
            open_loop(&client, &mock_url, rate, args.seconds, &[], |k| ask(format!("baseline question {rate} {k}")))
                .await;
        results.push(summarize(&format!("upstream direct @ {rate}/s"), l, n, e, "baseline".into()));
        let (l, n, e) = open_loop(&client, &proxy_url, rate, args.seconds, &[("cache-control", "no-store")], |k| {
            ask(format!("bypass question {rate} {k}"))
        })
        .await;
        results.push(summarize(
            &format!("deja, cache bypassed @ {rate}/s"),
            l,
            n,
            e,
            "no-store: routing + proxying only".into(),
        ));
    }
    let miss_rate = 100;
    let (l, n, e) = open_loop(&client, &proxy_url, miss_rate, args.seconds, &[], |k| {
        ask(format!("How do I reset the password of account {k}?"))
    })
    .await;
    results.push(summarize(
        &format!("deja, misses (embed + store) @ {miss_rate}/s"),
        l,
        n,
        e,
        "unique questions".into(),
    ));

    // Exact hits: the questions the miss scenario stored.
    let stored = (miss_rate * args.seconds) as usize;
    for clients in [1, 4, args.concurrency] {
        let (l, n, e, kinds) = closed_loop(
            &client,
            &proxy_url,
            clients,
            args.seconds,
            Arc::new(move |i| ask(format!("How do I reset the password of account {}?", i % stored))),
        )
        .await;
        let exact = kinds.iter().filter(|k| *k == "exact").count();
        let note = format!("{exact}/{} answered `exact`", kinds.len());
        results.push(summarize(&format!("deja, exact hits, {clients} clients"), l, n, e, note));
    }
    let (l, n, e, _) =
        closed_loop(&client, &mock_url, args.concurrency, args.seconds, Arc::new(|i| ask(format!("direct {i}")))).await;
    let name = format!("upstream direct, {} clients", args.concurrency);
    results.push(summarize(&name, l, n, e, "baseline for throughput".into()));

    for clients in [1, 8] {
        let (l, n, e, kinds) = closed_loop(
            &client,
            &proxy_url,
            clients,
            args.seconds,
            Arc::new(move |i| ask(format!("How can I reset the password for account {}?", i % stored))),
        )
        .await;
        let semantic = kinds.iter().filter(|k| *k == "semantic").count();
        let note = format!("{semantic}/{} answered `semantic`", kinds.len());
        results.push(summarize(&format!("deja, semantic hits, {clients} clients"), l, n, e, note));
    }

    let mut out = table(&results);
    for &rate in &args.rates {
        let find = |prefix: &str| {
            results.iter().find(|r| r.name.starts_with(prefix) && r.name.ends_with(&format!("@ {rate}/s")))
        };
        if let (Some(base), Some(proxy)) = (find("upstream direct"), find("deja, cache bypassed")) {
            out.push_str(&format!(
                "\nadded latency @ {rate}/s: p50 +{:.3} ms, p99 +{:.3} ms (proxy/direct p50 ratio {:.2})",
                proxy.p50_ms - base.p50_ms,
                proxy.p99_ms - base.p99_ms,
                proxy.p50_ms / base.p50_ms.max(1e-9)
            ));
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    std::io::stdout().write_all(b"\n")?;
    drop(procs);
    Ok(())
}
