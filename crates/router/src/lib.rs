//! The ladder policy: which model answers, in which order, and when to give up.
//!
//! Pure code: no IO, no clock. Callers pass `now` in, so every decision is
//! reproducible in unit tests.

pub mod catalog;
pub mod health;
pub mod plan;
pub mod price;

pub use catalog::Target;
pub use catalog::{Catalog, CatalogError, LadderSpec, ModelSpec, StartRule};
pub use health::{Health, HealthSettings};
pub use plan::{
    estimate_tokens, failure_decision, plan, Decision, FailureKind, Plan, PlanError, RouteInput, SkipReason,
};
pub use price::cost_usd;
