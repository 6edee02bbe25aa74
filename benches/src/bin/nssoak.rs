//! A client varying `x-deja-namespace` on every request cannot grow Deja
//! without bound: 100,000 distinct namespaces, each a semantic-stage miss
//! that is stored (the store capped at `--max-entries`, so evictions run),
//! with the gateway's resident memory, its store's counters and the size of
//! its `/metrics` scrape printed every 10,000 requests.
//!
//! Usage: cargo run --release -p deja-benches --bin nssoak -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{http_client, send, start_demo};
use serde_json::json;
use std::path::PathBuf;

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
    let dir = tempfile::tempdir()?;
    let cap = format!("max_entries = {}", args.max_entries);
    let edit = move |c: String| c.replace("max_entries = 1000000", &cap);
    let (_procs, base, pid) = start_demo(&args.deja, dir.path(), edit, &[]).await?;
    let client = http_client();
    let url = format!("{base}/v1/chat/completions");
    let ask = |i: usize| {
        json!({"model": "auto", "messages": [{"role": "user", "content": format!("Where is parcel number {i}?")}]})
            .to_string()
    };
    let metrics_url = format!("{base}/metrics");
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
