//! The added latency of Anthropic and Gemini translation, against the
//! OpenAI path, in one run. Starts the release `deja` binary twice (the
//! simulated upstream, and the gateway in front of it with one rung of each
//! provider kind), then sends unique questions (misses, cache bypassed with
//! `Cache-Control: no-store` so no embedding or store write hides the
//! translation) at a fixed rate:
//!
//! - to the simulated upstream directly, in each provider's own API, whole
//!   and streamed (the baselines);
//! - through Deja to the openai-, anthropic- and gemini-kind rung, whole and streamed.
//!
//! Scenarios are interleaved round by round so drift on the shared machine
//! hits every kind alike. Deja's added latency per kind is its p50 (p99)
//! minus the direct p50 (p99) of the same API.
//!
//! Usage: cargo run --release -p deja-benches --bin loadgen_providers -- --deja target/release/deja

use bytes::Bytes;
use clap::Parser;
use deja_benches::load::{free_port, http_client, HttpClient, Procs};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Seconds per scenario per round.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Rounds; every scenario runs once per round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
}

/// One request shape: where it goes, with which headers, and its body for question `k`.
#[derive(Clone)]
struct Target {
    url: String,
    headers: Vec<(&'static str, &'static str)>,
    body: fn(String, bool) -> String,
    stream: bool,
}

async fn send(client: &HttpClient, t: &Target, question: String) -> bool {
    let mut req = http::Request::post(&t.url).header("content-type", "application/json");
    for (k, v) in &t.headers {
        req = req.header(*k, *v);
    }
    let Ok(req) = req.body(Full::new(Bytes::from((t.body)(question, t.stream)))) else { return false };
    let Ok(resp) = client.request(req).await else { return false };
    let ok = resp.status() == 200;
    ok && resp.into_body().collect().await.is_ok()
}

