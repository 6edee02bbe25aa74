//! What a request is refused for before any upstream is called, and what a
//! refusal may say: message roles and the fields each role needs are checked
//! at the edge; a provider left without its key is "not configured" to the
//! client, never named by the variable that should hold the key.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn an_unknown_role_is_a_400_naming_the_field_and_nothing_is_forwarded() {
    let h = deja_testkit::spawn_proxy(exact_only()).await;
    let body = json!({"model": "auto", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "wizard", "content": "abracadabra"},
    ]});
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "invalid_request_error", "{}", r.text);
    assert_eq!(r.body["error"]["param"], "messages[3].role", "{}", r.text);
    let body =
        json!({"model": "auto", "messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "r"}]});
    let r = chat(&h, &body).await;
    assert_eq!((r.status, r.body["error"]["param"].as_str()), (400, Some("messages[1].tool_call_id")), "{}", r.text);
    assert_eq!(h.mock.control.total_calls(), 0, "a refused request never reaches an upstream");
}

#[tokio::test]
async fn a_tool_round_trip_as_the_sdks_send_it_is_forwarded() {
    let h = deja_testkit::spawn_proxy(exact_only()).await;
    let call = json!({"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}});
    let body = json!({"model": "auto", "messages": [
        {"role": "developer", "content": "Use the tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}], "name": "ann"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\": \"clear\"}"},
    ]});
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn a_provider_without_its_key_is_not_configured_to_the_client() {
    let var = format!("DEJA_TEST_UNSET_SECRET_NAME_{}", std::process::id());
    let mut cfg = exact_only();
    cfg.extra_toml = format!(
        r#"
[[providers]]
name = "keyless"
base_url = "{{upstream}}"
api_key_env = "{var}"

[[models]]
name = "needs-a-key"
provider = "keyless"
input_usd_per_mtok = 0.10
output_usd_per_mtok = 0.10
context_window = 128000

[[ladders]]
name = "keyless-only"
rungs = ["needs-a-key"]
"#
    );
    let h = deja_testkit::spawn_proxy(cfg).await;
    let mut body = ask("hi");
    body["model"] = json!("keyless-only");
    let r = chat(&h, &body).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "upstream_exhausted", "{}", r.text);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("needs-a-key") && message.contains("not configured"), "{message}");
    for secret in [var.as_str(), "is unset", "$", "api_key_env"] {
        assert!(!r.text.contains(secret), "`{secret}` leaked: {}", r.text);
    }
    assert_eq!(h.mock.control.total_calls(), 0);
    // The operator sees which provider and which variable, behind the admin token.
    let stats = admin_get(&h, "/admin/stats").await.body;
    let missing = &stats["providers_without_keys"][0];
    assert_eq!((&missing["provider"], &missing["variable"]), (&json!("keyless"), &json!(var)), "{stats}");
    assert_eq!(missing["models"], json!(["needs-a-key"]));
}
