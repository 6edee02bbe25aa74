//! Per client key USD budgets (`[[clients]]`): refusal past a budget, the
//! cheapest rung instead, spend kept across restarts, allowed models, and
//! config validation.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::json;

/// A unique environment variable holding `key`.
fn key_var(name: &str, key: &str) -> String {
    let var = format!("DEJA_TEST_BUDGET_{name}_{}", std::process::id());
    std::env::set_var(&var, key);
    var
}

/// Client `key-a` open to all, plus one `[[clients]]` entry for `key` written as `client`.
fn with_client(key: &str, client: &str) -> TestConfig {
    let var = key_var(key, key);
    TestConfig {
        client_keys: vec!["key-a".into()],
        extra_toml: format!("[[clients]]\nkey_env = \"{var}\"\n{client}\n"),
        ..exact_only()
    }
}

fn bearer(key: &str) -> [(&'static str, String); 1] {
    [("authorization", format!("Bearer {key}"))]
}

async fn ask_as(h: &deja_testkit::Harness, key: &str, body: &serde_json::Value) -> Reply {
    let [(name, value)] = bearer(key);
    chat_with(h, body, &[(name, value.as_str())]).await
}

#[tokio::test]
async fn a_key_past_its_daily_budget_gets_insufficient_quota() {
    let h = spawn_proxy(with_client("key-tiny", "daily_usd = 0.0000001")).await;
    let first = ask_as(&h, "key-tiny", &ask("what is a budget?")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let refused = ask_as(&h, "key-tiny", &ask("and another question?")).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["type"], "insufficient_quota");
    assert_eq!(refused.body["error"]["code"], "insufficient_quota");
    assert!(refused.body["error"]["message"].as_str().unwrap_or("").contains("daily"), "{}", refused.text);
    assert_eq!(h.mock.control.total_calls(), 1, "the refusal never reached upstream");

    // A cache hit is free: still served.
    let hit = ask_as(&h, "key-tiny", &ask("what is a budget?")).await;
    assert_eq!(hit.status, 200, "{}", hit.text);
    assert_eq!(hit.cache(), "exact");

    // Another key has no budget.
    let other = ask_as(&h, "key-a", &ask("and another question?")).await;
    assert_eq!(other.status, 200, "{}", other.text);

    // The admin API shows the spend by hashed id, never the key.
    let stats = admin_get(&h, "/admin/stats").await;
    let clients = stats.body["clients"].as_array().cloned().unwrap_or_default();
    assert_eq!(clients.len(), 1, "{}", stats.text);
    let c = &clients[0];
    assert!(c["id"].as_str().unwrap_or("").starts_with("key-"), "{c}");
    assert!(!stats.text.contains("key-tiny"), "{}", stats.text);
    assert!(c["spent_today_usd"].as_f64().unwrap_or(0.0) > 0.0, "{c}");
    assert!(c["spent_month_usd"].as_f64().unwrap_or(0.0) > 0.0, "{c}");
    assert_eq!(c["daily_usd"].as_f64(), Some(0.0000001));
    assert!(c["monthly_usd"].is_null());
}

#[tokio::test]
async fn embeddings_count_against_the_budget_and_are_refused_past_it() {
    let h = spawn_proxy(with_client("key-embed", "daily_usd = 0.0000001")).await;
    let [(name, value)] = bearer("key-embed");
    let headers = [(name, value.as_str())];
    let first =
        post(&h, "/v1/embeddings", &json!({"model": "embedder", "input": "a long enough input"}), &headers).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let refused = post(&h, "/v1/embeddings", &json!({"model": "embedder", "input": "another input"}), &headers).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.body["error"]["code"], "insufficient_quota");
    assert_eq!(h.mock.control.calls("embedder"), 1, "the refusal never reached upstream");
    // Past its budget a chat request is refused too: the spend is one.
    let chat = ask_as(&h, "key-embed", &ask("a question")).await;
    assert_eq!(chat.status, 429, "{}", chat.text);
}

#[tokio::test]
async fn on_budget_cheapest_routes_to_the_cheapest_rung() {
    let h = spawn_proxy(with_client("key-cheapest", "daily_usd = 0.0000001\non_budget = \"cheapest\"")).await;
    let [(name, value)] = bearer("key-cheapest");
    let headers = [(name, value.as_str()), ("x-deja-task", "reasoning")];
    let first = chat_with(&h, &ask("think hard"), &headers).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-deja-model"), Some("top"));
    let second = chat_with(&h, &ask("think hard again"), &headers).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(second.header("x-deja-model"), Some("cheap"), "past its budget the plan is the cheapest rung");
    assert_eq!(second.cache(), "bypass", "a downgraded answer is never stored");
    assert_eq!(h.mock.control.calls("top"), 1);
}

#[tokio::test]
async fn spend_survives_a_restart() {
    let h = spawn_proxy(with_client("key-restart", "monthly_usd = 0.0000001")).await;
    let first = ask_as(&h, "key-restart", &ask("remember me")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let h = h.restart().await;
    let refused = ask_as(&h, "key-restart", &ask("still over?")).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert!(refused.body["error"]["message"].as_str().unwrap_or("").contains("monthly"), "{}", refused.text);
}

#[tokio::test]
async fn allowed_models_refuses_anything_else() {
    let h = spawn_proxy(with_client("key-limited", "allowed_models = [\"cheap\"]")).await;
    let ok = ask_as(
        &h,
        "key-limited",
        &serde_json::json!({"model": "cheap", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let refused = ask_as(&h, "key-limited", &ask("hi")).await;
    assert_eq!(refused.status, 404, "a ladder not listed: {}", refused.text);
    assert_eq!(refused.body["error"]["code"], "model_not_found");
    let refused = ask_as(
        &h,
        "key-limited",
        &serde_json::json!({"model": "top", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(refused.status, 404, "{}", refused.text);
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn clients_are_validated_with_the_field_named() {
    let var = key_var("valid", "key-valid");
    for (client, field) in [
        (format!("key_env = \"{var}\"\ndaily_usd = -1.0"), "clients[0].daily_usd"),
        (format!("key_env = \"{var}\"\nmonthly_usd = nan"), "clients[0].monthly_usd"),
        (format!("key_env = \"{var}\"\non_budget = \"beg\""), "clients[0].on_budget"),
        (format!("key_env = \"{var}\"\nallowed_models = [\"nope\"]"), "clients[0].allowed_models[0]"),
        (format!("key_env = \"{var}\"\nallowed_ladders = [\"cheap\"]"), "clients[0].allowed_ladders[0]"),
        ("key_env = \"DEJA_TEST_BUDGET_UNSET_VARIABLE\"".to_string(), "clients[0].key_env"),
        (format!("key_env = \"{var}\"\ndaily_usdd = 1.0"), "clients[0]"),
    ] {
        let cfg = TestConfig { extra_toml: format!("[[clients]]\n{client}\n"), ..exact_only() };
        let text = cfg.to_toml("http://127.0.0.1:1/v1", std::path::Path::new("/tmp/unused"));
        let err = deja::config::Config::parse(&text).expect_err(&client).to_string();
        assert!(err.starts_with(field), "{client}: {err}");
    }
}
