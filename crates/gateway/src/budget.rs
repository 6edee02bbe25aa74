//! Per client key USD budgets (`[[clients]]`): what a key may call, what it
//! has spent today and this month (UTC), and what happens past its budget.
//!
//! Spend is kept in store counters named by the client's hashed id and the
//! UTC day or month (`spend:key-0123456789ab:d:2026-11-24`), so it survives
//! restarts. Only answers from upstream cost anything: cache hits are free
//! and are served to a client past its budget.

use crate::config::{ClientSettings, Config, OnBudget};
use crate::state::AppState;
use deja_api::{ApiError, ErrorKind, Namespace};
use deja_router::Plan;
use deja_store::{nano_to_usd, usd_to_nano};
use serde_json::{json, Value};
use std::time::SystemTime;

/// The hashed id of a client key, as its namespace begins (`key-…`).
pub fn client_id(client_key: &str) -> String {
    Namespace::new(Some(client_key), None).as_str().to_string()
}

/// The client id a namespace belongs to, when it belongs to a client key.
fn id_of_namespace(namespace: &str) -> Option<&str> {
    let id = namespace.split('/').next()?;
    id.starts_with("key-").then_some(id)
}

/// Today and this month in UTC: `("2026-11-24", "2026-11")`.
fn day_and_month(now: SystemTime) -> (String, String) {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let day = stamp.get(..10).unwrap_or_default().to_string();
    let month = stamp.get(..7).unwrap_or_default().to_string();
    (day, month)
}

fn counter_names(id: &str, now: SystemTime) -> (String, String) {
    let (day, month) = day_and_month(now);
    (format!("spend:{id}:d:{day}"), format!("spend:{id}:m:{month}"))
}

/// Adds an upstream answer's cost to the spend of the client whose
/// namespace it was asked in. The open gateway's namespace has no client.
pub fn record(state: &AppState, namespace: &str, cost_usd: f64) {
    let Some(id) = id_of_namespace(namespace) else { return };
    let nano = usd_to_nano(cost_usd);
    let (day, month) = counter_names(id, SystemTime::now());
    state.store.add_named(day, nano);
    state.store.add_named(month, nano);
}

/// USD spent by client `id` today and this month.
pub fn spent(state: &AppState, id: &str) -> (f64, f64) {
    let (day, month) = counter_names(id, SystemTime::now());
    let read = |k: &str| state.store.named(k).map(nano_to_usd).unwrap_or(0.0);
    (read(&day), read(&month))
}

/// Refuses a target the client may not use, as OpenAI does: 404 `model_not_found`.
pub fn check_allowed(config: &Config, client_key: Option<&str>, target: &str) -> Result<(), ApiError> {
    match config.client(client_key) {
        Some(c) if !c.allows(&config.catalog, target) => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("The model `{target}` does not exist or you do not have access to it."),
        )
        .with_code("model_not_found")),
        _ => Ok(()),
    }
}

/// The budget this client has reached, if any: `"daily"` or `"monthly"`.
fn reached(state: &AppState, client_key: &str, c: &ClientSettings) -> Option<(&'static str, f64)> {
    if c.daily_usd.is_none() && c.monthly_usd.is_none() {
        return None;
    }
    let (today, month) = spent(state, &client_id(client_key));
    match (c.daily_usd, c.monthly_usd) {
        (Some(d), _) if today >= d => Some(("daily", d)),
        (_, Some(m)) if month >= m => Some(("monthly", m)),
        _ => None,
    }
}

/// Applies the client's budget to a plan, before any upstream call: past
/// its budget a client is refused with 429 `insufficient_quota`, or (with
/// `on_budget = "cheapest"`) its plan is cut to the cheapest rung, and the
/// answer is `true`: the plan was downgraded.
pub fn enforce(state: &AppState, config: &Config, client_key: Option<&str>, plan: &mut Plan) -> Result<bool, ApiError> {
    let Some(key) = client_key else { return Ok(false) };
    let Some(client) = config.client(Some(key)) else { return Ok(false) };
    let Some((which, limit)) = reached(state, key, client) else { return Ok(false) };
    let cheapest = match client.on_budget {
        OnBudget::Refuse => None,
        OnBudget::Cheapest => cheapest(config, plan),
    };
    let Some(cheapest) = cheapest else {
        return Err(ApiError::new(
            ErrorKind::InsufficientQuota,
            format!(
                "You exceeded your {which} budget of ${limit} for this key; it resets at the start of the next UTC {}.",
                if which == "daily" { "day" } else { "month" }
            ),
        )
        .with_code("insufficient_quota"));
    };
    plan.attempts.retain(|&i| i == cheapest);
    if plan.attempts.is_empty() {
        plan.attempts.push(cheapest);
    }
    Ok(true)
}

/// The model of the plan's ladder (or its one model) with the lowest price
/// per token, input and output together.
fn cheapest(config: &Config, plan: &Plan) -> Option<usize> {
    let catalog = &config.catalog;
    let candidates: Vec<usize> = match plan.ladder.and_then(|l| catalog.ladder(l)) {
        Some(ladder) => ladder.rungs.iter().filter_map(|r| catalog.model_index(r)).collect(),
        None => plan.attempts.clone(),
    };
    let price = |i: &usize| catalog.model(*i).map_or(f64::MAX, |m| m.input_usd_per_mtok + m.output_usd_per_mtok);
    candidates.into_iter().min_by(|a, b| price(a).total_cmp(&price(b)))
}

/// Spend and budgets of every `[[clients]]` key, by hashed id, for `/admin/stats`.
pub fn stats(state: &AppState) -> Vec<Value> {
    let config = state.config();
    config
        .clients
        .iter()
        .zip(config.client_budget_keys())
        .filter_map(|(c, key)| {
            let id = client_id(key.as_deref()?);
            let (today, month) = spent(state, &id);
            Some(json!({
                "id": id,
                "spent_today_usd": today,
                "spent_month_usd": month,
                "daily_usd": c.daily_usd,
                "monthly_usd": c.monthly_usd,
                "on_budget": match c.on_budget { OnBudget::Refuse => "refuse", OnBudget::Cheapest => "cheapest" },
            }))
        })
        .collect()
}
