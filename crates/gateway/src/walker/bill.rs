//! Billing: every call a walker makes is charged through the ledger, to
//! the namespace and purpose of its [`Bill`].

use super::Walker;
use crate::ledger::Spend;
use deja_router::{cost_usd, estimate_tokens, ModelSpec, Tokens};

/// Who an upstream call is billed to, and why: every call a walker makes
/// is charged through the ledger under this.
#[derive(Debug, Clone)]
pub struct Bill {
    pub namespace: String,
    pub why: Spend,
    /// The prompt's length, for estimating what a call without usage cost.
    pub prompt_chars: usize,
}

impl Walker {
    /// Charges an answer `model` gave, at its reported usage (nothing
    /// without usage), and returns its cost.
    pub fn charge(&self, model: &ModelSpec, usage: Option<&deja_api::Usage>) -> f64 {
        let cost = crate::ledger::answer_cost(model, usage);
        self.calls.ledger.charge(&self.bill.namespace, &model.name, cost, self.bill.why);
        cost
    }

    /// Charges an answer priced by `tokens` and returns its cost.
    pub fn charge_tokens(&self, model: &ModelSpec, tokens: Tokens) -> f64 {
        let cost = cost_usd(model, tokens);
        self.calls.ledger.charge(&self.bill.namespace, &model.name, cost, self.bill.why);
        cost
    }

    /// Charges a call the provider billed that gave no usable answer (a
    /// stream cut after its first event, a 2xx body that could not be
    /// read): the prompt estimated from its length, and `completion_chars`
    /// of output received, both at four characters a token.
    pub fn charge_unfinished(&self, model: &ModelSpec, completion_chars: usize) -> f64 {
        let tokens = Tokens::new(estimate_tokens(self.bill.prompt_chars), estimate_tokens(completion_chars));
        let cost = cost_usd(model, tokens);
        self.calls.ledger.charge(&self.bill.namespace, &model.name, cost, Spend::Unfinished);
        cost
    }

    /// Bills the hedge losers (see `hedge.rs`): each at its input price for
    /// the prompt, `prompt_tokens` as the winner reported them or estimated.
    /// Returns the total.
    pub fn bill_losers(&self, prompt_tokens: Option<u64>) -> f64 {
        if self.cancelled.is_empty() {
            return 0.0;
        }
        let tokens = prompt_tokens.filter(|t| *t > 0).unwrap_or_else(|| estimate_tokens(self.bill.prompt_chars));
        let mut total = 0.0;
        for spec in &self.cancelled {
            let usd = cost_usd(spec, Tokens::new(tokens, 0));
            self.calls.ledger.charge(&self.bill.namespace, &spec.name, usd, Spend::HedgeLoser);
            total += usd;
        }
        total
    }
}
