//! The admin API under `/admin/`: stats, listing, inspection, deletion,
//! purges, "what would this prompt hit?", and config reload. The caller has
//! already shown the admin token.

use deja_api::key::chat_keys;
use deja_api::{ApiError, CacheKey, ChatRequest, ErrorKind, Namespace};
use deja_gateway::reply::{self, Body};
use deja_gateway::state::AppState;
use deja_store::{nano_to_usd, Counter, ListFilter, ListPage, StoreError};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub async fn handle(state: &Arc<AppState>, parts: &Parts, body: &[u8]) -> Response<Body> {
    let path = parts.uri.path().trim_end_matches('/');
    let entry_id = path.strip_prefix("/admin/cache/");
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let result = match (&parts.method, path, entry_id) {
        (&Method::GET, "/admin/stats", _) => stats(state),
        (&Method::GET, "/admin/slo", _) => Ok(slo(state, true)),
        (&Method::GET, "/admin/cache", _) => list(state, &query),
        (&Method::POST, "/admin/cache/purge", _) => {
            // A purge scans every entry: keep it off the async workers.
            let (s, body) = (state.clone(), body.to_vec());
            let purged = tokio::task::spawn_blocking(move || purge(&s, &body)).await;
            match purged.unwrap_or_else(|e| Err(internal(e))) {
                Ok((v, filters)) => purge_fleet(state, v, &filters).await,
                Err(e) => Err(e),
            }
        }
        (&Method::POST, "/admin/cache/search", _) => search(state, body).await,
        (&Method::POST, "/admin/reload", _) => {
            // Reading the file and embedding route examples: off the workers.
            let st = state.clone();
            match tokio::task::spawn_blocking(move || deja_gateway::reload(&st)).await {
                Ok(done) => done.map(|changed| json!({"reloaded": true, "needs_restart": changed})),
                Err(e) => Err(internal(e)),
            }
        }
        (&Method::GET, _, Some(id)) => show(state, id),
        (&Method::DELETE, _, Some(id)) => {
            return match delete(state, id).await {
                Ok(()) => {
                    let mut r = Response::new(reply::empty());
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    r
                }
                Err(e) => reply::error(&e),
            };
        }
        _ => Err(ApiError::new(ErrorKind::NotFound, format!("no admin route for {} {path}", parts.method))),
    };
    match result {
        Ok(v) => reply::json(StatusCode::OK, &v),
        Err(e) => reply::error(&e),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

/// `application/x-www-form-urlencoded` query pairs; invalid escapes and
/// invalid UTF-8 are kept (lossily), never refused or panicked on.
fn parse_query(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

pub fn stats(state: &AppState) -> Result<Value, ApiError> {
    let s = &state.store;
    let c = |k: Counter| s.counter(k).map_err(internal);
    let (exact, semantic, misses) = (c(Counter::ExactHits)?, c(Counter::SemanticHits)?, c(Counter::Misses)?);
    let lookups = exact + semantic + misses;
    let spent_by_model: serde_json::Map<String, Value> =
        s.spent_by_model().map_err(internal)?.into_iter().map(|(m, n)| (m, json!(nano_to_usd(n)))).collect();
    let mut verifier = (0u64, 0u64, serde_json::Map::new());
    for (namespace, v) in s.verifications_by_namespace().map_err(internal)? {
        verifier.0 += v.calls;
        verifier.1 += v.nano_usd;
        verifier.2.insert(namespace, json!({"verifications": v.calls, "verification_usd": nano_to_usd(v.nano_usd)}));
    }
    let now = std::time::Instant::now();
    let cooling: Vec<Value> = state
        .calls
        .health
        .cooling(now)
        .into_iter()
        .map(|(m, left)| json!({"model": m, "seconds_left": left.as_secs_f64()}))
        .collect();
    Ok(json!({
        "requests": c(Counter::Requests)?,
        "hits": {"exact": exact, "semantic": semantic, "total": exact + semantic},
        // Semantic lookups the embedding model could not read, by reason:
        // such questions are served by their exact key only.
        "semantic_unmatchable": {
            "too_long": c(Counter::UnmatchableTooLong)?,
            "unknown_tokens": c(Counter::UnmatchableUnknownTokens)?,
        },
        // The model that embeds questions (name, file digest, dimension); null with the semantic cache off.
        "embedding_model": state.embedder_identity().map(|(name, dim)| format!("{name}/{dim}")),
        "misses": misses,
        "refreshes": c(Counter::Refreshes)?,
        "bypasses": c(Counter::Bypasses)?,
        "hit_rate": if lookups == 0 { 0.0 } else { (exact + semantic) as f64 / lookups as f64 },
        "tokens_saved": c(Counter::TokensSaved)?,
        "usd_saved": nano_to_usd(c(Counter::NanoUsdSaved)?),
        "usd_spent": nano_to_usd(c(Counter::NanoUsdSpent)?),
        "usd_spent_by_model": spent_by_model,
        "verifier": {
            "verifications": verifier.0,
            "verification_usd": nano_to_usd(verifier.1),
            "by_namespace": verifier.2,
        },
        "entries": s.len(),
        "stored_bytes": s.bytes(),
        "max_entries": state.config().cache.max_entries,
        "max_bytes": state.config().cache.max_bytes,
        "index_size": state.index.len(),
        "index_tombstones": state.index.tombstones(),
        "index": state.index.stats(),
        "bytes_on_disk": s.size_on_disk(),
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "cooling_down": cooling,
        // Providers whose key variable is unset: clients are told only that
        // the provider is not configured; operators see which and why.
        "providers_without_keys": state.config().missing_keys().into_iter()
            .map(|m| json!({"provider": m.provider, "variable": m.variable, "models": m.models}))
            .collect::<Vec<_>>(),
        "models": crate::figures::models(state),
        "cluster": state.ports.admin.as_ref().map_or_else(|| json!({"enabled": false}), |f| f.stats()),
        "fleet": state.ports.admin.as_ref().map_or_else(|| json!({"enabled": false}), |f| f.figures()),
        "slo": slo(state, false),
        "clients": deja_gateway::budget::stats(&state.config(), &state.ledger),
    }))
}

/// The live quality SLO; `/admin/slo` adds the recorded disagreements.
fn slo(state: &AppState, with_disagreements: bool) -> Value {
    let config = state.config();
    state.slo.report(&config.cache.slo, config.cache.semantic.threshold, with_disagreements)
}

/// Characters of an entry's question a listing shows in `preview`.
const PREVIEW_CHARS: usize = 80;

fn list(state: &AppState, q: &HashMap<String, String>) -> Result<Value, ApiError> {
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 1000);
    let namespace = q.get("namespace").map(String::as_str);
    let client = namespace.and_then(client_name);
    let filter = ListFilter {
        namespace: namespace.filter(|_| client.is_none()).map(str::to_string),
        model: q.get("model").cloned(),
        created_before_ms: None,
    };
    let cursor = q.get("cursor").map(String::as_str);
    let page = match client {
        None => state.store.list(&filter, cursor, limit),
        Some(name) => list_by_client_name(state, &filter, name, cursor, limit),
    }
    .map_err(internal)?;
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|(e, stats)| {
            json!({
                "id": e.id.to_hex(),
                "kind": e.kind,
                "namespace": e.namespace,
                // What the client sent in `x-deja-namespace`, if anything.
                "client_namespace": name_of(&e.namespace),
                "requested_model": e.requested_model,
                "preview": preview(&e.preview(usize::MAX), PREVIEW_CHARS),
                "answered_by": e.answered_by,
                "created_ms": e.created_ms,
                "expires_ms": e.expires_ms,
                "hits": stats.hits,
                "usd_saved": e.cost_usd * stats.hits as f64,
            })
        })
        .collect();
    Ok(json!({"entries": entries, "next_cursor": page.next_cursor}))
}

/// A page of the entries stored under a client's namespace name, whatever
/// their root: the store filters on everything else, this on the name. Each
/// store page asks for no more entries than are still wanted, so when the
/// page is full its cursor is the last entry returned.
fn list_by_client_name(
    state: &AppState,
    filter: &ListFilter,
    name: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<ListPage, StoreError> {
    let mut out = ListPage { entries: Vec::new(), next_cursor: None };
    let mut cursor = cursor.map(str::to_string);
    loop {
        let page = state.store.list(filter, cursor.as_deref(), limit - out.entries.len())?;
        out.entries.extend(page.entries.into_iter().filter(|(e, _)| name_of(&e.namespace) == Some(name)));
        match page.next_cursor {
            Some(next) if out.entries.len() < limit => cursor = Some(next),
            next => {
                out.next_cursor = next.filter(|_| out.entries.len() == limit);
                return Ok(out);
            }
        }
    }
}

/// The stored namespaces are `<root>/<name>`, or the root alone: the root is
/// `default`, or `key-` and twelve hex digits when the client sent a key, and
/// the name is what the client sent in `x-deja-namespace`. A filter whose
/// first segment is a root is a stored namespace, matched exactly; any other
/// (`team`) is the name a client sends, matched under every root
/// (`default/team`, `key-…/team`). This returns that name, if the filter is one.
fn client_name(filter: &str) -> Option<&str> {
    let root = filter.split('/').next().unwrap_or(filter);
    let key_root = root.strip_prefix("key-").is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    (root != "default" && !key_root).then_some(filter)
}

/// The name a client sent in `x-deja-namespace` (`team` of `default/team`).
fn name_of(stored: &str) -> Option<&str> {
    stored.split_once('/').map(|(_, name)| name)
}

/// A question on one line for listings, whitespace runs as one space. A
/// question longer than `width` characters shows, when it has several lines,
/// as many of its last lines as fit after a leading `… ` (prompts built from
/// one template share their first lines: the end tells them apart); else its
/// start. A line cut short ends in `…`.
fn preview(text: &str, width: usize) -> String {
    fn flat(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    fn cut(s: &str, width: usize) -> String {
        let mut out: String = s.chars().take(width).collect();
        if s.chars().count() > width {
            out.push('…');
        }
        out
    }
    let whole = flat(text);
    if whole.chars().count() <= width {
        return whole;
    }
    let lines: Vec<String> = text.lines().map(flat).filter(|l| !l.is_empty()).collect();
    if lines.len() < 2 {
        return cut(&whole, width);
    }
    let room = width.saturating_sub(2);
    let mut tail: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let more = line.chars().count() + usize::from(!tail.is_empty());
        if !tail.is_empty() && used + more > room {
            break;
        }
        tail.push(line);
        used += more;
    }
    tail.reverse();
    format!("… {}", cut(&tail.join(" "), room))
}

/// The shortest id prefix an operator may type (`deja cache ls` shows 16).
const MIN_ID_PREFIX: usize = 8;

/// An entry id: 64 hex digits, or a prefix of at least [`MIN_ID_PREFIX`] that
/// only one stored entry's id starts with.
fn resolve_id(state: &AppState, id: &str) -> Result<CacheKey, ApiError> {
    if let Some(key) = CacheKey::from_hex(id) {
        return Ok(key);
    }
    if id.len() < MIN_ID_PREFIX || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid_request(
            format!("an entry id is 64 hex characters, or a unique prefix of at least {MIN_ID_PREFIX} of them"),
            Some("id"),
        ));
    }
    let found = state.store.ids_with_prefix(id, 3).map_err(internal)?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ApiError::new(ErrorKind::NotFound, format!("no entry id starts with {id}"))),
        several => {
            let ids: Vec<String> = several.iter().take(2).map(CacheKey::to_hex).collect();
            let count = if several.len() > 2 { "3 or more" } else { "2" };
            Err(ApiError::invalid_request(
                format!(
                    "the id prefix {id} is ambiguous: {count} entries start with it ({}{}): type more of the id",
                    ids.join(", "),
                    if several.len() > 2 { ", …" } else { "" }
                ),
                Some("id"),
            )
            .with_code("ambiguous_id"))
        }
    }
}

