//! An operator's heavy admin requests never hold up client traffic: the
//! server runs on a runtime with one worker thread, so an admin search or
//! purge scan that ran on it would stall every exact hit behind it. Hits are
//! measured alone, then while admin requests run back to back, and compared
//! with how long the admin requests themselves take.

mod common;

use common::{ask, client};
use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Entries stored before measuring: enough that a search with k = 100 and a
/// scan of every entry take far longer than an exact hit.
const ENTRIES: usize = 1_500;
/// Admin requests in flight at once.
const OPERATORS: usize = 2;
const LOAD: Duration = Duration::from_secs(3);

fn question(i: usize) -> String {
    format!("How do I reset the password of account {i}?")
}

/// A proxy driven by a current-thread runtime on a thread of its own.
struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Self {
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let h = spawn_proxy(TestConfig::default()).await;
                url_tx.send(h.url("")).expect("the test waits for the address");
                let _ = stopped.await;
                h.proxy.stop().await;
            });
        });
        let base = url_rx.recv_timeout(Duration::from_secs(60)).expect("the proxy starts");
        Server { base, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn fill(server: &Server) {
    let url = server.url("/v1/chat/completions");
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let c = client();
            for i in (w..ENTRIES).step_by(8) {
                let r = c.post(&url).json(&ask(&question(i))).send().await.expect("answer");
                assert_eq!(r.status().as_u16(), 200);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
}

/// Exact hits, one at a time, until `until`: each one's latency.
async fn hits(url: String, until: Instant) -> Vec<Duration> {
    let c = client();
    let mut took = Vec::new();
    let mut i = 0;
    while Instant::now() < until {
        let started = Instant::now();
        let r = c.post(&url).json(&ask(&question(i % ENTRIES))).send().await.expect("answer");
        let cache = r.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let _ = r.bytes().await;
        took.push(started.elapsed());
        assert_eq!(cache, "exact", "hit {i}");
        i += 7;
    }
    took
}

/// Sends `body` to `path` back to back until `until`: each one's duration.
async fn operator(url: String, body: Value, until: Instant) -> Vec<Duration> {
    let c = client();
    let mut took = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let r = c.post(&url).bearer_auth("test-admin-token").json(&body).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200);
        let _ = r.bytes().await;
        took.push(started.elapsed());
    }
    took
}

fn percentile(mut d: Vec<Duration>, p: f64) -> Duration {
    d.sort();
    let i = ((d.len() as f64 - 1.0) * p).round() as usize;
    d.get(i).copied().unwrap_or_default()
}

/// Hits alone, then beside `OPERATORS` clients sending `body` to `path`.
async fn hits_beside(server: &Server, path: &str, body: Value) {
    let hit_url = server.url("/v1/chat/completions");
    let alone = hits(hit_url.clone(), Instant::now() + Duration::from_secs(1)).await;

    let until = Instant::now() + LOAD;
    let ops: Vec<_> = (0..OPERATORS).map(|_| tokio::spawn(operator(server.url(path), body.clone(), until))).collect();
    // Hits start once the admin requests are under way, and stop with them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let beside = hits(hit_url, until).await;
    let mut admin = Vec::new();
    for op in ops {
        admin.extend(op.await.expect("operator"));
    }

    let admin_p50 = percentile(admin.clone(), 0.5);
    let (alone_p50, beside_p50, beside_p90) =
        (percentile(alone.clone(), 0.5), percentile(beside.clone(), 0.5), percentile(beside.clone(), 0.9));
    let report = format!(
        "{path}: {} admin requests, p50 {admin_p50:?}; hits alone {} p50 {alone_p50:?}; \
         beside {} p50 {beside_p50:?} p90 {beside_p90:?}",
        admin.len(),
        alone.len(),
        beside.len()
    );
    eprintln!("{report}");
    // The load was real: admin requests much slower than a hit, several of them.
    assert!(admin.len() >= 2 * OPERATORS, "{report}");
    assert!(admin_p50 >= alone_p50 * 10, "admin requests too light to tell: {report}");
    // Behind a blocked worker, hits get through only between admin requests:
    // about as many hits as admin requests, the slowest tenth waiting about
    // as long as one. Off the worker, many hits answer during each.
    assert!(beside.len() >= 5 * admin.len(), "{report}");
    assert!(beside_p90 * 2 <= admin_p50, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_hits_keep_answering_while_admin_searches_and_purges_run() {
    let server = Server::start();
    fill(&server).await;
    let search = json!({"prompt": "How can I reset the password of account 12?", "k": 100});
    hits_beside(&server, "/admin/cache/search", search).await;
    // A dry run scans every entry and removes nothing: the same work each time.
    hits_beside(&server, "/admin/cache/purge", json!({"all": true, "dry_run": true})).await;
}
