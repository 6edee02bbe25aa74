//! Exact hits while an operator works: hit latency with one client, alone,
//! then while another connection runs admin searches (k = 100) back to back,
//! then while it deletes entries one by one (each delete flushes the store),
//! same run, same binary.
//!
//! Usage: cargo run --release -p deja-benches --bin adminload -- --deja target/release/deja

use clap::Parser;
use deja_benches::load::{closed_loop, http_client, start_demo, table, HttpClient};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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
    let dir = tempfile::tempdir()?;
    let (_procs, base, _) = start_demo(&args.deja, dir.path(), |c| c, &[("DEJA_ADMIN_TOKEN", "bench")]).await?;
    let client = http_client();
    let url = format!("{base}/v1/chat/completions");
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
