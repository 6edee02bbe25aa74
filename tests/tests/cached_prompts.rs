//! Prompt tokens a provider read from (or wrote to) its prompt cache are
//! priced at the model's cache prices, while the client keeps seeing
//! OpenAI's usage: `prompt_tokens` counts every prompt token, and the cached
//! ones are `prompt_tokens_details.cached_tokens`.

mod common;

use common::*;
use deja_mock_upstream::PromptCache;
use deja_testkit::{eventually, spawn_proxy, Harness, TestConfig};
use serde_json::{json, Value};
use std::time::Duration;

/// `gpt-cached` (OpenAI kind: $2.50 input, $1.25 cached input, $10 output)
/// and `sonnet` (Anthropic kind: $3 input, $0.30 cache read, $3.75 cache
/// write, $15 output) beside the testkit's models, which set no cache price.
async fn proxy() -> Harness {
    let var = deja_testkit::env_var("CACHED_PROMPTS", "sk-ant-secret");
    let extra = format!(
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{{upstream}}"
api_key_env = "{var}"

[[models]]
name = "gpt-cached"
provider = "mock"
input_usd_per_mtok = 2.5
cached_input_usd_per_mtok = 1.25
output_usd_per_mtok = 10.0
context_window = 128000

[[models]]
name = "sonnet"
provider = "claude"
input_usd_per_mtok = 3.0
cached_input_usd_per_mtok = 0.3
cache_write_usd_per_mtok = 3.75
output_usd_per_mtok = 15.0
context_window = 200000
"#
    );
    spawn_proxy(TestConfig { extra_toml: extra, model_retries: 0, ..exact_only() }).await
}

fn to(model: &str, content: &str) -> Value {
    // Long enough for the mock to count well over 64 prompt tokens.
    let content = format!("{content} {}", "Please keep the long shared preamble in mind. ".repeat(12));
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

fn usd(r: &Reply, header: &str) -> f64 {
    r.header(header).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{header}: {:?}", r.header(header)))
}

fn count(usage: &Value, field: &str) -> u64 {
    usage[field].as_u64().unwrap_or_else(|| panic!("usage.{field}: {usage}"))
}

/// The cost header has nine decimals.
fn assert_usd(got: f64, expected: f64) {
    assert!((got - expected).abs() < 2e-9, "cost {got} != {expected}");
}

#[tokio::test]
async fn an_openai_miss_with_cached_tokens_costs_the_discounted_price() {
    let h = proxy().await;
    h.mock.control.set_prompt_cache(PromptCache { read: 64, write: 0 });
    let r = chat(&h, &to("gpt-cached", "What is a prompt cache?")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.cache(), "miss");
    let usage = &r.body["usage"];
    let (prompt, completion) = (count(usage, "prompt_tokens"), count(usage, "completion_tokens"));
    assert!(prompt > 64, "{usage}");
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 64, "{usage}");
    assert_eq!(count(usage, "total_tokens"), prompt + completion);
    let expected = ((prompt - 64) as f64 * 2.5 + 64.0 * 1.25 + completion as f64 * 10.0) / 1e6;
    assert_usd(usd(&r, "x-deja-cost-usd"), expected);
    assert!(expected < (prompt as f64 * 2.5 + completion as f64 * 10.0) / 1e6);
    // The hit that replays it saves what the miss cost, and shows the same usage.
    let hit = chat(&h, &to("gpt-cached", "What is a prompt cache?")).await;
    assert_eq!(hit.cache(), "exact");
    assert_usd(usd(&hit, "x-deja-saved-usd"), expected);
    assert_eq!(hit.body["usage"], *usage);
}

