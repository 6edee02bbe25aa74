//! Client budgets as money: spend kept in store counters named by the
//! client's hashed id and the UTC day or month
//! (`spend:key-0123456789ab:d:2026-11-24`), so it survives restarts, and
//! reservations held by calls in flight, in memory.

use super::Ledger;
use deja_api::Namespace;
use deja_store::{nano_to_usd, usd_to_nano, Store};
use std::sync::Arc;
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

/// One client's limits, as the request path needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The client's hashed id.
    pub id: String,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// A budget the client has reached: `"daily"` or `"monthly"`, and its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reached {
    pub which: &'static str,
    pub limit_usd: f64,
}

/// Money set aside for a call in flight; let go when dropped.
#[must_use = "a reservation is let go as soon as it is dropped"]
pub struct Reservation {
    ledger: Option<Arc<Ledger>>,
    id: String,
    nano: u64,
}

impl Reservation {
    /// A reservation of nothing, for a request no budget applies to.
    pub fn none() -> Self {
        Self { ledger: None, id: String::new(), nano: 0 }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(ledger) = self.ledger.take() else { return };
        let mut reserved = ledger.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = reserved.get_mut(&self.id) {
            *n = n.saturating_sub(self.nano);
            if *n == 0 {
                reserved.remove(&self.id);
            }
        }
    }
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

/// Adds a call's cost to the spend of the client whose namespace it was
/// made for. The open gateway's namespace has no client.
pub(super) fn add_spend(store: &Store, namespace: &str, nano: u64) {
    let Some(id) = id_of_namespace(namespace) else { return };
    let (day, month) = counter_names(id, SystemTime::now());
    store.add_named(day, nano);
    store.add_named(month, nano);
}

/// USD spent by client `id` today and this month.
pub(super) fn spent(store: &Store, id: &str) -> (f64, f64) {
    let (day, month) = counter_names(id, SystemTime::now());
    let read = |k: &str| store.named(k).map(nano_to_usd).unwrap_or(0.0);
    (read(&day), read(&month))
}

/// Checks and reserves under one lock, so two calls cannot both take the
/// last of a budget.
pub(super) fn reserve(ledger: &Arc<Ledger>, budget: &Budget, worst_usd: f64) -> Result<Reservation, Reached> {
    if budget.daily_usd.is_none() && budget.monthly_usd.is_none() {
        return Ok(Reservation::none());
    }
    let mut reserved = ledger.reserved.lock().unwrap_or_else(|e| e.into_inner());
    let held = nano_to_usd(reserved.get(&budget.id).copied().unwrap_or(0));
    let (today, month) = spent(&ledger.store, &budget.id);
    match (budget.daily_usd, budget.monthly_usd) {
        (Some(d), _) if today + held >= d => return Err(Reached { which: "daily", limit_usd: d }),
        (_, Some(m)) if month + held >= m => return Err(Reached { which: "monthly", limit_usd: m }),
        _ => {}
    }
    let nano = usd_to_nano(worst_usd.max(0.0));
    *reserved.entry(budget.id.clone()).or_insert(0) += nano;
    Ok(Reservation { ledger: Some(ledger.clone()), id: budget.id.clone(), nano })
}
