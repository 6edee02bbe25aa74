//! Building responses for cache hits and upstream answers, with Deja's headers.

use crate::reply::{self, Body};
use deja_api::replay::completion_to_sse;
use deja_api::ChatCompletion;
use deja_store::Entry;
use http::{Response, StatusCode};

/// How a cached answer was found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HitKind {
    Exact,
    Semantic { similarity: f32 },
}

impl HitKind {
    pub fn label(self) -> &'static str {
        match self {
            HitKind::Exact => "exact",
            HitKind::Semantic { .. } => "semantic",
        }
    }
}

/// A stored completion, as JSON or as a replayed SSE stream.
pub fn completion(c: &ChatCompletion, stream: bool, include_usage: bool) -> Response<Body> {
    if stream {
        let frames = completion_to_sse(c, include_usage);
        let mut buf = Vec::with_capacity(frames.iter().map(|f| f.len()).sum());
        for f in frames {
            buf.extend_from_slice(&f);
        }
        reply::event_stream(reply::full(buf))
    } else {
        reply::json_bytes(StatusCode::OK, serde_json::to_vec(c).unwrap_or_default())
    }
}

pub fn hit_headers(r: &mut Response<Body>, kind: HitKind, entry: &Entry, now_ms: u64) {
    reply::set_header(r, "x-deja-cache", kind.label());
    reply::set_header(r, "x-deja-entry", &entry.id.to_hex());
    reply::set_header(r, "x-deja-model", &entry.answered_by);
    reply::set_header(r, "x-deja-attempts", "0");
    reply::set_header(r, "x-deja-cost-usd", "0");
    reply::set_header(r, "x-deja-saved-usd", &format_usd(entry.cost_usd));
    reply::set_header(r, "age", &(now_ms.saturating_sub(entry.created_ms) / 1000).to_string());
    if let HitKind::Semantic { similarity } = kind {
        reply::set_header(r, "x-deja-similarity", &format!("{similarity:.4}"));
    }
}

pub fn miss_headers(r: &mut Response<Body>, label: &str, model: &str, attempts: usize, cost_usd: Option<f64>) {
    reply::set_header(r, "x-deja-cache", label);
    reply::set_header(r, "x-deja-model", model);
    reply::set_header(r, "x-deja-attempts", &attempts.to_string());
    if let Some(c) = cost_usd {
        reply::set_header(r, "x-deja-cost-usd", &format_usd(c));
    }
}

pub fn format_usd(v: f64) -> String {
    format!("{v:.9}")
}
