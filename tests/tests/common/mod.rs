#![allow(dead_code)]

use deja_testkit::{Embedding, Harness, TestConfig};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// The mock's judge model (`deja_mock_upstream::JUDGE_MODEL` answers as a
/// verifier), priced, for tests that configure a verifier.
pub const JUDGE: &str = r#"
[[models]]
name = "judge"
provider = "mock"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
context_window = 128000
"#;

/// [`JUDGE`] as the verifier.
pub fn judge_as_verifier() -> String {
    format!("{JUDGE}\n[cache.semantic.verifier]\nmodel = \"judge\"\ntimeout = \"2s\"\n")
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn cache(&self) -> &str {
        self.header("x-deja-cache").unwrap_or("")
    }
    pub fn content(&self) -> &str {
        self.body["choices"][0]["message"]["content"].as_str().unwrap_or("")
    }
}

/// A proxy with the exact cache only, for tests where embeddings are not the point.
pub fn exact_only() -> TestConfig {
    TestConfig { embedding: Embedding::Off, ..Default::default() }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub fn ask(content: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": content}]})
}

pub async fn post(h: &Harness, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().post(h.url(path)).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, body, text }
}

pub async fn chat(h: &Harness, body: &Value) -> Reply {
    post(h, "/v1/chat/completions", body, &[]).await
}

pub async fn chat_with(h: &Harness, body: &Value, headers: &[(&str, &str)]) -> Reply {
    post(h, "/v1/chat/completions", body, headers).await
}

/// The `data:` payloads of an SSE reply, in order.
pub fn events(text: &str) -> Vec<String> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_string).collect()
}

/// Concatenated `delta.content` of an SSE reply.
pub fn streamed_content(text: &str) -> String {
    events(text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

pub async fn admin_get(h: &Harness, path: &str) -> Reply {
    let resp = client().get(h.url(path)).bearer_auth("test-admin-token").send().await.expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

pub async fn admin_send(h: &Harness, method: reqwest::Method, path: &str, body: &Value) -> Reply {
    let resp = client()
        .request(method, h.url(path))
        .bearer_auth("test-admin-token")
        .json(body)
        .send()
        .await
        .expect("proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

/// What the mock is asked for by `every_kind_proxy`'s Anthropic-kind (`sonnet`)
/// and Gemini-kind (`flash`) models.
pub const CLAUDE_UPSTREAM: &str = "claude-sonnet-up";
pub const GEMINI_UPSTREAM: &str = "gemini-flash-up";

/// A proxy with a model of each provider kind on the mock: `cheap` (OpenAI),
/// `sonnet` (Anthropic) and `flash` (Gemini), each provider with its own key.
pub async fn every_kind_proxy(base: TestConfig) -> Harness {
    let (anthropic, gemini) =
        (deja_testkit::env_var("KINDS_ANTHROPIC", "sk-ant-door"), deja_testkit::env_var("KINDS_GEMINI", "AIza-door"));
    let extra = format!(
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{{upstream}}"
api_key_env = "{anthropic}"

[[providers]]
name = "google"
kind = "gemini"
base_url = "{{upstream}}beta"
api_key_env = "{gemini}"

[[models]]
name = "sonnet"
provider = "claude"
upstream_name = "{CLAUDE_UPSTREAM}"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
context_window = 200000

[[models]]
name = "flash"
provider = "google"
upstream_name = "{GEMINI_UPSTREAM}"
input_usd_per_mtok = 0.1
output_usd_per_mtok = 0.4
context_window = 1000000
{}"#,
        base.extra_toml
    );
    deja_testkit::spawn_proxy(TestConfig { extra_toml: extra, ..base }).await
}
