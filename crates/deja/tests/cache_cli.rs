//! `deja cache ...` run as a real process against a running proxy.

use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::{json, Value};
use std::process::{Command, Output};

/// Runs the `deja` binary with `args`, the admin token (if any) in
/// `DEJA_ADMIN_TOKEN`, and nothing else from the environment that the CLI reads.
async fn deja(args: Vec<String>, token_env: Option<&str>) -> Output {
    let token_env = token_env.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_deja"));
        cmd.args(&args).env_remove("DEJA_URL").env_remove("DEJA_ADMIN_TOKEN").env("RUST_LOG", "warn");
        if let Some(t) = token_env {
            cmd.env("DEJA_ADMIN_TOKEN", t);
        }
        cmd.output().expect("deja runs")
    })
    .await
    .expect("joined")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_stats_json_with_options_after_the_action() {
    let h = spawn_proxy(TestConfig::default()).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "what is a cache?"}]});
    for _ in 0..2 {
        let r = client.post(h.url("/v1/chat/completions")).json(&body).send().await.expect("proxy answers");
        assert!(r.status().is_success());
    }
    let url = h.url("");

    // Token in the environment, options after the action.
    let out = deja(strings(&["cache", "stats", "--json", "--url", &url]), Some("test-admin-token")).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(stats["requests"], 2, "{stats}");
    assert_eq!(stats["hits"]["exact"], 1, "{stats}");
    assert_eq!(stats["misses"], 1, "{stats}");

    // Token as a flag, options on both sides of the action.
    let out = deja(strings(&["cache", "--url", &url, "stats", "--token", "test-admin-token", "--json"]), None).await;
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let again: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(again["requests"], 2, "{again}");

    // No token: a clear error, nothing on stdout.
    let out = deja(strings(&["cache", "stats", "--json", "--url", &url]), None).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEJA_ADMIN_TOKEN"));

    // A wrong token is refused by the server.
    let out = deja(strings(&["cache", "stats", "--json", "--url", &url]), Some("wrong")).await;
    assert!(!out.status.success());
}
