//! A `deja serve` process killed with SIGKILL under write load leaves a
//! store that opens again, with readable entries and counters.

use deja_mock_upstream::MockUpstream;
use deja_testkit::{Embedding, TestConfig};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn spawn_deja(config: &std::path::Path, admin_env: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["serve", "--config"])
        .arg(config)
        .env(admin_env, "kill-test-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("deja starts")
}

async fn admin_json(client: &reqwest::Client, url: String) -> Value {
    let resp = client.get(url).bearer_auth("kill-test-token").send().await.expect("admin answers");
    resp.json().await.expect("json")
}

async fn wait_ready(base: &str) {
    for _ in 0..200 {
        if reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deja did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_write_load_leaves_a_store_that_opens() {
    let mock = MockUpstream::start().await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut cfg = TestConfig { embedding: Embedding::Hash, admin_token: None, ..Default::default() }
        .to_toml(&mock.base_url(), &dir.path().join("store"))
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    let admin_env = format!("DEJA_KILL_TEST_ADMIN_{}", std::process::id());
    cfg = cfg.replace("admin_token_env = \"DEJA_TEST_UNSET_ADMIN\"", &format!("admin_token_env = \"{admin_env}\""));
    let config = dir.path().join("deja.toml");
    std::fs::write(&config, cfg).expect("config");
    let base = format!("http://127.0.0.1:{port}");

    for round in 0..3 {
        let mut child = spawn_deja(&config, &admin_env);
        wait_ready(&base).await;
        let client = reqwest::Client::new();
        let mut writers = Vec::new();
        for w in 0..8 {
            let client = client.clone();
            let url = format!("{base}/v1/chat/completions");
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({"model": "auto", "messages": [{"role": "user", "content": format!("round {round} writer {w} question {i}")}]});
                    if client.post(&url).json(&body).send().await.is_err() {
                        break;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for w in writers {
            let _ = w.await;
        }

        let mut child = spawn_deja(&config, &admin_env);
        wait_ready(&base).await;
        let stats: Value = admin_json(&client, format!("{base}/admin/stats")).await;
        let requests = stats["requests"].as_u64().expect("requests counter");
        let misses = stats["misses"].as_u64().expect("misses counter");
        assert!(misses <= requests, "{stats}");
        let listing: Value = admin_json(&client, format!("{base}/admin/cache?limit=1000")).await;
        let entries = listing["entries"].as_array().expect("entries");
        assert!(!entries.is_empty(), "answers given before the kill were stored");
        let mut first_question = None;
        for e in entries {
            let id = e["id"].as_str().expect("id");
            let full: Value = admin_json(&client, format!("{base}/admin/cache/{id}")).await;
            assert_eq!(full["response"]["choices"][0]["finish_reason"], "stop", "entries are whole: {full}");
            first_question.get_or_insert_with(|| full["request"][0]["content"].as_str().expect("question").to_string());
        }
        // What was stored is served again, exactly.
        let question = first_question.expect("a stored question");
        let again = client
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "auto", "messages": [{"role": "user", "content": question}]}))
            .send()
            .await
            .expect("replay");
        assert_eq!(again.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()), Some("exact"));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
}
