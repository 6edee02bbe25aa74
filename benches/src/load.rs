//! What the load benchmarks share: child processes killed on drop, free
//! ports, one request over a pooled client, and the results table.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::process::Child;
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(HttpConnector::new())
}

/// Child processes, killed when dropped.
pub struct Procs(pub Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// POSTs `body`; the status and the `x-deja-cache` header, once the body is read.
pub async fn send(client: &HttpClient, url: &str, body: String, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut req = http::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).ok()?;
    let resp = client.request(req).await.ok()?;
    let status = resp.status().as_u16();
    let cache = resp.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    resp.into_body().collect().await.ok()?;
    Some((status, cache))
}

pub struct Summary {
    pub name: String,
    pub sent: usize,
    pub ok: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rps: f64,
    pub note: String,
}

pub fn summarize(name: &str, mut lat: Vec<Duration>, sent: usize, elapsed: Duration, note: String) -> Summary {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Summary {
        name: name.into(),
        sent,
        ok: lat.len(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rps: lat.len() as f64 / elapsed.as_secs_f64(),
        note,
    }
}

/// The results as a Markdown table.
pub fn table(results: &[Summary]) -> String {
    let mut out =
        String::from("| scenario | sent | ok | p50 ms | p99 ms | req/s | note |\n|---|---|---|---|---|---|---|\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.0} | {} |\n",
            r.name, r.sent, r.ok, r.p50_ms, r.p99_ms, r.rps, r.note
        ));
    }
    out
}
