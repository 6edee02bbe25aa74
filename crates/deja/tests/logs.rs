//! `deja serve`'s log lines on a stderr that is not a terminal: no colour
//! codes, and with `log_format = "json"` one JSON object per line.

use deja_mock_upstream::MockUpstream;
use deja_testkit::TestConfig;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
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

/// Starts `deja serve` with `log_format` set (or left out), answers one chat
/// request, stops it with SIGTERM and returns everything it wrote to stderr.
async fn serve_one_request(log_format: Option<&str>) -> String {
    let mock = MockUpstream::start().await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server_extra = log_format.map(|f| format!("\nlog_format = \"{f}\"")).unwrap_or_default();
    let cfg = TestConfig { admin_token: None, ..Default::default() }
        .to_toml(&mock.base_url(), &dir.path().join("store"))
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\"{server_extra}"));
    let config = dir.path().join("deja.toml");
    std::fs::write(&config, cfg).expect("config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_deja"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deja starts");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "log me"}]}))
        .send()
        .await
        .expect("proxy answers");
    assert!(resp.status().is_success());

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("joined").expect("reaped");
    assert!(status.success(), "deja exits cleanly on SIGTERM: {status:?}");
    reader.join().expect("stderr read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_on_a_pipe_have_no_colour_codes() {
    let logs = serve_one_request(None).await;
    assert!(logs.contains("deja listening"), "{logs}");
    assert!(logs.contains("request_id="), "{logs}");
    assert!(!logs.contains("\x1b["), "escape codes in piped logs: {logs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let logs = serve_one_request(Some("json")).await;
    assert!(!logs.contains("\x1b["), "escape codes in piped logs: {logs:?}");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "deja listening"), "{logs}");
    let request = lines.iter().find(|l| l["message"] == "request").unwrap_or_else(|| panic!("no request line: {logs}"));
    for field in ["request_id", "endpoint", "cache", "model", "attempts", "status", "latency_ms", "cost_usd"] {
        assert!(request.get(field).is_some(), "request line lacks `{field}`: {request}");
    }
    assert_eq!(request["endpoint"], "chat");
    assert_eq!(request["cache"], "miss");
    assert_eq!(request["status"], 200);
    assert_eq!(request["level"], "INFO");
    assert!(request["latency_ms"].is_number(), "{request}");
}
