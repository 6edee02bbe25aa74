//! The LLM verifier of grey-band semantic candidates, with the mock upstream
//! as the judge. The hash embedder puts "How do I reset my password?" and
//! "How can I reset my password?" at a cosine of about 0.83: between
//! `verify_from` (0.80) and the threshold (0.95).

mod common;

use common::*;
use deja_mock_upstream::{Fault, JUDGE_MODEL};
use deja_testkit::{spawn_proxy, Embedding, Harness, TestConfig};
use reqwest::Method;
use serde_json::json;

const ORIGINAL: &str = "How do I reset my password?";
const PARAPHRASE: &str = "How can I reset my password?";

fn config(verifier: bool) -> TestConfig {
    let table = if verifier { "\n[cache.semantic.verifier]\nmodel = \"judge\"\ntimeout = \"500ms\"\n" } else { "" };
    TestConfig {
        embedding: Embedding::Hash,
        threshold: 0.95,
        verify_from: Some(0.80),
        extra_toml: format!("{JUDGE}{table}"),
        ..Default::default()
    }
}

fn judge_calls(h: &Harness) -> u64 {
    h.mock.control.calls(JUDGE_MODEL)
}

fn usd(r: &Reply, header: &str) -> f64 {
    r.header(header).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{header} missing: {:?}", r.headers))
}

#[tokio::test]
async fn a_verified_paraphrase_is_served_then_learned_as_an_alias_under_the_clients_floor() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("1");
    let first = chat(&h, &ask(ORIGINAL)).await;
    assert_eq!(first.cache(), "miss");
    assert_eq!(judge_calls(&h), 0, "nothing to verify against yet");

    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "semantic", "{:?}", para.headers);
    assert_eq!(para.header("x-deja-verified"), Some("llm"));
    assert_eq!(para.content(), first.content());
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (1, 1));
    let sim: f32 = para.header("x-deja-similarity").and_then(|s| s.parse().ok()).expect("similarity");
    assert!((0.80..0.95).contains(&sim), "{sim}");
    // The judge saw both texts verbatim, at temperature 0.
    let asked = h.mock.control.requests().into_iter().rfind(|r| r["model"] == JUDGE_MODEL).expect("judge request");
    assert_eq!(asked["temperature"], 0);
    let text = asked["messages"].to_string();
    assert!(text.contains(ORIGINAL) && text.contains(PARAPHRASE), "{text}");
    // Saved: the answer's cost less the verification's.
    let verification = usd(&para, "x-deja-cost-usd");
    assert!(verification > 0.0);
    let saved = usd(&para, "x-deja-saved-usd");
    assert!((saved - (usd(&first, "x-deja-cost-usd") - verification).max(0.0)).abs() < 1e-9, "{saved}");

    let again = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(again.cache(), "semantic", "the verdict was remembered as an alias: {:?}", again.headers);
    assert_eq!(again.header("x-deja-verified"), Some("alias"));
    assert_eq!(again.header("x-deja-similarity"), para.header("x-deja-similarity"), "the similarity it was learned at");
    assert_eq!(again.header("x-deja-entry"), para.header("x-deja-entry"));
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (1, 1));

    // A client's floor applies to aliases too: above the similarity the alias
    // was learned at it is a miss, answered upstream (at 1.0 too: unit-tested
    // in `deja-cache`, since this answer now replaces the alias).
    let strict = chat_with(&h, &ask(PARAPHRASE), &[("x-deja-threshold", "0.99")]).await;
    assert_eq!(strict.cache(), "miss", "{:?}", strict.headers);
    assert!(strict.content().contains(PARAPHRASE), "its own answer: {}", strict.content());

    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["misses"], 2, "the verification is not a client miss: {stats}");
    assert_eq!(stats["hits"]["semantic"], 2);
    assert_eq!(stats["hits"]["exact"], 0);
}

#[tokio::test]
async fn a_rejection_is_a_miss_and_the_pair_is_never_asked_again() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("none");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "miss");
    assert!(para.content().contains(PARAPHRASE), "answered on its own: {}", para.content());
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (2, 1));

    // Drop the paraphrase's own answer so the next ask meets only the rejected candidate.
    let newest = admin_get(&h, "/admin/cache?limit=1").await.body;
    let id = newest["entries"][0]["id"].as_str().expect("entry id").to_string();
    assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{id}"), &json!({})).await.status, 204);
    h.mock.control.set_judge_verdict("1");
    let again = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(again.cache(), "miss", "a rejected pair is never served, even if the judge would now agree");
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (3, 1), "the judge is not asked twice");
}

