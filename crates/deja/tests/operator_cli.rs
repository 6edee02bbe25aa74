//! `deja cache ...` as a new operator types it, run as a real process against
//! a running proxy: the ids `ls` prints, the namespace clients send, purge
//! dry runs, and the stats wording.

use deja_testkit::{spawn_proxy, Harness, TestConfig};
use serde_json::{json, Value};
use std::process::{Command, Output};

/// Runs the `deja` binary with `args` against `h`, the admin token in
/// `DEJA_ADMIN_TOKEN`; fails the test if it fails.
async fn deja(h: &Harness, args: &[&str]) -> String {
    let out = run(h, args).await;
    assert!(out.status.success(), "deja {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn run(h: &Harness, args: &[&str]) -> Output {
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.extend(["--url".to_string(), h.url("")]);
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_deja"))
            .args(&argv)
            .env_remove("DEJA_URL")
            .env("DEJA_ADMIN_TOKEN", "test-admin-token")
            .env("RUST_LOG", "warn")
            .output()
            .expect("deja runs")
    })
    .await
    .expect("joined")
}

async fn ask(h: &Harness, question: &str, namespace: Option<&str>) {
    let mut req = reqwest::Client::new()
        .post(h.url("/v1/chat/completions"))
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": question}]}));
    if let Some(ns) = namespace {
        req = req.header("x-deja-namespace", ns);
    }
    let r = req.send().await.expect("proxy answers");
    assert!(r.status().is_success());
}

fn exact_only() -> TestConfig {
    TestConfig { embedding: deja_testkit::Embedding::Off, ..Default::default() }
}

/// The rows of `deja cache ls` (the header dropped), split on whitespace.
fn rows(ls: &str) -> Vec<Vec<String>> {
    ls.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ids_ls_prints_work_with_show_and_rm() {
    let h = spawn_proxy(exact_only()).await;
    ask(&h, "When do you open?", None).await;
    ask(&h, "Where are you?", None).await;
    let listed = rows(&deja(&h, &["cache", "ls"]).await);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let id = listed[0][0].clone();
    assert_eq!(id.len(), 16);

    let shown: Value = serde_json::from_str(&deja(&h, &["cache", "show", &id, "--json"]).await).expect("JSON");
    assert!(shown["id"].as_str().is_some_and(|full| full.len() == 64 && full.starts_with(&id)), "{shown}");
    assert_eq!(deja(&h, &["cache", "rm", &id]).await, format!("deleted {id}\n"));
    let gone = run(&h, &["cache", "show", &id]).await;
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"), "{}", String::from_utf8_lossy(&gone.stderr));
    assert_eq!(rows(&deja(&h, &["cache", "ls"]).await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_takes_the_header_value_and_purge_has_a_dry_run() {
    let h = spawn_proxy(exact_only()).await;
    ask(&h, "team question one", Some("team")).await;
    ask(&h, "team question two", Some("team")).await;
    ask(&h, "everyone's question", None).await;

    let team = rows(&deja(&h, &["cache", "ls", "--namespace", "team"]).await);
    assert_eq!(team.len(), 2, "{team:?}");
    assert!(team.iter().all(|r| r[1] == "team" && r[2] == "default/team"), "both forms shown: {team:?}");
    let stored = rows(&deja(&h, &["cache", "ls", "--namespace", "default/team"]).await);
    assert_eq!(stored.len(), 2, "the stored form still works: {stored:?}");

    let dry = deja(&h, &["cache", "purge", "--namespace", "team", "--dry-run"]).await;
    assert!(dry.starts_with("would remove 2 entries (dry run: nothing was removed)\n"), "{dry}");
    assert!(dry.contains("namespaces: default/team\n"), "{dry}");
    assert!(dry.contains("team question one") && dry.contains("team question two"), "{dry}");
    assert!(!dry.contains("everyone"), "{dry}");
    assert_eq!(rows(&deja(&h, &["cache", "ls"]).await).len(), 3, "a dry run removes nothing");

    let done = deja(&h, &["cache", "purge", "--namespace", "team"]).await;
    assert!(done.starts_with("removed 2 entries\n"), "{done}");
    let left = rows(&deja(&h, &["cache", "ls"]).await);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0][1].as_str(), left[0][2].as_str()), ("-", "default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_print_misses_refreshes_and_bypasses_on_lines_of_their_own() {
    let h = spawn_proxy(exact_only()).await;
    ask(&h, "When do you open?", None).await;
    ask(&h, "When do you open?", None).await;
    let stats = deja(&h, &["cache", "stats"]).await;
    let lines: Vec<&str> = stats.lines().collect();
    assert!(lines.contains(&"misses          1"), "{stats}");
    assert!(lines.contains(&"refreshes       0"), "{stats}");
    assert!(lines.contains(&"bypasses        0"), "{stats}");
    assert!(!stats.contains("(refreshes"), "{stats}");
}
