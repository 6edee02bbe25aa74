//! A client varying `x-deja-namespace` on every request cannot grow Deja
//! without bound: 100,000 distinct namespaces, each a semantic-stage miss
//! that is stored (the store capped at `--max-entries`, so evictions run),
//! with the gateway's resident memory, its store's counters and the size of
//! its `/metrics` scrape printed every 10,000 requests.
//!
//! Usage: cargo run --release -p deja-benches --bin nssoak -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{free_port, http_client, send, Procs};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    namespaces: usize,
    #[arg(long, default_value_t = 2_000)]
    max_entries: u64,
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
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
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()))
        .replace("max_entries = 1000000", &format!("max_entries = {}", args.max_entries));
    let config_path = dir.path().join("deja.toml");
    std::fs::write(&config_path, config)?;
    let mut procs = Procs(Vec::new());
    let mut mock = Command::new(&args.deja);
    mock.args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")]).stderr(Stdio::null());
    procs.0.push(mock.spawn()?);
    let mut serve = Command::new(&args.deja);
    serve.args(["serve", "--config"]).arg(&config_path).env("RUST_LOG", "warn").stderr(Stdio::null());
    serve.env("DEJA_ADMIN_TOKEN", "soak");
    let gateway = serve.spawn()?;
    let pid = gateway.id();
    procs.0.push(gateway);
    let client = http_client();
    let url = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    let ask = |i: usize| {
        json!({"model": "auto", "messages": [{"role": "user", "content": format!("Where is parcel number {i}?")}]})
            .to_string()
    };
    for _ in 0..300 {
        if send(&client, &url, ask(usize::MAX), &[("cache-control", "no-store")]).await.is_some_and(|(s, _)| s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics_url = format!("http://127.0.0.1:{proxy_port}/metrics");
    println!("| namespaces sent | RSS MiB | /metrics bytes | namespace series | ok |");
    println!("|---|---|---|---|---|");
    let step = 10_000.min(args.namespaces);
    let mut sent = 0;
    while sent < args.namespaces {
        let from = sent;
        let n = step.min(args.namespaces - sent);
        // Each request its own namespace, as a hostile client would send.
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.clients {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut ok = 0usize;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return ok;
                    }
                    let ns = format!("user-{}@example.com", from + i);
                    if let Some((200, _)) = send(&client, &url, ask(from + i), &[("x-deja-namespace", &ns)]).await {
                        ok += 1;
                    }
                }
            }));
        }
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap_or(0);
        }
        sent += n;
        let scrape = reqwest_like_get(&client, &metrics_url).await;
        let series = scrape.lines().filter(|l| l.contains("namespace=\"")).count();
        println!("| {sent} | {:.0} | {} | {} | {ok}/{n} |", rss_kib(pid) as f64 / 1024.0, scrape.len(), series);
    }
    Ok(())
}

/// GET `url`'s body as text.
async fn reqwest_like_get(client: &deja_benches::load::HttpClient, url: &str) -> String {
    use http_body_util::BodyExt;
    let Ok(req) = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new())) else {
        return String::new();
    };
    let Ok(resp) = client.request(req).await else { return String::new() };
    resp.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default()
}