#[tokio::test]
async fn a_judge_that_times_out_or_fails_is_a_miss_never_a_hit() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("1");
    // Too slow: the verifier's timeout is 500 ms.
    h.mock.control.push_faults(JUDGE_MODEL, [Fault::Delay { ms: 1_500 }]);
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    let slow = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(slow.cache(), "miss");
    assert_eq!(slow.header("x-deja-verified"), None);
    assert_eq!(judge_calls(&h), 1);

    // Failing: every attempt (one try and one retry) answers 500.
    let fail = Fault::Status { status: 500, retry_after_s: None, retry_after: None };
    h.mock.control.push_faults(JUDGE_MODEL, [fail.clone(), fail]);
    assert_eq!(chat(&h, &ask("Where is the nearest train station?")).await.cache(), "miss");
    let failed = chat(&h, &ask("Where is the closest train station?")).await;
    assert_eq!(failed.cache(), "miss");
    assert_eq!(failed.status, 200, "a verifier failure never reaches the client");
    assert_eq!(judge_calls(&h), 3);
    assert_eq!(h.mock.control.calls("cheap"), 4);
}

#[tokio::test]
async fn below_verify_from_the_judge_is_never_called() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &ask("What is the capital of France?")).await.cache(), "miss");
    // A cosine of about 0.75: under verify_from.
    assert_eq!(chat(&h, &ask("Tell me the capital of France")).await.cache(), "miss");
    assert_eq!(judge_calls(&h), 0);
}

#[tokio::test]
async fn a_client_raised_threshold_is_never_undercut_by_the_verifier() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    let strict = chat_with(&h, &ask(PARAPHRASE), &[("x-deja-threshold", "0.9")]).await;
    assert_eq!(strict.cache(), "miss");
    assert_eq!(judge_calls(&h), 0);
}

#[tokio::test]
async fn without_a_verifier_the_grey_band_is_a_miss() {
    let h = spawn_proxy(config(false)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "miss");
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (2, 0));
}

#[tokio::test]
async fn deleting_an_entry_takes_its_aliases_with_it() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("yes");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "semantic");
    let learned = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!((learned.cache(), learned.header("x-deja-verified")), ("semantic", Some("alias")));
    let id = para.header("x-deja-entry").expect("entry id").to_string();
    assert_eq!(admin_send(&h, Method::DELETE, &format!("/admin/cache/{id}"), &json!({})).await.status, 204);
    let after = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(after.cache(), "miss", "the alias went with its entry");
    assert!(after.content().contains(PARAPHRASE));
    assert_eq!(judge_calls(&h), 1);
}

#[tokio::test]
async fn verifications_and_their_cost_are_reported_per_namespace() {
    let h = spawn_proxy(config(true)).await;
    h.mock.control.set_judge_verdict("none");
    let team = [("x-deja-namespace", "team-a")];
    assert_eq!(chat_with(&h, &ask(ORIGINAL), &team).await.cache(), "miss");
    assert_eq!(chat_with(&h, &ask(PARAPHRASE), &team).await.cache(), "miss");
    assert_eq!(judge_calls(&h), 1);

    let stats = admin_get(&h, "/admin/stats").await.body;
    let verifier = &stats["verifier"];
    assert_eq!(verifier["verifications"], 1, "{stats}");
    let ns = &verifier["by_namespace"]["default/team-a"];
    assert_eq!(ns["verifications"], 1, "{stats}");
    let usd = ns["verification_usd"].as_f64().expect("verification_usd");
    assert!(usd > 0.0 && (usd - verifier["verification_usd"].as_f64().unwrap_or(0.0)).abs() < 1e-12);
    assert_eq!(stats["misses"], 2, "verifier calls are not client misses");

    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_semantic_verifications_total{namespace=\"default/team-a\"} 1"), "{metrics}");
    assert!(metrics.contains("deja_semantic_verification_usd_total{namespace=\"default/team-a\"}"), "{metrics}");
}

