//! `deja eval --routes` and `deja check-config` on the shipped support
//! routes (`config/routes.toml`) and labelled questions
//! (`tests/data/support_routes.jsonl`), with the real embedding model.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deja(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deja")).args(args).current_dir(repo()).output().expect("deja runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The percentage after `label` in `text`, e.g. "accuracy 86.0%".
fn percent_after(text: &str, label: &str) -> f64 {
    let rest = &text[text.find(label).unwrap_or_else(|| panic!("no {label:?} in:\n{text}")) + label.len()..];
    rest.trim_start().split('%').next().and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("{text}"))
}

#[test]
fn the_support_routes_send_most_labelled_questions_where_they_belong() {
    let (ok, out, err) = deja(&[
        "eval",
        "--config",
        "config/routes.toml",
        "--routes",
        "tests/data/support_routes.jsonl",
        "--show-misses",
        "50",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("questions: 50;"), "{out}");
    let accuracy = percent_after(&out, "accuracy");
    assert!(accuracy >= 80.0, "accuracy {accuracy}%:\n{out}");
    for route in ["refunds", "shipping", "account", "technical", "none"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(route)), "{route} missing:\n{out}");
    }
    assert!(out.contains("confusion (rows: labelled, columns: chosen)"), "{out}");
    assert!(out.contains("one threshold for every route"), "{out}");
}

#[test]
fn a_label_naming_no_route_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("labelled.jsonl");
    std::fs::write(
        &file,
        "{\"text\": \"refund me\", \"route\": \"refunds\"}\n{\"text\": \"x\", \"route\": \"billing\"}\n",
    )
    .expect("write");
    let (ok, _, err) = deja(&["eval", "--config", "config/routes.toml", "--routes", file.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(err.contains("line 2") && err.contains("`billing`"), "{err}");
}

#[test]
fn check_config_lists_each_route_by_name() {
    let (ok, out, err) = deja(&["check-config", "config/routes.toml"]);
    assert!(ok, "{err}");
    for (name, rung) in [("refunds", "deepseek-v4-flash"), ("shipping", "glm-4-plus"), ("technical", "deepseek-v4-pro")]
    {
        assert!(out.contains(&format!("route `{name}` to {rung} (similarity >= 0.45)")), "{out}");
    }
}