fn show(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let key = resolve_id(state, id)?;
    let entry = state.store.get(&key).map_err(internal)?;
    let entry = entry.ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no entry {id}")))?;
    let stats = state.store.hit_stats(&key).map_err(internal)?;
    let mut v = serde_json::to_value(&entry).map_err(internal)?;
    if let Some(fields) = v.as_object_mut() {
        fields.insert("hits".into(), json!(stats.hits));
        fields.insert("last_access_ms".into(), json!(stats.last_access_ms));
        fields.insert("usd_saved".into(), json!(entry.cost_usd * stats.hits as f64));
    }
    Ok(v)
}

fn remove(state: &AppState, key: &CacheKey) -> Result<bool, ApiError> {
    // Index first: from here on the entry can no longer be found semantically.
    state.index.remove(key);
    let existed = state.store.remove(key).map_err(internal)?;
    Ok(existed)
}

async fn delete(state: &AppState, id: &str) -> Result<(), ApiError> {
    let key = resolve_id(state, id)?;
    let namespace = state.store.get(&key).ok().flatten().map(|e| e.namespace);
    let here = remove(state, &key)?;
    // The flush is an fsync: on a blocking thread, not a worker.
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.flush()).await.map_err(internal)?.map_err(internal)?;
    // With [cluster]: the shared copy and every other replica's.
    let elsewhere = match &state.ports.admin {
        Some(fleet) => fleet.delete(&key, namespace.as_deref()).await.map_err(fleet_error)? > 0,
        None => false,
    };
    if !here && !elsewhere {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no entry {id}")));
    }
    Ok(())
}

