//! Exact hits while an operator works: hit latency with one client, alone,
//! then while another connection runs admin searches (k = 100) back to back,
//! then while it deletes entries one by one (each delete flushes the store),
//! same run, same binary.
//!
//! Usage: cargo run --release -p deja-benches --bin adminload -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{closed_loop, free_port, http_client, send, table, HttpClient, Procs};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Entries stored before measuring.
    #[arg(long, default_value_t = 2_000)]
    entries: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn ask(i: usize) -> String {
    json!({"model": "auto", "messages": [{"role": "user", "content": format!("How do I reset the password of account {i}?")}]})
        .to_string()
}

/// Sends admin requests until `stop`: searches, or deletes of stored entries.
async fn operator(
    client: HttpClient,
    base: String,
    deletes: bool,
    ids: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> usize {
    let done = AtomicUsize::new(0);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut req = if deletes {
            let Some(id) = ids.get(i) else { break };
            http::Request::delete(format!("{base}/admin/cache/{id}"))
        } else {
            http::Request::post(format!("{base}/admin/cache/search")).header("content-type", "application/json")
        };
        req = req.header("authorization", "Bearer bench");
        let body = if deletes {
            String::new()
        } else {
            json!({"prompt": "How can I reset my password?", "k": 100}).to_string()
        };
        if let Ok(r) = req.body(http_body_util::Full::new(bytes::Bytes::from(body))) {
            if let Ok(resp) = client.request(r).await {
                use http_body_util::BodyExt;
                let _ = resp.into_body().collect().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
    }
    done.load(Ordering::Relaxed)
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
    let mut mock = Command::new(&args.deja);
    mock.args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")]).stderr(Stdio::null());
    procs.0.push(mock.spawn()?);
    let mut serve = Command::new(&args.deja);
    serve.args(["serve", "--config"]).arg(&config_path).env("RUST_LOG", "warn").stderr(Stdio::null());
    serve.env("DEJA_ADMIN_TOKEN", "bench");
    procs.0.push(serve.spawn()?);
    let client = http_client();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let url = format!("{base}/v1/chat/completions");
    for _ in 0..300 {
        if send(&client, &url, ask(usize::MAX), &[("cache-control", "no-store")]).await.is_some_and(|(s, _)| s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = args.entries;
    let run = closed_loop(&client, &[url.as_str()], 4, 600, move |i| (i < n).then(|| ask(i))).await;
    eprintln!("stored {} entries", run.kinds.iter().filter(|k| *k == "miss").count());
    // The ids to delete: the newest entries (listed first), which the hits below do not ask for.
    let listed = {
        let req = http::Request::get(format!("{base}/admin/cache?limit=1000"))
            .header("authorization", "Bearer bench")
            .body(http_body_util::Full::new(bytes::Bytes::new()))?;
        use http_body_util::BodyExt;
        let body = client.request(req).await?.into_body().collect().await?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body)?
    };
    let ids: Vec<String> = listed["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let ids = Arc::new(ids);
    let half = n / 2;
    // Warm up: the store's and index's work after the writes above settles.
    let _ = closed_loop(&client, &[url.as_str()], 1, 2, move |i| Some(ask(i % half))).await;
    let mut results = Vec::new();
    for (name, operate, deletes) in [
        ("exact hits alone", false, false),
        ("exact hits, admin searches running", true, false),
        ("exact hits, admin deletes running", true, true),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let op =
            operate.then(|| tokio::spawn(operator(client.clone(), base.clone(), deletes, ids.clone(), stop.clone())));
        // The oldest half: never deleted during the run.
        let run = closed_loop(&client, &[url.as_str()], 1, args.seconds, move |i| Some(ask(i % half))).await;
        stop.store(true, Ordering::Relaxed);
        let ops = match op {
            Some(t) => t.await.unwrap_or(0),
            None => 0,
        };
        let mut row = run.summary(name, "exact");
        row.note = format!("{}; {ops} admin requests alongside", row.note);
        results.push(row);
    }
    use std::io::Write;
    std::io::stdout().write_all(table(&results).as_bytes())?;
    Ok(())
}
