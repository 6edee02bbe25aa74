//! Conversations that can hit: the same closing question after other earlier
//! turns is served only on the verifier's yes, with the real model embedding
//! and the mock upstream as the judge.

mod common;

use common::*;
use deja_mock_upstream::JUDGE_MODEL;
use deja_testkit::{spawn_proxy, Embedding, Harness, TestConfig};
use serde_json::{json, Value};

const SYSTEM: &str = "You are the support assistant of an online service.";

fn config(verifier: bool, conversations: bool) -> TestConfig {
    with_history_min(verifier, conversations.then_some(""))
}

/// `conversations`: the `[cache.semantic.conversations]` table's body, if any.
fn with_history_min(verifier: bool, conversations: Option<&str>) -> TestConfig {
    let mut extra = JUDGE.to_string();
    if verifier {
        extra.push_str("\n[cache.semantic.verifier]\nmodel = \"judge\"\ntimeout = \"2s\"\n");
    }
    if let Some(body) = conversations {
        extra.push_str(&format!("\n[cache.semantic.conversations]\n{body}\n"));
    }
    TestConfig {
        embedding: Embedding::Real,
        threshold: 0.95,
        verify_from: Some(0.80),
        extra_toml: extra,
        ..Default::default()
    }
}

/// A conversation: the system message, `turns` alternating user and assistant, then `question`.
fn convo(system: &str, turns: &[&str], question: &str) -> Value {
    let mut messages = vec![json!({"role": "system", "content": system})];
    for (i, t) in turns.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": t}));
    }
    messages.push(json!({"role": "user", "content": question}));
    json!({"model": "auto", "messages": messages})
}

fn judge_calls(h: &Harness) -> u64 {
    h.mock.control.calls(JUDGE_MODEL)
}

fn judge_request(h: &Harness) -> String {
    let asked = h.mock.control.requests().into_iter().rfind(|r| r["model"] == JUDGE_MODEL).expect("judge request");
    asked["messages"].to_string()
}

const QUESTION: &str = "What documents do I need to travel to Japan?";
const SMALL_TALK_A: [&str; 2] = ["Hi there, how are you today?", "I'm doing well, thank you for asking!"];
const SMALL_TALK_B: [&str; 2] = ["Good morning! Lovely weather we are having.", "It is a beautiful day indeed."];

#[tokio::test]
async fn a_question_re_asked_after_other_small_talk_is_a_verified_hit_even_after_a_restart() {
    let h = spawn_proxy(config(true, true)).await;
    h.mock.control.set_judge_verdict("1");
    let first = chat(&h, &convo(SYSTEM, &SMALL_TALK_A, QUESTION)).await;
    assert_eq!(first.cache(), "miss");
    // The coarse fingerprint and history vector come back from sled.
    let h = h.restart().await;
    let again = chat(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION)).await;
    assert_eq!(again.cache(), "semantic", "{:?}", again.headers);
    assert_eq!(again.header("x-deja-verified"), Some("llm"));
    assert_eq!(again.content(), first.content());
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (1, 1));
    // The judge saw both conversations' differing turns, the question and the shared system message.
    let text = judge_request(&h);
    for needle in SMALL_TALK_A.iter().chain(&SMALL_TALK_B).chain([&QUESTION, &SYSTEM]) {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    // Learned: the same conversation again is served as a learned alias, no judge.
    let learned = chat(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION)).await;
    assert_eq!((learned.cache(), learned.header("x-deja-verified")), ("semantic", Some("alias")));
    assert_eq!(judge_calls(&h), 1);
}

#[tokio::test]
async fn cancel_it_after_another_subscription_is_never_served_on_the_judges_no() {
    let h = spawn_proxy(config(true, true)).await;
    h.mock.control.set_judge_verdict("none");
    let streaming = ["I pay monthly for your premium video streaming subscription.", "Thanks, I can help with it."];
    let gym = ["I have a yearly gym membership with your fitness club.", "Thanks, I can help with it."];
    assert_eq!(chat(&h, &convo(SYSTEM, &streaming, "Cancel it")).await.cache(), "miss");
    let cancel = chat(&h, &convo(SYSTEM, &gym, "Cancel it")).await;
    assert_eq!(cancel.cache(), "miss", "{:?}", cancel.headers);
    assert_eq!(cancel.header("x-deja-verified"), None);
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (2, 1), "asked the judge, then upstream");
    let text = judge_request(&h);
    assert!(text.contains("gym membership") && text.contains("video streaming subscription"), "{text}");
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["hits"]["semantic"], 0, "{stats}");
}

#[tokio::test]
async fn without_a_verifier_conversations_never_hit() {
    let h = spawn_proxy(config(false, true)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_A, QUESTION)).await.cache(), "miss");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION)).await.cache(), "miss");
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (2, 0));
}

#[tokio::test]
async fn without_the_conversations_table_earlier_turns_must_match() {
    let h = spawn_proxy(config(true, false)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_A, QUESTION)).await.cache(), "miss");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION)).await.cache(), "miss");
    assert_eq!(judge_calls(&h), 0);
}

#[tokio::test]
async fn another_system_prompt_tools_or_parameters_are_never_candidates() {
    let h = spawn_proxy(config(true, true)).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_A, QUESTION)).await.cache(), "miss");
    let mut hot = convo(SYSTEM, &SMALL_TALK_B, QUESTION);
    hot["temperature"] = json!(0.9);
    let mut tooled = convo(SYSTEM, &SMALL_TALK_B, QUESTION);
    tooled["tools"] = json!([{"type": "function", "function": {"name": "lookup_visa", "parameters": {}}}]);
    let other_system = convo("You are a pirate. Answer like one.", &SMALL_TALK_B, QUESTION);
    for (what, body) in [("temperature", hot), ("tools", tooled), ("system prompt", other_system)] {
        let r = chat(&h, &body).await;
        assert_eq!(r.cache(), "miss", "{what}");
    }
    assert_eq!(judge_calls(&h), 0, "no candidate was offered to the judge");
    // Another tenant's identical conversation is no candidate either.
    let team = [("x-deja-namespace", "team-b")];
    assert_eq!(chat_with(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION), &team).await.cache(), "miss");
    assert_eq!(judge_calls(&h), 0);
}

#[tokio::test]
async fn a_history_below_history_min_is_never_a_candidate() {
    let h = spawn_proxy(with_history_min(true, Some("history_min = 0.99"))).await;
    h.mock.control.set_judge_verdict("1");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_A, QUESTION)).await.cache(), "miss");
    assert_eq!(chat(&h, &convo(SYSTEM, &SMALL_TALK_B, QUESTION)).await.cache(), "miss");
    assert_eq!(judge_calls(&h), 0);
}

#[tokio::test]
async fn a_reworded_history_is_a_verified_hit() {
    let h = spawn_proxy(config(true, true)).await;
    h.mock.control.set_judge_verdict("1");
    let planned = ["I'm planning a trip to Tokyo next month.", "That sounds exciting!"];
    let reworded = ["Next month I will be visiting Tokyo.", "How exciting!"];
    assert_eq!(chat(&h, &convo(SYSTEM, &planned, QUESTION)).await.cache(), "miss");
    let again = chat(&h, &convo(SYSTEM, &reworded, QUESTION)).await;
    assert_eq!(again.cache(), "semantic", "{:?}", again.headers);
    assert_eq!(again.header("x-deja-verified"), Some("llm"));
    assert_eq!((h.mock.control.calls("cheap"), judge_calls(&h)), (1, 1));
    let text = judge_request(&h);
    assert!(text.contains(planned[0]) && text.contains(reworded[0]), "{text}");
}
