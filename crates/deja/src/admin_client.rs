//! The HTTP client behind `deja cache ...`, and its table rendering.

use bytes::Bytes;
use deja::cli::CacheAction;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::fmt::Write;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

pub struct AdminClient {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl AdminClient {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    async fn call(&self, method: http::Method, path: &str, body: Option<&Value>) -> Result<Value, AnyError> {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.map(Value::to_string).unwrap_or_default())))?;
        let resp = self.client.request(req).await.map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        if !status.is_success() {
            let msg = value.pointer("/error/message").and_then(Value::as_str).unwrap_or("request failed");
            return Err(format!("{status}: {msg}").into());
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> Result<Value, AnyError> {
        self.call(http::Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AnyError> {
        self.call(http::Method::POST, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Result<Value, AnyError> {
        self.call(http::Method::DELETE, path, None).await
    }
}

/// Human-readable rendering; `--json` prints the raw answer instead.
pub fn render(action: &CacheAction, v: &Value) -> String {
    let mut out = String::new();
    match action {
        CacheAction::Stats => {
            let _ = writeln!(out, "requests        {}", v["requests"]);
            let hits = |kind: &str| v.pointer(&format!("/hits/{kind}")).cloned().unwrap_or(Value::Null);
            let _ = writeln!(out, "hits            {} exact, {} semantic", hits("exact"), hits("semantic"));
            let _ = writeln!(
                out,
                "misses          {}  (refreshes {}, bypasses {})",
                v["misses"], v["refreshes"], v["bypasses"]
            );
            let _ = writeln!(out, "hit rate        {:.1}%", v["hit_rate"].as_f64().unwrap_or(0.0) * 100.0);
            let _ = writeln!(out, "tokens saved    {}", v["tokens_saved"]);
            let _ = writeln!(out, "USD saved       ${:.6}", v["usd_saved"].as_f64().unwrap_or(0.0));
            let _ = writeln!(out, "USD spent       ${:.6}", v["usd_spent"].as_f64().unwrap_or(0.0));
            if let Some(by) = v["usd_spent_by_model"].as_object() {
                for (m, usd) in by {
                    let _ = writeln!(out, "  {m:<22} ${:.6}", usd.as_f64().unwrap_or(0.0));
                }
            }
            let _ = writeln!(
                out,
                "entries         {} (index {}, {} bytes on disk)",
                v["entries"], v["index_size"], v["bytes_on_disk"]
            );
            let _ = writeln!(out, "uptime          {:.0}s", v["uptime_s"].as_f64().unwrap_or(0.0));
            if let Some(clients) = v["clients"].as_array().filter(|c| !c.is_empty()) {
                let _ = writeln!(out, "client budgets  (UTC)");
                let limit = |v: &Value| v.as_f64().map_or_else(|| "-".to_string(), |u| format!("${u:.6}"));
                for c in clients {
                    let _ = writeln!(
                        out,
                        "  {:<18} today ${:.6} of {}, month ${:.6} of {}",
                        c["id"].as_str().unwrap_or("?"),
                        c["spent_today_usd"].as_f64().unwrap_or(0.0),
                        limit(&c["daily_usd"]),
                        c["spent_month_usd"].as_f64().unwrap_or(0.0),
                        limit(&c["monthly_usd"]),
                    );
                }
            }
        }
        CacheAction::Ls { .. } => {
            let _ = writeln!(
                out,
                "{:<16} {:<14} {:<12} {:>5} {:<18} PREVIEW",
                "ID", "NAMESPACE", "MODEL", "HITS", "ANSWERED BY"
            );
            for e in v["entries"].as_array().into_iter().flatten() {
                let id = e["id"].as_str().unwrap_or("");
                let _ = writeln!(
                    out,
                    "{:<16} {:<14} {:<12} {:>5} {:<18} {}",
                    id.get(..16).unwrap_or(id),
                    e["namespace"].as_str().unwrap_or(""),
                    e["requested_model"].as_str().unwrap_or(""),
                    e["hits"],
                    e["answered_by"].as_str().unwrap_or(""),
                    e["preview"].as_str().unwrap_or("")
                );
            }
            if let Some(c) = v["next_cursor"].as_str() {
                let _ = writeln!(out, "\nmore: --cursor {c}");
            }
        }
        CacheAction::Search { .. } => {
            let _ = writeln!(out, "threshold {}  namespace {}  model {}", v["threshold"], v["namespace"], v["model"]);
            match v["cannot_match"].as_str() {
                Some("too_long") => {
                    let _ = writeln!(out, "cannot match: longer than the embedding model reads; exact hits only");
                }
                Some("unknown_tokens") => {
                    let _ = writeln!(
                        out,
                        "cannot match: too many characters the embedding model does not know; exact hits only"
                    );
                }
                Some(other) => {
                    let _ = writeln!(out, "cannot match: {other}; exact hits only");
                }
                None => {}
            }
            let _ = writeln!(out, "{:<16} {:>10} {:<8} TEXT", "ID", "SIMILARITY", "SERVED");
            for r in v["results"].as_array().into_iter().flatten() {
                let id = r["id"].as_str().unwrap_or("");
                let served = if r["would_serve"].as_bool() == Some(true) {
                    "yes".to_string()
                } else {
                    format!("no ({})", r["refused_by"].as_str().unwrap_or("?"))
                };
                // Texts sharing a template were compared on what differs: show that,
                // on one line whatever the prompt's line breaks.
                let text = match r.get("compared").and_then(|c| c.get("entry")).and_then(Value::as_str) {
                    Some(part) => format!("… {part} …"),
                    None => r["text"].as_str().unwrap_or("").to_string(),
                };
                let _ = writeln!(
                    out,
                    "{:<16} {:>10.4} {:<8} {}",
                    id.get(..16).unwrap_or(id),
                    r["similarity"].as_f64().unwrap_or(0.0),
                    served,
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
        _ => {
            out = serde_json::to_string_pretty(v).unwrap_or_default();
            out.push('\n');
        }
    }
    out
}
