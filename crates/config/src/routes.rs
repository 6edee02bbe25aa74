//! `[[ladders.routes]]`: semantic routes, checked against their ladder.

use super::{invalid, raw::RawLadder, ConfigError};
use deja_router::RouteSpec;
use std::collections::HashMap;

/// The similarity a route needs when it names no `threshold`.
pub const DEFAULT_ROUTE_THRESHOLD: f32 = 0.55;

/// What reports call a question no route takes; no route may be named so.
pub const NO_ROUTE: &str = "none";

/// Each ladder's routes by ladder name; ladders without routes are left out.
pub fn validate(ladders: &[RawLadder]) -> Result<HashMap<String, Vec<RouteSpec>>, ConfigError> {
    let mut out = HashMap::new();
    for (i, ladder) in ladders.iter().enumerate() {
        let mut routes = Vec::with_capacity(ladder.routes.len());
        for (j, r) in ladder.routes.iter().enumerate() {
            let path = |field: &str| format!("ladders[{i}].routes[{j}].{field}");
            if !ladder.rungs.contains(&r.start_at) {
                return Err(invalid(path("start_at"), format!("`{}` is not a rung of `{}`", r.start_at, ladder.name)));
            }
            if r.examples.is_empty() {
                return Err(invalid(path("examples"), "a route needs at least one example"));
            }
            if let Some(k) = r.examples.iter().position(|e| e.trim().is_empty()) {
                return Err(invalid(path(&format!("examples[{k}]")), "an example may not be empty"));
            }
            let threshold = r.threshold.unwrap_or(DEFAULT_ROUTE_THRESHOLD);
            if !(threshold > 0.0 && threshold <= 1.0) {
                return Err(invalid(path("threshold"), "must be in (0, 1]"));
            }
            let name = match &r.name {
                Some(n) if n.trim().is_empty() || n == NO_ROUTE => {
                    return Err(invalid(path("name"), format!("may not be empty or `{NO_ROUTE}`")))
                }
                Some(n) => n.clone(),
                None => r.start_at.clone(),
            };
            routes.push(RouteSpec { name, examples: r.examples.clone(), start_at: r.start_at.clone(), threshold });
        }
        if !routes.is_empty() {
            out.insert(ladder.name.clone(), routes);
        }
    }
    Ok(out)
}