fn async_config() -> TestConfig {
    TestConfig {
        extra_toml: format!(
            "{JUDGE}\n[cache.semantic.verifier]\nmodel = \"judge\"\ntimeout = \"2s\"\nmode = \"async\"\n"
        ),
        ..config(false)
    }
}

#[tokio::test]
async fn in_async_mode_a_grey_candidate_is_a_miss_now_and_a_yes_serves_the_next_ask() {
    let h = spawn_proxy(async_config()).await;
    h.mock.control.set_judge_verdict("1");
    // A judge slower than the upstream: the client never waits for it.
    h.mock.control.push_faults(JUDGE_MODEL, [Fault::Delay { ms: 700 }]);
    let first = chat(&h, &ask(ORIGINAL)).await;
    assert_eq!(first.cache(), "miss");

    let started = std::time::Instant::now();
    let para = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(para.cache(), "miss", "the critical path is the threshold alone: {:?}", para.headers);
    assert_eq!(para.header("x-deja-verified"), None);
    assert!(para.content().contains(PARAPHRASE), "answered upstream: {}", para.content());
    assert!(started.elapsed() < std::time::Duration::from_millis(600), "answered before the verdict");
    assert!(
        deja_testkit::eventually(std::time::Duration::from_secs(10), || async { judge_calls(&h) == 1 }).await,
        "verified in the background"
    );

    // The yes is learned: the next ask of that wording is the verified entry.
    let mut next = chat(&h, &ask(PARAPHRASE)).await;
    for _ in 0..50 {
        if next.cache() == "semantic" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        next = chat(&h, &ask(PARAPHRASE)).await;
    }
    assert_eq!(next.cache(), "semantic", "{:?}", next.headers);
    assert_eq!(next.header("x-deja-verified"), Some("alias"));
    assert_eq!(next.content(), first.content());
    assert_eq!(judge_calls(&h), 1, "asked once");
}

#[tokio::test]
async fn in_async_mode_a_no_is_remembered_and_the_wording_gets_its_own_answer() {
    let h = spawn_proxy(async_config()).await;
    h.mock.control.set_judge_verdict("none");
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "miss");
    assert!(deja_testkit::eventually(std::time::Duration::from_secs(10), || async { judge_calls(&h) == 1 }).await);
    // Rejected: the next ask is answered upstream and stored; the one after is its own exact hit.
    let mut upstream = chat(&h, &ask(PARAPHRASE)).await;
    for _ in 0..50 {
        if upstream.cache() == "miss" && h.mock.control.calls("cheap") == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        upstream = chat(&h, &ask(PARAPHRASE)).await;
    }
    assert!(upstream.content().contains(PARAPHRASE), "{}", upstream.content());
    let own = chat(&h, &ask(PARAPHRASE)).await;
    assert_eq!(own.cache(), "exact", "{:?}", own.headers);
    assert!(own.content().contains(PARAPHRASE));
    assert_eq!(judge_calls(&h), 1, "a rejected pair is never asked again");
}

#[tokio::test]
async fn in_async_mode_a_failed_verification_counts_as_a_no() {
    let h = spawn_proxy(async_config()).await;
    h.mock.control.set_judge_verdict("1");
    let fail = Fault::Status { status: 500, retry_after_s: None, retry_after: None };
    h.mock.control.push_faults(JUDGE_MODEL, [fail.clone(), fail]);
    assert_eq!(chat(&h, &ask(ORIGINAL)).await.cache(), "miss");
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "miss");
    assert!(deja_testkit::eventually(std::time::Duration::from_secs(10), || async { judge_calls(&h) >= 1 }).await);
    // The failure is remembered: the wording's next answer is its own, stored.
    let mut next = chat(&h, &ask(PARAPHRASE)).await;
    for _ in 0..50 {
        if next.cache() == "exact" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        next = chat(&h, &ask(PARAPHRASE)).await;
    }
    assert_eq!(next.cache(), "exact", "{:?}", next.headers);
    assert!(next.content().contains(PARAPHRASE));
    let calls = judge_calls(&h);
    assert_eq!(chat(&h, &ask(PARAPHRASE)).await.cache(), "exact");
    assert_eq!(judge_calls(&h), calls, "not asked again");
}
