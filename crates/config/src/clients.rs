//! `[[clients]]`: per client key USD budgets and the models a key may use.

use super::{invalid, ConfigError};
use deja_router::Catalog;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub key_env: String,
    #[serde(default)]
    pub daily_usd: Option<f64>,
    #[serde(default)]
    pub monthly_usd: Option<f64>,
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_ladders: Option<Vec<String>>,
    #[serde(default)]
    pub on_budget: Option<String>,
}

/// What a request from a client past its budget gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBudget {
    /// A 429 `insufficient_quota`.
    #[default]
    Refuse,
    /// The cheapest rung of its ladder (or the model itself), on the price table.
    Cheapest,
}

/// One `[[clients]]` entry, validated. The key itself lives with the secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSettings {
    pub key_env: String,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    /// `None`: every model; `Some`: only these (the ladders are checked apart).
    pub allowed_models: Option<Vec<String>>,
    pub allowed_ladders: Option<Vec<String>>,
    pub on_budget: OnBudget,
}

impl ClientSettings {
    /// Whether this client may name `target` (a model or a ladder) in a request.
    pub fn allows(&self, catalog: &Catalog, target: &str) -> bool {
        let is_ladder = catalog.ladders.iter().any(|l| l.name == target);
        let list = if is_ladder { &self.allowed_ladders } else { &self.allowed_models };
        match (list, &self.allowed_models, &self.allowed_ladders) {
            (Some(list), _, _) => list.iter().any(|m| m == target),
            // Only the other kind is restricted: this kind is refused too,
            // so a list never leaves a way around it.
            (None, Some(_), _) | (None, _, Some(_)) => false,
            (None, None, None) => true,
        }
    }
}

pub fn validate(raw: Vec<RawClient>, catalog: &Catalog) -> Result<Vec<ClientSettings>, ConfigError> {
    let mut out: Vec<ClientSettings> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("clients[{i}].{field}");
        if c.key_env.trim().is_empty() {
            return Err(invalid(at("key_env"), "must name an environment variable"));
        }
        if out.iter().any(|o| o.key_env == c.key_env) {
            return Err(invalid(at("key_env"), format!("`{}` is listed twice", c.key_env)));
        }
        for (field, v) in [("daily_usd", c.daily_usd), ("monthly_usd", c.monthly_usd)] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(invalid(at(field), "must be a non-negative amount of USD"));
            }
        }
        for (j, m) in c.allowed_models.iter().flatten().enumerate() {
            if catalog.models.iter().all(|spec| &spec.name != m) {
                return Err(invalid(format!("clients[{i}].allowed_models[{j}]"), format!("no model `{m}`")));
            }
        }
        for (j, l) in c.allowed_ladders.iter().flatten().enumerate() {
            if catalog.ladders.iter().all(|spec| &spec.name != l) {
                return Err(invalid(format!("clients[{i}].allowed_ladders[{j}]"), format!("no ladder `{l}`")));
            }
        }
        let on_budget = match c.on_budget.as_deref() {
            None | Some("refuse") => OnBudget::Refuse,
            Some("cheapest") => OnBudget::Cheapest,
            Some(other) => {
                return Err(invalid(at("on_budget"), format!("`{other}` is not one of \"refuse\", \"cheapest\"")))
            }
        };
        out.push(ClientSettings {
            key_env: c.key_env,
            daily_usd: c.daily_usd,
            monthly_usd: c.monthly_usd,
            allowed_models: c.allowed_models,
            allowed_ladders: c.allowed_ladders,
            on_budget,
        });
    }
    Ok(out)
}
