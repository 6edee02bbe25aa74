//! `deja eval --judge`: labelled pairs replayed through the configured
//! verifier, here the mock upstream's judge model over a real socket.

mod common;

use common::judge_as_verifier;
use deja::config::Config;
use deja::eval::judge::{judge, needing, Judgement};
use deja::eval::{bands, Scored};
use deja_mock_upstream::{Fault, MockUpstream, JUDGE_MODEL};
use deja_testkit::TestConfig;

fn pairs() -> Vec<(String, String, bool)> {
    [
        ("How do I reset my password?", "How can I reset my password?", true),
        ("Do you ship to Canada?", "Can you deliver to Canada?", true),
        ("Do you ship to Canada?", "Do you ship to Mexico?", false),
        ("What is your refund policy?", "How do I enable two-factor authentication?", false),
    ]
    .iter()
    .map(|(a, b, same)| (a.to_string(), b.to_string(), *same))
    .collect()
}

/// Similarities as a model might give them: one direct hit, two grey, one far.
fn scored() -> Vec<Scored> {
    [(0.97, true), (0.90, true), (0.86, false), (0.40, false)]
        .iter()
        .map(|&(similarity, same)| Scored { similarity, same, refused: [false; 4] })
        .collect()
}

async fn setup() -> (MockUpstream, Config, tempfile::TempDir) {
    let mock = MockUpstream::start().await.expect("mock starts");
    let dir = tempfile::tempdir().expect("dir");
    let test = TestConfig { extra_toml: judge_as_verifier(), ..Default::default() };
    let path = dir.path().join("deja.toml");
    std::fs::write(&path, test.to_toml(&mock.base_url(), &dir.path().join("store"))).expect("write config");
    let config = Config::load(&path).expect("valid config");
    (mock, config, dir)
}

#[tokio::test]
async fn grey_pairs_are_asked_once_each_and_the_verdicts_decide_the_band() {
    let (mock, config, _dir) = setup().await;
    let (pairs, scored) = (pairs(), scored());
    let which = needing(&scored, [true; 4], (0.80, 0.94));
    assert_eq!(which, vec![1, 2], "only the grey band is asked");

    mock.control.set_judge_verdict("1");
    let v = judge(config.clone(), &pairs, &which, Vec::new(), 2).await.expect("replay");
    assert_eq!(mock.control.calls(JUDGE_MODEL), 2);
    assert_eq!((&v[0], &v[3]), (&Judgement::NotAsked, &Judgement::NotAsked));
    for i in [1, 2] {
        assert!(matches!(v[i], Judgement::Yes { usd } if usd > 0.0), "{:?}", v[i]);
    }
    // The new request is b, the cached candidate a, both verbatim.
    let asked: Vec<String> = mock
        .control
        .requests()
        .into_iter()
        .filter(|r| r["model"] == JUDGE_MODEL)
        .map(|r| r["messages"][1]["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        asked
            .iter()
            .any(|t| t.contains("New request:\n\"Do you ship to Mexico?\"")
                && t.contains("1. \"Do you ship to Canada?\""))
    );

    // A judge that says yes to everything serves the trap in the grey band.
    let o = bands::outcome(&scored, [true; 4], 0.94, 0.80, Some(&v));
    assert_eq!((o.judged_yes_dups, o.judged_yes_non_dups), (1, 1));
    assert_eq!(o.served_judged(), (1.0, 0.5));

    // Answered pairs are not asked again.
    let again = judge(config.clone(), &pairs, &which, v.clone(), 2).await.expect("replay");
    assert_eq!((again, mock.control.calls(JUDGE_MODEL)), (v, 2));

    mock.control.set_judge_verdict("none");
    let no = judge(config, &pairs, &which, Vec::new(), 2).await.expect("replay");
    assert!(matches!(no[1], Judgement::No { .. }) && matches!(no[2], Judgement::No { .. }), "{no:?}");
    assert_eq!(bands::outcome(&scored, [true; 4], 0.94, 0.80, Some(&no)).served_judged(), (0.5, 0.0));
}

#[tokio::test]
async fn a_failing_verifier_is_a_miss_never_a_hit() {
    let (mock, config, _dir) = setup().await;
    mock.control.set_judge_verdict("1");
    mock.control.set_sticky(JUDGE_MODEL, Some(Fault::Status { status: 500, retry_after_s: None, retry_after: None }));
    let (pairs, scored) = (pairs(), scored());
    let which = needing(&scored, [true; 4], (0.80, 0.94));
    let v = judge(config, &pairs, &which, Vec::new(), 2).await.expect("replay");
    assert!(matches!(v[1], Judgement::Failed(_)) && matches!(v[2], Judgement::Failed(_)), "{v:?}");
    let o = bands::outcome(&scored, [true; 4], 0.94, 0.80, Some(&v));
    assert_eq!((o.judged_failed, o.served_judged()), (2, (0.5, 0.0)));
}

#[tokio::test]
async fn judging_without_a_verifier_configured_is_an_error() {
    let mock = MockUpstream::start().await.expect("mock starts");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("deja.toml");
    std::fs::write(&path, TestConfig::default().to_toml(&mock.base_url(), &dir.path().join("store"))).expect("write");
    let config = Config::load(&path).expect("valid config");
    let err = judge(config, &pairs(), &[1], Vec::new(), 1).await.expect_err("no verifier");
    assert!(err.contains("[cache.semantic.verifier]"), "{err}");
}
