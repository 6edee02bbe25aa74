//! The ledger: the one writer of what requests are counted and what they
//! cost. Hits, misses, per-model and per-namespace spend, client budgets
//! (with reservations), verification and shadow costs and their metrics
//! families are written here and nowhere else.
//!
//! Every upstream call is made by a [`crate::walker::Walker`], and a walker
//! bills every call it makes through [`Ledger::charge`], whoever asked for
//! it (a client's miss, a hedge loser, the verifier, an SLO shadow call):
//! no call goes unrecorded and none is recorded twice. Budgets are
//! reserved before a call ([`Ledger::reserve`]) and the reservation is let
//! go once the call's cost has been charged, so concurrent requests never
//! overshoot a budget by more than one reservation.

mod budgets;
#[cfg(test)]
mod tests;

pub use budgets::{client_id, Budget, Reached, Reservation};

use crate::cache_control::CacheMode;
use crate::lookups::Lookups;
use crate::metrics::{KindLabels, Metrics, ModelLabels, ReasonLabels};
use deja_store::{usd_to_nano, Counter, Entry, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The figures other replicas see ([cluster]): a port the fleet plugs into,
/// absent on a single node. Adds to an in-memory tally; never does IO on
/// the request path.
pub trait SharedTally: Send + Sync {
    fn hit(&self, namespace: &str, semantic: bool, nano_usd_saved: u64);
    fn miss(&self, namespace: &str);
    fn spend(&self, namespace: &str, nano_usd: u64);
}

/// Why an upstream call was made: every one costs, each is labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// The answer a client got (a miss, refresh or bypass).
    Answer,
    /// A hedge that lost the race, billed its prompt.
    HedgeLoser,
    /// A call that was billed but gave no usable answer: a stream cut off
    /// after its first event, a 2xx body that could not be read.
    Unfinished,
    /// The verifier, asked about a grey-band candidate.
    Verification,
    /// An SLO shadow call re-asking a sampled semantic hit.
    Shadow,
}

/// What an answer reporting `usage` cost at `spec`'s prices: prompt tokens
/// read from or written to the provider's prompt cache at their own prices
/// (see [`deja_router::cost_usd`]). Nothing without usage.
pub fn answer_cost(spec: &deja_router::ModelSpec, usage: Option<&deja_api::Usage>) -> f64 {
    let Some(u) = usage else { return 0.0 };
    let tokens = deja_router::Tokens {
        prompt: u.prompt_tokens,
        cached: u.cached_tokens(),
        cache_write: u.cache_write_tokens,
        completion: u.completion_tokens,
    };
    deja_router::cost_usd(spec, tokens)
}

pub struct Ledger {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    tallies: Arc<Lookups>,
    shared: Option<Arc<dyn SharedTally>>,
    /// Nano-USD reserved by calls in flight, by client id.
    reserved: Mutex<HashMap<String, u64>>,
}