#[tokio::test]
async fn a_model_without_cache_prices_charges_cached_tokens_as_input() {
    let h = proxy().await;
    h.mock.control.set_prompt_cache(PromptCache { read: 64, write: 0 });
    let r = chat(&h, &to("cheap", "No cache price here")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = &r.body["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 64, "{usage}");
    let (prompt, completion) = (count(usage, "prompt_tokens"), count(usage, "completion_tokens"));
    assert_usd(usd(&r, "x-deja-cost-usd"), (prompt as f64 * 0.20 + completion as f64 * 0.80) / 1e6);
}

#[tokio::test]
async fn hostile_cached_counts_are_clamped_to_the_prompt() {
    let h = proxy().await;
    // More cached tokens than the whole prompt: every prompt token at the cached price.
    h.mock.control.set_prompt_cache(PromptCache { read: u64::MAX, write: 0 });
    let r = chat(&h, &to("gpt-cached", "More cached than sent")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = &r.body["usage"];
    let (prompt, completion) = (count(usage, "prompt_tokens"), count(usage, "completion_tokens"));
    assert_usd(usd(&r, "x-deja-cost-usd"), (prompt as f64 * 1.25 + completion as f64 * 10.0) / 1e6);
    // Anthropic counts that overflow their sum: saturated, not wrapped, and the gateway stays up.
    h.mock.control.set_prompt_cache(PromptCache { read: 0, write: u64::MAX });
    let r = chat(&h, &to("sonnet", "Overflowing cache writes")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["usage"]["prompt_tokens"], u64::MAX);
    let cost = usd(&r, "x-deja-cost-usd");
    assert!(cost.is_finite() && cost > 0.0, "{cost}");
    h.mock.control.set_prompt_cache(PromptCache::default());
    assert_eq!(chat(&h, &to("gpt-cached", "Still serving")).await.status, 200);
}

#[tokio::test]
async fn an_anthropic_miss_prices_cache_reads_and_writes_apart_and_answers_in_openai_usage() {
    let h = proxy().await;
    h.mock.control.set_prompt_cache(PromptCache { read: 3000, write: 1000 });
    let r = chat(&h, &to("sonnet", "Summarize the shared preamble")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let usage = &r.body["usage"];
    let (prompt, completion) = (count(usage, "prompt_tokens"), count(usage, "completion_tokens"));
    // input_tokens + cache_read_input_tokens + cache_creation_input_tokens, and nothing but OpenAI's fields.
    assert!(prompt > 4000, "{usage}");
    assert_eq!(
        *usage,
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 3000}})
    );
    let input = prompt - 4000;
    let expected = (input as f64 * 3.0 + 3000.0 * 0.3 + 1000.0 * 3.75 + completion as f64 * 15.0) / 1e6;
    assert_usd(usd(&r, "x-deja-cost-usd"), expected);
}

#[tokio::test]
async fn a_streamed_anthropic_miss_is_priced_the_same_way() {
    let h = proxy().await;
    h.mock.control.set_prompt_cache(PromptCache { read: 3000, write: 1000 });
    let mut body = to("sonnet", "Stream the summary");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let live = chat(&h, &body).await;
    assert_eq!(live.status, 200, "{}", live.text);
    let chunks: Vec<Value> = events(&live.text).iter().filter_map(|e| serde_json::from_str(e).ok()).collect();
    let usage = chunks.iter().find_map(|c| c.get("usage").filter(|u| !u.is_null())).expect("a usage chunk").clone();
    let (prompt, completion) = (count(&usage, "prompt_tokens"), count(&usage, "completion_tokens"));
    assert_eq!(
        usage,
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 3000}})
    );
    // The stream's cost is known only after its head: read it back as what a hit saves.
    let stored = eventually(Duration::from_secs(5), || async {
        admin_get(&h, "/admin/stats").await.body["entries"].as_u64() == Some(1)
    })
    .await;
    assert!(stored, "the streamed answer is stored");
    body["stream"] = json!(false);
    let hit = chat(&h, &body).await;
    assert_eq!(hit.cache(), "exact");
    let input = prompt - 4000;
    let expected = (input as f64 * 3.0 + 3000.0 * 0.3 + 1000.0 * 3.75 + completion as f64 * 15.0) / 1e6;
    assert_usd(usd(&hit, "x-deja-saved-usd"), expected);
    assert_eq!(hit.body["usage"], usage);
}

#[tokio::test]
async fn the_model_list_shows_the_cache_prices_and_their_defaults() {
    let h = proxy().await;
    let models: Value = client().get(h.url("/v1/models")).send().await.expect("ok").json().await.expect("json");
    let deja = |id: &str| {
        models["data"].as_array().and_then(|d| d.iter().find(|m| m["id"] == id)).expect("listed")["deja"].clone()
    };
    let sonnet = deja("sonnet");
    assert_eq!(
        (&sonnet["cached_input_usd_per_mtok"], &sonnet["cache_write_usd_per_mtok"]),
        (&json!(0.3), &json!(3.75))
    );
    let gpt = deja("gpt-cached");
    assert_eq!((&gpt["cached_input_usd_per_mtok"], &gpt["cache_write_usd_per_mtok"]), (&json!(1.25), &json!(2.5)));
    let cheap = deja("cheap");
    assert_eq!((&cheap["cached_input_usd_per_mtok"], &cheap["cache_write_usd_per_mtok"]), (&json!(0.2), &json!(0.2)));
}
