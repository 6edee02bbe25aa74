//! Cost of an answer from its token usage and the model's prices.

use crate::catalog::ModelSpec;

/// One answer's token counts, as its provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every prompt token, those read from and written to the provider's
    /// prompt cache included (OpenAI's `prompt_tokens`).
    pub prompt: u64,
    /// Of `prompt`, those read from the prompt cache (OpenAI's
    /// `prompt_tokens_details.cached_tokens`).
    pub cached: u64,
    /// Of `prompt`, those written to the prompt cache (Anthropic's
    /// `cache_creation_input_tokens`).
    pub cache_write: u64,
    pub completion: u64,
}

impl Tokens {
    /// `prompt` tokens, none of them touching a prompt cache, and `completion` tokens.
    pub fn new(prompt: u64, completion: u64) -> Self {
        Self { prompt, completion, ..Self::default() }
    }
}

/// USD for `tokens` at `model`'s prices: prompt tokens read from the
/// provider's prompt cache at `cached_input_usd_per_mtok`, those written to
/// it at `cache_write_usd_per_mtok`, the rest at `input_usd_per_mtok`, and
/// completion tokens at `output_usd_per_mtok`.
///
/// The counts come from the provider and are not trusted: cached tokens
/// beyond the prompt are clamped to it, and cache writes to what the cached
/// ones leave, so no token is priced twice and nothing underflows.
pub fn cost_usd(model: &ModelSpec, tokens: Tokens) -> f64 {
    let cached = tokens.cached.min(tokens.prompt);
    let written = tokens.cache_write.min(tokens.prompt.saturating_sub(cached));
    let plain = tokens.prompt.saturating_sub(cached).saturating_sub(written);
    (plain as f64 * model.input_usd_per_mtok
        + cached as f64 * model.cached_input_usd_per_mtok
        + written as f64 * model.cache_write_usd_per_mtok
        + tokens.completion as f64 * model.output_usd_per_mtok)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with `input` and `output` prices, and the given cache prices.
    fn model(input: f64, cached: f64, cache_write: f64, output: f64) -> ModelSpec {
        ModelSpec {
            name: "m".into(),
            provider: "p".into(),
            upstream_name: "m".into(),
            input_usd_per_mtok: input,
            cached_input_usd_per_mtok: cached,
            cache_write_usd_per_mtok: cache_write,
            output_usd_per_mtok: output,
            context_window: 128_000,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn prices_per_million_tokens() {
        let c = cost_usd(&model(2.5, 2.5, 2.5, 10.0), Tokens::new(1_000, 500));
        assert!(close(c, 0.0075), "{c}");
    }

    #[test]
    fn cache_prices_equal_to_the_input_price_change_nothing() {
        // What a model that sets no cache price gets: its input price.
        let tokens = Tokens { prompt: 1_000, cached: 400, cache_write: 100, completion: 500 };
        let c = cost_usd(&model(2.5, 2.5, 2.5, 10.0), tokens);
        assert!(close(c, 0.0075), "{c}");
    }

    #[test]
    fn openai_cached_tokens_are_a_discounted_part_of_the_prompt() {
        // gpt-4o: 2,000 prompt tokens of which 1,024 came from the cache, at half price.
        let tokens = Tokens { prompt: 2_000, cached: 1_024, cache_write: 0, completion: 100 };
        let c = cost_usd(&model(2.5, 1.25, 2.5, 10.0), tokens);
        let expected = (976.0 * 2.5 + 1_024.0 * 1.25 + 100.0 * 10.0) / 1e6;
        assert!(close(c, expected), "{c} != {expected}");
        assert!(c < cost_usd(&model(2.5, 1.25, 2.5, 10.0), Tokens::new(2_000, 100)));
    }

    #[test]
    fn anthropic_cache_reads_and_writes_have_their_own_prices() {
        // Claude Sonnet: $3 input, $0.30 cache read, $3.75 cache write, $15 output.
        // input_tokens 2,000 + cache_read 7,000 + cache_creation 1,000.
        let tokens = Tokens { prompt: 10_000, cached: 7_000, cache_write: 1_000, completion: 100 };
        let c = cost_usd(&model(3.0, 0.3, 3.75, 15.0), tokens);
        let expected = (2_000.0 * 3.0 + 7_000.0 * 0.3 + 1_000.0 * 3.75 + 100.0 * 15.0) / 1e6;
        assert!(close(c, expected), "{c} != {expected}");
    }

    #[test]
    fn cached_counts_beyond_the_prompt_are_clamped() {
        let m = model(4.0, 1.0, 5.0, 0.0);
        // More cached tokens than prompt tokens: the whole prompt at the cached price.
        let c = cost_usd(&m, Tokens { prompt: 100, cached: 500, cache_write: 0, completion: 0 });
        assert!(close(c, 100.0 * 1.0 / 1e6), "{c}");
        // Cache writes beyond what the cached tokens leave: only the rest is written.
        let c = cost_usd(&m, Tokens { prompt: 100, cached: 60, cache_write: 100, completion: 0 });
        assert!(close(c, (60.0 * 1.0 + 40.0 * 5.0) / 1e6), "{c}");
        // Writes alone beyond the prompt.
        let c = cost_usd(&m, Tokens { prompt: 10, cached: 0, cache_write: u64::MAX, completion: 0 });
        assert!(close(c, 10.0 * 5.0 / 1e6), "{c}");
        // No prompt at all: nothing is priced as input, whatever the cache counts say.
        let c = cost_usd(&m, Tokens { prompt: 0, cached: 7, cache_write: 9, completion: 0 });
        assert_eq!(c, 0.0);
    }

    #[test]
    fn the_largest_counts_neither_panic_nor_go_negative() {
        let m = model(3.0, 0.3, 3.75, 15.0);
        let max = Tokens { prompt: u64::MAX, cached: u64::MAX, cache_write: u64::MAX, completion: u64::MAX };
        let c = cost_usd(&m, max);
        let expected = (u64::MAX as f64 * 0.3 + u64::MAX as f64 * 15.0) / 1e6;
        assert!(c.is_finite() && close(c, expected), "{c} != {expected}");
        let c = cost_usd(&m, Tokens { prompt: u64::MAX, cached: 1, cache_write: u64::MAX, completion: 0 });
        let expected = (0.3 + (u64::MAX - 1) as f64 * 3.75) / 1e6;
        assert!(c.is_finite() && c > 0.0 && close(c, expected), "{c} != {expected}");
        let c = cost_usd(&m, Tokens { prompt: u64::MAX, cached: 0, cache_write: 0, completion: 0 });
        assert!(c.is_finite() && close(c, u64::MAX as f64 * 3.0 / 1e6), "{c}");
    }
}
