//! The ladder policy: which model answers, in which order, and when to give up.
//!
//! Pure code: no IO, no clock. Callers pass `now` in, so every decision is
//! reproducible in unit tests.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

pub mod catalog;
pub mod health;
pub mod latency;
pub mod order;
pub mod plan;
mod policy;
pub mod price;
pub mod routes;

pub use catalog::Target;
pub use catalog::{Catalog, CatalogError, LadderSpec, ModelSpec, StartRule};
pub use health::{Health, HealthSettings};
pub use latency::{Latency, ModelFigures};
pub use order::{speed_class, LatencyPolicy, Strategy};
pub use plan::{
    estimate_tokens, failure_decision, plan, Decision, FailureKind, Live, Plan, PlanError, RouteInput, SkipReason,
};
pub use price::{cost_usd, Tokens};
pub use routes::{choose_route, EmbeddedRoute, RouteChoice, RouteSpec};