/// Open loop: requests start on a fixed schedule; latency from each request's issue.
async fn open_loop(client: &HttpClient, t: &Target, rate: u64, seconds: u64, tag: &str) -> (Vec<Duration>, usize) {
    let total = (rate * seconds) as usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for k in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate as f64)).into()).await;
        let (client, t) = (client.clone(), t.clone());
        let question = format!("When will order {tag}-{k} arrive?");
        tasks.push(tokio::spawn(async move {
            let issued = Instant::now();
            send(&client, &t, question).await.then(|| issued.elapsed())
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for task in tasks {
        if let Ok(Some(d)) = task.await {
            lat.push(d);
        }
    }
    (lat, total)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

const SYSTEM: &str = "You are the support assistant of Acme Inc.";

fn openai_body(model: &'static str) -> impl Fn(String, bool) -> String {
    move |q, stream| {
        json!({"model": model, "stream": stream, "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]})
        .to_string()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(Args::parse()))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir()?;
    let (mock_port, proxy_port) = (free_port(), free_port());
    let mock = format!("http://127.0.0.1:{mock_port}");
    let mut config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("http://127.0.0.1:9901", &mock)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
        .replace("data/demo.sled", &dir.path().join("store").display().to_string())
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    config.push_str(&format!(
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{mock}/v1"
api_key_env = "DEJA_BENCH_ANTHROPIC_KEY"

[[providers]]
name = "google"
kind = "gemini"
base_url = "{mock}/v1beta"
api_key_env = "DEJA_BENCH_GEMINI_KEY"

[[models]]
name = "claude-sonnet"
provider = "claude"
upstream_name = "claude-sonnet-up"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
context_window = 200000

[[models]]
name = "gemini-flash"
provider = "google"
upstream_name = "gemini-flash-up"
input_usd_per_mtok = 0.3
output_usd_per_mtok = 2.5
context_window = 1000000
"#
    ));
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
            .env("DEJA_BENCH_ANTHROPIC_KEY", "sk-ant-bench")
            .env("DEJA_BENCH_GEMINI_KEY", "AIza-bench")
            .stderr(Stdio::null())
            .spawn()?,
    );
    let client = http_client();

    let proxy = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    let bypass = vec![("cache-control", "no-store")];
    let via = |model: &'static str, stream: bool| -> Target {
        let body: fn(String, bool) -> String = match model {
            "gpt-4o" => |q, s| openai_body("gpt-4o")(q, s),
            "claude-sonnet" => |q, s| openai_body("claude-sonnet")(q, s),
            _ => |q, s| openai_body("gemini-flash")(q, s),
        };
        Target { url: proxy.clone(), headers: bypass.clone(), body, stream }
    };
    let direct_openai = |stream| Target {
        url: format!("{mock}/v1/chat/completions"),
        headers: vec![],
        body: |q, s| openai_body("gpt-4o")(q, s),
        stream,
    };
    let direct_anthropic = |stream| Target {
        url: format!("{mock}/v1/messages"),
        headers: vec![("x-api-key", "sk-ant-bench"), ("anthropic-version", "2023-06-01")],
        body: |q, stream| {
            json!({"model": "claude-sonnet-up", "max_tokens": 4096, "stream": stream, "system": SYSTEM,
                "messages": [{"role": "user", "content": q}]})
            .to_string()
        },
        stream,
    };
    let direct_gemini = |stream| Target {
        url: if stream {
            format!("{mock}/v1beta/models/gemini-flash-up:streamGenerateContent?alt=sse")
        } else {
            format!("{mock}/v1beta/models/gemini-flash-up:generateContent")
        },
        headers: vec![("x-goog-api-key", "AIza-bench")],
        body: |q, _| {
            json!({"systemInstruction": {"parts": [{"text": SYSTEM}]},
                "contents": [{"role": "user", "parts": [{"text": q}]}]})
            .to_string()
        },
        stream,
    };

    // Wait until Deja answers through every kind.
    for t in [via("gpt-4o", false), via("claude-sonnet", false), via("gemini-flash", false)] {
        let mut ready = false;
        for _ in 0..300 {
            if send(&client, &t, "warm-up".into()).await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            return Err("deja did not answer through every provider kind within 30 s".into());
        }
    }

    let scenarios: Vec<(&str, Target)> = vec![
        ("openai: direct", direct_openai(false)),
        ("anthropic: direct", direct_anthropic(false)),
        ("gemini: direct", direct_gemini(false)),
        ("openai: via deja", via("gpt-4o", false)),
        ("anthropic: via deja", via("claude-sonnet", false)),
        ("gemini: via deja", via("gemini-flash", false)),
        ("openai: direct, streamed", direct_openai(true)),
        ("anthropic: direct, streamed", direct_anthropic(true)),
        ("gemini: direct, streamed", direct_gemini(true)),
        ("openai: via deja, streamed", via("gpt-4o", true)),
        ("anthropic: via deja, streamed", via("claude-sonnet", true)),
        ("gemini: via deja, streamed", via("gemini-flash", true)),
    ];
    let mut lat: BTreeMap<usize, (Vec<Duration>, usize)> = BTreeMap::new();
    for round in 0..args.rounds {
        for (i, (name, t)) in scenarios.iter().enumerate() {
            let (l, sent) = open_loop(&client, t, args.rate, args.seconds, &format!("r{round}s{i}")).await;
            eprintln!("round {round}: {name}: {}/{sent} ok", l.len());
            let slot = lat.entry(i).or_default();
            slot.0.extend(l);
            slot.1 += sent;
        }
    }

    let mut out = format!(
        "{} rounds x {} s per scenario at {} req/s, unique questions, cache bypassed\n\n\
         | scenario | sent | ok | p50 ms | p99 ms |\n|---|---|---|---|---|\n",
        args.rounds, args.seconds, args.rate
    );
    let mut p = BTreeMap::new();
    for (i, (name, _)) in scenarios.iter().enumerate() {
        let Some((l, sent)) = lat.get_mut(&i) else { continue };
        l.sort();
        let (p50, p99) = (pct(l, 0.50), pct(l, 0.99));
        p.insert(*name, (p50, p99));
        out.push_str(&format!("| {name} | {sent} | {} | {p50:.3} | {p99:.3} |\n", l.len()));
    }
    let get = |n: &str| p.get(n).copied().unwrap_or((f64::NAN, f64::NAN));
    let added = |kind: &str, suffix: &str| {
        let (d, v) = (get(&format!("{kind}: direct{suffix}")), get(&format!("{kind}: via deja{suffix}")));
        (v.0 - d.0, v.1 - d.1)
    };
    for suffix in ["", ", streamed"] {
        let base = added("openai", suffix);
        out.push_str(&format!("\nadded by deja{suffix} (p50 / p99 over the direct call of the same API):\n"));
        for kind in ["openai", "anthropic", "gemini"] {
            let a = added(kind, suffix);
            out.push_str(&format!(
                "  {kind:<9} +{:.3} / +{:.3} ms  ({:.2}x / {:.2}x the openai path)\n",
                a.0,
                a.1,
                a.0 / base.0,
                a.1 / base.1
            ));
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    drop(procs);
    Ok(())
}