/// A delete or purge that reached this replica but not the fleet: the
/// operator must retry once Redis answers.
fn fleet_error(e: deja_gateway::ports::FleetAdminError) -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        format!("removed on this replica only; the other replicas were not told ({e}): retry when Redis is back"),
    )
}

async fn purge_fleet(state: &AppState, mut local: Value, filters: &[ListFilter]) -> Result<Value, ApiError> {
    let Some(fleet) = state.ports.admin.as_ref().filter(|_| !filters.is_empty()) else {
        return Ok(local);
    };
    let mut shared = 0;
    for filter in filters {
        shared += fleet.purge(filter.clone()).await.map_err(fleet_error)?;
    }
    if let Some(fields) = local.as_object_mut() {
        fields.insert("removed_shared".into(), json!(shared));
    }
    Ok(local)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    namespace: Option<String>,
    model: Option<String>,
    older_than_s: Option<u64>,
    #[serde(default)]
    all: bool,
    /// Count what would go, remove nothing.
    #[serde(default)]
    dry_run: bool,
    /// With `dry_run`: also list up to this many of the entries that would go.
    #[serde(default)]
    list: usize,
}

/// Most entries a dry run lists.
const MAX_LISTED: usize = 1000;

/// The answer, and the filters the rest of the fleet must apply (none for a
/// dry run). A client's namespace name (see [`client_name`]) stands for the
/// stored namespaces found here under it: the fleet is told each of them (a
/// client key whose entries this replica has never stored is not among them:
/// purge its stored form, `key-<hash>/name`, to reach it).
fn purge(state: &AppState, body: &[u8]) -> Result<(Value, Vec<ListFilter>), ApiError> {
    let req: PurgeRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid purge filter: {e}"), None))?;
    let empty = req.namespace.is_none() && req.model.is_none() && req.older_than_s.is_none();
    if empty && !req.all {
        return Err(ApiError::invalid_request(
            "an empty filter would purge everything: send {\"all\": true} to mean it",
            None,
        ));
    }
    let client = req.namespace.as_deref().and_then(client_name).map(str::to_string);
    let filter = ListFilter {
        namespace: req.namespace.filter(|_| client.is_none()),
        model: req.model,
        created_before_ms: req.older_than_s.map(|s| deja_cache::now_ms().saturating_sub(s * 1000)),
    };
    let mut ids = state.store.matching(&filter).map_err(internal)?;
    let mut namespaces = std::collections::BTreeSet::new();
    if let Some(name) = &client {
        ids.retain(|id| match state.store.get(id) {
            Ok(Some(e)) if name_of(&e.namespace) == Some(name) => {
                namespaces.insert(e.namespace);
                true
            }
            _ => false,
        });
    }
    let mut answer = if req.dry_run {
        let listed: Vec<Value> = ids
            .iter()
            .take(req.list.min(MAX_LISTED))
            .filter_map(|id| state.store.get(id).ok().flatten())
            .map(|e| {
                json!({
                    "id": e.id.to_hex(),
                    "namespace": e.namespace,
                    "requested_model": e.requested_model,
                    "preview": preview(&e.preview(usize::MAX), PREVIEW_CHARS),
                })
            })
            .collect();
        let mut answer = json!({"would_remove": ids.len()});
        if req.list > 0 {
            set(&mut answer, "entries", json!(listed));
        }
        answer
    } else {
        let mut removed = 0u64;
        for id in &ids {
            if remove(state, id)? {
                removed += 1;
            }
        }
        state.store.flush().map_err(internal)?;
        state.sweep_now.notify_one();
        json!({"removed": removed})
    };
    if client.is_some() {
        set(&mut answer, "namespaces", json!(namespaces));
    }
    let fleet = match (req.dry_run, client) {
        (true, _) => Vec::new(),
        (false, None) => vec![filter],
        (false, Some(_)) => {
            namespaces.into_iter().map(|ns| ListFilter { namespace: Some(ns), ..filter.clone() }).collect()
        }
    };
    Ok((answer, fleet))
}

