//! Hedged requests under a slow first rung, over real sockets. Starts the
//! simulated upstream and Deja in this process, with three ladders over the
//! same two models ("cheap", then "mid"): one without hedging (the baseline)
//! and two with `hedge_after`. In the same run, for each ladder:
//!
//! - "cheap" sends its first byte after `--slow-ms` on every tenth call
//!   (10% slow), then on every call (always slow);
//! - requests arrive at a fixed rate (open loop), each a unique question, so
//!   every one is a miss;
//! - p50 / p90 / p99 / max latency, upstream calls per request and USD per
//!   request (Deja's own spend counters, which bill a hedge loser at its
//!   input price for the prompt).
//!
//! Usage: cargo run --release -p deja-benches --bin hedgebench

use bytes::Bytes;
use clap::Parser;
use deja_mock_upstream::{Fault, MockUpstream};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Requests per scenario.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// The slow rung's time to first byte.
    #[arg(long, default_value_t = 2000)]
    slow_ms: u64,
    /// `hedge_after` of the two hedged ladders, in milliseconds.
    #[arg(long, value_delimiter = ',', default_value = "300,800")]
    hedge_ms: Vec<u64>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn config(mock: &str, store: &std::path::Path, hedges: &[u64]) -> String {
    let mut ladders = String::from("[[ladders]]\nname = \"plain\"\nrungs = [\"cheap\", \"mid\"]\n");
    for ms in hedges {
        ladders.push_str(&format!(
            "[[ladders]]\nname = \"hedge-{ms}ms\"\nrungs = [\"cheap\", \"mid\"]\nhedge_after = \"{ms}ms\"\n"
        ));
    }
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
path = "{store}"
[cache.semantic]
enabled = false
[embedding]
backend = "hash"
[routing]
first_byte_timeout = "15s"
[[providers]]
name = "mock"
base_url = "{mock}"
[[models]]
name = "cheap"
provider = "mock"
input_usd_per_mtok = 0.20
output_usd_per_mtok = 0.80
context_window = 128000
[[models]]
name = "mid"
provider = "mock"
input_usd_per_mtok = 0.30
output_usd_per_mtok = 1.20
context_window = 128000
{ladders}"#,
        store = store.display()
    )
}

/// Sends one request and reads the whole answer (a stream to its end).
async fn send(client: &HttpClient, url: &str, body: String) -> bool {
    let Ok(req) =
        http::Request::post(url).header("content-type", "application/json").body(Full::new(Bytes::from(body)))
    else {
        return false;
    };
    match client.request(req).await {
        Ok(resp) => resp.status() == 200 && resp.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

/// USD Deja has counted as spent, over every model.
fn spent_usd(running: &deja::Running) -> f64 {
    running
        .state
        .metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("deja_spent_usd_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Row {
    name: String,
    ok: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    calls_per_request: f64,
    usd_per_request: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let mock = MockUpstream::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("deja.toml");
    std::fs::write(&path, config(&mock.base_url(), &dir.path().join("store"), &args.hedge_ms))?;
    let running = deja::start(deja::config::Config::load(&path)?, None).await?;
    let url = format!("http://{}/v1/chat/completions", running.addr);
    let client: HttpClient =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(HttpConnector::new());

    let mut ladders = vec!["plain".to_string()];
    ladders.extend(args.hedge_ms.iter().map(|ms| format!("hedge-{ms}ms")));
    let mut rows = Vec::new();
    let mut seq = 0usize;
    for (pattern, stream) in [("10% slow", false), ("10% slow", true), ("always slow", false)] {
        for ladder in &ladders {
            mock.control.reset();
            let slow = Fault::Delay { ms: args.slow_ms };
            if pattern == "always slow" {
                mock.control.set_sticky("cheap", Some(slow));
            } else {
                // Every tenth call to "cheap" is slow; the others answer at once.
                let faults =
                    (0..args.requests).map(|k| if k % 10 == 0 { slow.clone() } else { Fault::Delay { ms: 0 } });
                mock.control.push_faults("cheap", faults);
            }
            let spent_before = spent_usd(&running);
            let start = Instant::now() + Duration::from_millis(50);
            let mut tasks = Vec::with_capacity(args.requests);
            for k in 0..args.requests {
                tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / args.rate as f64)).into()).await;
                seq += 1;
                let body = json!({
                    "model": ladder,
                    "stream": stream,
                    "messages": [{"role": "user", "content": format!("Where is parcel number {seq}?")}],
                })
                .to_string();
                let (client, url) = (client.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let issued = Instant::now();
                    send(&client, &url, body).await.then(|| issued.elapsed())
                }));
            }
            let mut lat = Vec::with_capacity(args.requests);
            for t in tasks {
                if let Ok(Some(d)) = t.await {
                    lat.push(d.as_secs_f64() * 1000.0);
                }
            }
            // Let cancelled calls and spend counters settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            lat.sort_by(f64::total_cmp);
            let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied();
            let n = args.requests as f64;
            rows.push(Row {
                name: format!("{pattern}, {}, {ladder}", if stream { "streamed" } else { "unary" }),
                ok: lat.len(),
                p50: pct(0.50).unwrap_or(0.0),
                p90: pct(0.90).unwrap_or(0.0),
                p99: pct(0.99).unwrap_or(0.0),
                max: lat.last().copied().unwrap_or(0.0),
                calls_per_request: mock.control.total_calls() as f64 / n,
                usd_per_request: (spent_usd(&running) - spent_before) / n,
            });
        }
    }

    let mut out = format!(
        "{} requests per scenario at {}/s; slow first byte {} ms\n\n| scenario | ok | p50 ms | p90 ms | p99 ms | max ms | upstream calls/req | µUSD/req |\n|---|---|---|---|---|---|---|---|\n",
        args.requests, args.rate, args.slow_ms
    );
    for r in &rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.3} |\n",
            r.name,
            r.ok,
            r.p50,
            r.p90,
            r.p99,
            r.max,
            r.calls_per_request,
            r.usd_per_request * 1e6
        ));
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    running.stop().await;
    Ok(())
}
