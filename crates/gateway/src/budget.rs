//! Per client key USD budgets (`[[clients]]`): what a key may call and
//! what happens past its budget. The money itself (spend, reservations) is
//! the ledger's.
//!
//! Only upstream calls cost anything: cache hits are free and are served to
//! a client past its budget. Calls Deja makes for a client (the verifier,
//! SLO shadow calls) are charged to it too, and are not made past its budget.

use crate::config::{Config, OnBudget};
use crate::ledger::{client_id, Budget, Ledger, Reached, Reservation};
use deja_api::{ApiError, ErrorKind};
use deja_router::{cost_usd, estimate_tokens, Plan, Tokens};
use serde_json::{json, Value};
use std::sync::Arc;

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

/// Completion tokens reserved for a request that sets no `max_tokens`.
pub const UNBOUNDED_COMPLETION_TOKENS: u64 = 1024;

/// The budget of the client whose key made the request, if it has one.
pub fn of(config: &Config, client_key: Option<&str>) -> Option<Budget> {
    let key = client_key?;
    let c = config.client(Some(key))?;
    if c.daily_usd.is_none() && c.monthly_usd.is_none() {
        return None;
    }
    Some(Budget { id: client_id(key), daily_usd: c.daily_usd, monthly_usd: c.monthly_usd })
}

/// The most a call can cost: `prompt_chars` of prompt (four characters a
/// token) and `max_tokens` of output (or [`UNBOUNDED_COMPLETION_TOKENS`])
/// at the costliest model `plan` may call.
pub fn worst_case_usd(config: &Config, plan: &Plan, prompt_chars: usize, max_tokens: Option<u64>) -> f64 {
    let tokens = Tokens::new(estimate_tokens(prompt_chars), max_tokens.unwrap_or(UNBOUNDED_COMPLETION_TOKENS));
    plan.attempts.iter().filter_map(|&i| config.catalog.model(i)).map(|m| cost_usd(m, tokens)).fold(0.0, f64::max)
}

/// The 429 `insufficient_quota` OpenAI gives a key past its quota.
pub fn refusal(reached: Reached) -> ApiError {
    let Reached { which, limit_usd } = reached;
    ApiError::new(
        ErrorKind::InsufficientQuota,
        format!(
            "You exceeded your {which} budget of ${limit_usd} for this key; it resets at the start of the next UTC {}.",
            if which == "daily" { "day" } else { "month" }
        ),
    )
    .with_code("insufficient_quota")
}

/// A plan admitted under its client's budget.
pub struct Admitted {
    /// Past its budget, the plan was cut to the cheapest rung
    /// (`on_budget = "cheapest"`).
    pub downgraded: bool,
    /// Held until the call's cost is charged.
    pub reservation: Reservation,
}

/// Applies the client's budget to a plan, before any upstream call: the
/// plan's worst case is reserved; past its budget (spent plus what calls
/// in flight reserved) a client is refused with 429 `insufficient_quota`,
/// or (with `on_budget = "cheapest"`) its plan is cut to the cheapest rung.
pub fn admit(
    ledger: &Arc<Ledger>,
    config: &Config,
    client_key: Option<&str>,
    plan: &mut Plan,
    worst_usd: f64,
) -> Result<Admitted, ApiError> {
    let Some(budget) = of(config, client_key) else {
        return Ok(Admitted { downgraded: false, reservation: Reservation::none() });
    };
    let reached = match ledger.reserve(&budget, worst_usd) {
        Ok(reservation) => return Ok(Admitted { downgraded: false, reservation }),
        Err(reached) => reached,
    };
    let on_budget = config.client(client_key).map_or(OnBudget::Refuse, |c| c.on_budget);
    let cheapest = match on_budget {
        OnBudget::Refuse => None,
        OnBudget::Cheapest => cheapest(config, plan),
    };
    let Some(cheapest) = cheapest else { return Err(refusal(reached)) };
    plan.attempts.retain(|&i| i == cheapest);
    if plan.attempts.is_empty() {
        plan.attempts.push(cheapest);
    }
    Ok(Admitted { downgraded: true, reservation: Reservation::none() })
}

/// A reservation for a call Deja makes on a client's behalf (the verifier,
/// an SLO shadow call); `None` when the client's budget is reached: the
/// call is not made.
pub fn for_side_call(ledger: &Arc<Ledger>, budget: Option<&Budget>, worst_usd: f64) -> Option<Reservation> {
    match budget {
        None => Some(Reservation::none()),
        Some(b) => ledger.reserve(b, worst_usd).ok(),
    }
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
pub fn stats(config: &Config, ledger: &Ledger) -> Vec<Value> {
    config
        .clients
        .iter()
        .zip(config.client_budget_keys())
        .filter_map(|(c, key)| {
            let id = client_id(key.as_deref()?);
            let (today, month) = ledger.spent(&id);
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