fn set(object: &mut Value, field: &str, value: Value) {
    if let Some(fields) = object.as_object_mut() {
        fields.insert(field.into(), value);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    namespace: Option<String>,
    model: Option<String>,
    messages: Option<Vec<Value>>,
    prompt: Option<String>,
    k: Option<usize>,
}

async fn search(state: &Arc<AppState>, body: &[u8]) -> Result<Value, ApiError> {
    let req: SearchRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid_request(format!("invalid search: {e}"), None))?;
    let Some(embed) = &state.embed else {
        return Err(ApiError::new(ErrorKind::Unavailable, "the semantic cache is disabled"));
    };
    let config = state.config();
    let model = req.model.or_else(|| config.catalog.ladders.first().map(|l| l.name.clone())).unwrap_or_default();
    let messages = match (req.messages, req.prompt) {
        (Some(m), _) => m,
        (None, Some(p)) => vec![json!({"role": "user", "content": p})],
        (None, None) => return Err(ApiError::invalid_request("send `messages` or `prompt`", Some("prompt"))),
    };
    let chat =
        ChatRequest::parse(&serde_json::to_vec(&json!({"model": model, "messages": messages})).map_err(internal)?)?;
    let question = chat.last_user_text().ok_or_else(|| {
        ApiError::invalid_request("the last message must be a user message with text", Some("messages"))
    })?;
    let namespace = Namespace::from_stored(req.namespace.unwrap_or_else(|| "default".into()));
    let (_, fingerprint) = chat_keys(&namespace, &chat);
    let vector =
        embed.embed(question.clone()).await.map_err(|e| ApiError::new(ErrorKind::Unavailable, e.to_string()))?;
    let settings = &config.cache.semantic;
    let threshold = settings.threshold_for(&model, None);
    let k = req.k.unwrap_or(5).clamp(1, 100);
    // The graph search, the store reads and the embeddings of what differs
    // run on a blocking thread: a large search never holds up a worker.
    let (st, cfg, ns, text) = (state.clone(), config.clone(), namespace.clone(), question.clone());
    let judging = tokio::task::spawn_blocking(move || {
        let query = deja_cache::semantic::Query {
            namespace: ns.as_str(),
            fingerprint: &fingerprint,
            vector: &vector,
            text: &text,
            threshold,
            fresh: deja_cache::Freshness::default(),
        };
        let reader =
            st.reader().ok_or_else(|| ApiError::new(ErrorKind::Unavailable, "the semantic cache is disabled"))?;
        deja_cache::semantic::judge(&st.store, &st.index, &query, &cfg.cache.semantic, reader, k, deja_cache::now_ms())
            .map_err(internal)
    });
    let (judged, unreadable) = judging.await.map_err(internal)??;
    let grey = config.cache.verifier.is_some().then_some(settings.verify_from);
    let results: Vec<Value> = judged
        .into_iter()
        .map(|j| crate::lookups::grey_band(j, grey, &question, settings))
        .map(|j| {
            // Texts sharing a template are compared on what differs: that is shown.
            let compared = j.compared.map(|(query, entry)| json!({"query": query, "entry": entry}));
            json!({"id": j.id, "similarity": round6(j.similarity), "whole_similarity": round6(j.whole_similarity), "text": j.text, "compared": compared, "would_serve": j.refused_by.is_none(), "refused_by": j.refused_by})
        })
        .collect();
    let threshold = (f64::from(threshold) * 1e6).round() / 1e6;
    let verify_from = grey.map(|v| (f64::from(v) * 1e6).round() / 1e6);
    // Why this prompt can never be served semantically, when it cannot.
    let cannot_match = unreadable.map(|u| u.as_str());
    Ok(
        json!({"threshold": threshold, "verify_from": verify_from, "namespace": namespace.as_str(), "model": model, "cannot_match": cannot_match, "results": results}),
    )
}

fn round6(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}
