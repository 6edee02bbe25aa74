//! Upstream: the plan walked, rung by rung (attempts, hedges, dialects:
//! `walker/`), for a whole answer or a stream; the answer priced, handed
//! to the store stage and shared with the identical requests that waited.
//!
//! The work runs in its own task, so an answer already paid for is stored
//! even if the client hangs up.

mod stream;
mod unary;

use super::{Accepted, AnswerSink, Leading, Looked, Planned};
use crate::metrics::Metrics;
use crate::reply::Outcome;
use crate::walker::{Bill, Calls};
use std::sync::Arc;

pub struct Upstream {
    pub calls: Arc<Calls>,
    /// Where whole answers go: the store stage.
    pub sink: Arc<dyn AnswerSink>,
    pub metrics: Arc<Metrics>,
}

/// Everything an upstream call carries, owned by the task that makes it.
pub struct Call {
    pub request: Arc<Accepted>,
    pub looked: Looked,
    pub planned: Planned,
    pub leading: Leading,
}

impl Call {
    /// The client's calls are billed to its namespace.
    fn bill(&self) -> Bill {
        Bill {
            namespace: self.request.namespace.as_str().to_string(),
            why: crate::ledger::Spend::Answer,
            prompt_chars: self.request.req.prompt_chars(),
        }
    }
}

impl Upstream {
    pub async fn run(self: &Arc<Self>, call: Call) -> Outcome {
        let cache = call.planned.policy.miss_label();
        let response = if call.request.req.is_stream() {
            stream::miss(self.clone(), call).await
        } else {
            unary::miss(self.clone(), call).await
        };
        Outcome { response, cache }
    }
}
