//! A simulated OpenAI-compatible provider.
//!
//! It answers chat completions (plain and streamed) and embeddings with
//! deterministic content, counts calls per model, records the credentials it
//! was sent, and injects faults on demand: status codes with `Retry-After`,
//! delays, malformed bodies, and streams that stall or are cut mid-way.
//! Tests drive it through [`MockControl`]; other processes through its
//! `/_mock/*` control routes.

mod answer;
mod control;
mod server;

pub use control::{Fault, MockControl};
pub use server::{serve, MockUpstream};