impl Ledger {
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        tallies: Arc<Lookups>,
        shared: Option<Arc<dyn SharedTally>>,
    ) -> Arc<Self> {
        Arc::new(Self { store, metrics, tallies, shared, reserved: Mutex::default() })
    }

    /// A request (chat or embeddings) accepted for the cache to look at.
    pub fn request(&self) {
        let _ = self.store.add(Counter::Requests, 1);
    }

    /// A served hit: what the entry cost when first answered, less what
    /// verifying it cost (never below zero), is what it saved.
    pub fn hit(&self, semantic: bool, entry: &Entry, saved_usd: f64) {
        let counter = if semantic { Counter::SemanticHits } else { Counter::ExactHits };
        let tokens = entry.usage.prompt_tokens + entry.usage.completion_tokens;
        let saved = usd_to_nano(saved_usd.max(0.0));
        let results = [
            self.store.add(counter, 1),
            self.store.add(Counter::TokensSaved, tokens),
            self.store.add(Counter::NanoUsdSaved, saved),
        ];
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            tracing::warn!(error = %e, "could not count a hit");
        }
        self.count_hit(&entry.namespace, &entry.answered_by, semantic, saved);
    }

    /// An answer shared by an identical request in flight (on this replica
    /// or another): an exact hit that saved what the answer cost.
    pub fn coalesced(&self, namespace: &str, answered_by: &str, saved_usd: f64) {
        let saved = usd_to_nano(saved_usd.max(0.0));
        let _ = self.store.add(Counter::ExactHits, 1);
        let _ = self.store.add(Counter::NanoUsdSaved, saved);
        self.count_hit(namespace, answered_by, false, saved);
    }

    fn count_hit(&self, namespace: &str, answered_by: &str, semantic: bool, nano_saved: u64) {
        self.tallies.count_hit(namespace, answered_by, semantic, nano_saved);
        if let Some(shared) = &self.shared {
            shared.hit(namespace, semantic, nano_saved);
        }
        let kind = if semantic { "semantic" } else { "exact" };
        self.metrics.cache_hits.get_or_create(&KindLabels { kind: kind.into() }).inc();
        self.metrics.saved_usd.inc_by(deja_store::nano_to_usd(nano_saved));
    }

    /// An answer `model` gave from upstream for `namespace` in `mode`: a
    /// miss, a refresh or a bypass. Its cost is charged by the walker.
    pub fn upstream_answer(&self, namespace: &str, model: &str, mode: CacheMode) {
        let counter = match mode {
            CacheMode::Normal => Counter::Misses,
            CacheMode::Refresh => Counter::Refreshes,
            CacheMode::Bypass => Counter::Bypasses,
        };
        if let Err(e) = self.store.add(counter, 1) {
            tracing::warn!(error = %e, "could not count a miss");
        }
        let miss = mode == CacheMode::Normal;
        if miss {
            self.metrics.cache_misses.inc();
            if let Some(shared) = &self.shared {
                shared.miss(namespace);
            }
        }
        self.tallies.count_upstream(namespace, model, miss);
    }

    /// What one upstream call to `model`, made for `namespace`, cost:
    /// per model, per namespace, to the fleet, to the client's budget, and
    /// to the family of its purpose.
    pub fn charge(&self, namespace: &str, model: &str, cost_usd: f64, why: Spend) {
        let usd = cost_usd.max(0.0);
        let nano = usd_to_nano(usd);
        if let Err(e) = self.store.add_spent_by_model(model, nano) {
            tracing::warn!(error = %e, "could not count spend");
        }
        self.metrics.spent_usd.get_or_create(&ModelLabels { model: model.to_string() }).inc_by(usd);
        self.tallies.count_spend(namespace, model, nano);
        if let Some(shared) = &self.shared {
            shared.spend(namespace, nano);
        }
        budgets::add_spend(&self.store, namespace, nano);
        match why {
            Spend::Answer | Spend::Shadow => {}
            Spend::HedgeLoser => {
                self.metrics.rungs.hedge_loser_usd.get_or_create(&ModelLabels { model: model.to_string() }).inc_by(usd);
            }
            Spend::Unfinished => {
                self.metrics.unfinished_usd.get_or_create(&ModelLabels { model: model.to_string() }).inc_by(usd);
            }
            Spend::Verification => self.verification(namespace, usd),
        }
    }

    /// One verifier call made for `namespace` and what it cost; a call that
    /// failed before an answer is counted at zero (its cost, if any, is
    /// charged by the walker as [`Spend::Unfinished`]).
    pub fn verification(&self, namespace: &str, cost_usd: f64) {
        // Past the cap, namespaces are counted together, in the store as in /metrics.
        let labels = self.metrics.namespaces.label(namespace);
        self.store.add_verification(&labels.namespace, usd_to_nano(cost_usd));
        self.metrics.verifications.get_or_create(&labels).inc();
        self.metrics.verification_usd.get_or_create(&labels).inc_by(cost_usd.max(0.0));
    }

    /// A question the embedding model cannot read: served by its exact key only.
    pub fn unmatchable(&self, why: deja_cache::Unreadable) {
        let counter = match why {
            deja_cache::Unreadable::TooLong => Counter::UnmatchableTooLong,
            deja_cache::Unreadable::UnknownTokens => Counter::UnmatchableUnknownTokens,
        };
        let _ = self.store.add(counter, 1);
        self.metrics.unmatchable.get_or_create(&ReasonLabels { reason: why.as_str().into() }).inc();
    }

    /// A guard refused a semantic candidate.
    pub fn guard_refusal(&self, kind: &'static str) {
        self.metrics.guard_refusals.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// USD client `id` has spent today and this month (UTC).
    pub fn spent(&self, id: &str) -> (f64, f64) {
        budgets::spent(&self.store, id)
    }

    /// Whether `budget` is reached: spent plus what calls in flight hold.
    /// Past it Deja makes no call for the client of its own accord.
    pub fn reached(self: &Arc<Self>, budget: Option<&Budget>) -> bool {
        budget.is_some_and(|b| self.reserve(b, 0.0).is_err())
    }

    /// Reserves `worst_usd` of `budget` for a call about to be made, or
    /// says which budget is reached: spent plus what calls in flight have
    /// reserved. The reservation is let go when dropped, after the call's
    /// cost has been charged.
    pub fn reserve(self: &Arc<Self>, budget: &Budget, worst_usd: f64) -> Result<Reservation, Reached> {
        budgets::reserve(self, budget, worst_usd)
    }
}
