//! Cost of an answer from its token usage and the model's prices.

use crate::catalog::ModelSpec;

/// USD for `prompt` input and `completion` output tokens.
pub fn cost_usd(model: &ModelSpec, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    (prompt_tokens as f64 * model.input_usd_per_mtok + completion_tokens as f64 * model.output_usd_per_mtok)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_per_million_tokens() {
        let m = ModelSpec {
            name: "gpt-4o".into(),
            provider: "openai".into(),
            upstream_name: "gpt-4o".into(),
            input_usd_per_mtok: 2.5,
            output_usd_per_mtok: 10.0,
            context_window: 128_000,
        };
        let c = cost_usd(&m, 1_000, 500);
        assert!((c - 0.0075).abs() < 1e-12, "{c}");
    }
}
