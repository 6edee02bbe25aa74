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

/// Entries a `purge --dry-run` lists.
pub const DRY_RUN_LISTED: usize = 100;

/// Text from an entry or a prompt on one line: line breaks and runs of
/// whitespace become one space, so a table row stays one row.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Human-readable rendering; `--json` prints the raw answer instead.
pub fn render(action: &CacheAction, v: &Value) -> String {
    let mut out = String::new();
    match action {
        CacheAction::Stats => {
            let _ = writeln!(out, "requests        {}", v["requests"]);
            let hits = |kind: &str| v.pointer(&format!("/hits/{kind}")).cloned().unwrap_or(Value::Null);
            let _ = writeln!(out, "hits            {} exact, {} semantic", hits("exact"), hits("semantic"));
            // Three separate counts: refreshes and bypasses are not misses.
            let _ = writeln!(out, "misses          {}", v["misses"]);
            let _ = writeln!(out, "refreshes       {}", v["refreshes"]);
            let _ = writeln!(out, "bypasses        {}", v["bypasses"]);
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
            // NAMESPACE: what clients send in `x-deja-namespace`; STORED AS:
            // the namespace with its root. `--namespace` takes either.
            let _ = writeln!(
                out,
                "{:<16} {:<12} {:<20} {:<12} {:>5} {:<18} PREVIEW",
                "ID", "NAMESPACE", "STORED AS", "MODEL", "HITS", "ANSWERED BY"
            );
            for e in v["entries"].as_array().into_iter().flatten() {
                let id = e["id"].as_str().unwrap_or("");
                let _ = writeln!(
                    out,
                    "{:<16} {:<12} {:<20} {:<12} {:>5} {:<18} {}",
                    id.get(..16).unwrap_or(id),
                    e["client_namespace"].as_str().unwrap_or("-"),
                    e["namespace"].as_str().unwrap_or(""),
                    e["requested_model"].as_str().unwrap_or(""),
                    e["hits"],
                    e["answered_by"].as_str().unwrap_or(""),
                    one_line(e["preview"].as_str().unwrap_or(""))
                );
            }
            if let Some(c) = v["next_cursor"].as_str() {
                let _ = writeln!(out, "\nmore: --cursor {c}");
            }
        }
        CacheAction::Search { .. } => {
            let _ = writeln!(
                out,
                "threshold {}  namespace {}  model {}",
                v["threshold"],
                one_line(v["namespace"].as_str().unwrap_or("")),
                one_line(v["model"].as_str().unwrap_or(""))
            );
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
                    one_line(&text)
                );
            }
        }
        CacheAction::Purge { .. } => {
            if let Some(n) = v["would_remove"].as_u64() {
                let _ = writeln!(out, "would remove {n} entries (dry run: nothing was removed)");
            } else {
                let _ = writeln!(out, "removed {} entries", v["removed"].as_u64().unwrap_or(0));
            }
            if let Some(shared) = v["removed_shared"].as_u64() {
                let _ = writeln!(out, "removed {shared} shared copies");
            }
            if let Some(namespaces) = v["namespaces"].as_array() {
                // A client's namespace name: the stored namespaces it stood for here.
                let names: Vec<String> = namespaces.iter().filter_map(Value::as_str).map(one_line).collect();
                let shown = if names.is_empty() { "none on this replica".to_string() } else { names.join(", ") };
                let _ = writeln!(out, "namespaces: {shown}");
            }
            let listed = v["entries"].as_array().map_or(&[][..], Vec::as_slice);
            if !listed.is_empty() {
                let _ = writeln!(out, "{:<16} {:<20} {:<12} PREVIEW", "ID", "NAMESPACE", "MODEL");
            }
            for e in listed {
                let id = e["id"].as_str().unwrap_or("");
                let _ = writeln!(
                    out,
                    "{:<16} {:<20} {:<12} {}",
                    id.get(..16).unwrap_or(id),
                    e["namespace"].as_str().unwrap_or(""),
                    e["requested_model"].as_str().unwrap_or(""),
                    one_line(e["preview"].as_str().unwrap_or(""))
                );
            }
            let total = v["would_remove"].as_u64().unwrap_or(0);
            if (listed.len() as u64) < total && !listed.is_empty() {
                let _ = writeln!(out, "… and {} more", total - listed.len() as u64);
            }
        }
        CacheAction::Rm { .. } => {
            let _ = writeln!(out, "deleted {}", v["deleted"].as_str().unwrap_or(""));
        }
        _ => {
            out = serde_json::to_string_pretty(v).unwrap_or_default();
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ls() -> CacheAction {
        CacheAction::Ls { limit: 20, namespace: None, model: None, cursor: None }
    }

    #[test]
    fn stats_print_misses_refreshes_and_bypasses_as_separate_counts() {
        let v = json!({"requests": 9, "hits": {"exact": 1, "semantic": 2}, "misses": 3, "refreshes": 4, "bypasses": 5});
        let out = render(&CacheAction::Stats, &v);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"misses          3"), "{out}");
        assert!(lines.contains(&"refreshes       4"), "{out}");
        assert!(lines.contains(&"bypasses        5"), "{out}");
        assert!(!out.contains("(refreshes"), "{out}");
    }

    #[test]
    fn search_and_ls_rows_stay_on_one_line_whatever_the_text() {
        let search = CacheAction::Search { prompt: "a\nb".into(), namespace: None, model: None, k: 5 };
        let v = json!({
            "threshold": 0.9, "namespace": "default/team", "model": "auto",
            "results": [{"id": "ab".repeat(32), "similarity": 0.95, "text": "line one\n\nline two", "would_serve": true}],
        });
        let out = render(&search, &v);
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(out.starts_with("threshold 0.9  namespace default/team  model auto\n"), "{out}");
        assert!(out.contains("line one line two"), "{out}");

        let v = json!({"entries": [{
            "id": "cd".repeat(32), "namespace": "default/team", "client_namespace": "team",
            "requested_model": "auto", "hits": 2, "answered_by": "cheap", "preview": "… Ticket:\n42",
        }]});
        let out = render(&ls(), &v);
        assert_eq!(out.lines().count(), 2, "{out}");
        let row = out.lines().nth(1).unwrap_or("");
        assert!(row.starts_with(&format!("{} team         default/team ", "cd".repeat(8))), "{row}");
        assert!(row.ends_with("… Ticket: 42"), "{row}");
    }

    #[test]
    fn a_dry_run_purge_says_what_would_go() {
        let purge = CacheAction::Purge { namespace: None, model: None, older_than_s: None, all: true, dry_run: true };
        let v = json!({"would_remove": 3, "namespaces": ["default/team", "key-0123456789ab/team"], "entries": [
            {"id": "ef".repeat(32), "namespace": "default/team", "requested_model": "auto", "preview": "q1"},
            {"id": "12".repeat(32), "namespace": "key-0123456789ab/team", "requested_model": "auto", "preview": "q2"},
        ]});
        let out = render(&purge, &v);
        assert!(out.starts_with("would remove 3 entries (dry run: nothing was removed)\n"), "{out}");
        assert!(out.contains("namespaces: default/team, key-0123456789ab/team\n"), "{out}");
        assert!(out.contains(&format!("{} default/team", "ef".repeat(8))), "{out}");
        assert!(out.ends_with("… and 1 more\n"), "{out}");
        assert_eq!(render(&purge, &json!({"removed": 2})), "removed 2 entries\n");
    }
}
