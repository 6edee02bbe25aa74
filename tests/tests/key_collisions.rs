//! Requests that could get different answers never share an entry, and
//! answers that cannot be replayed faithfully are relayed but never stored.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::{spawn_proxy, TestConfig};
use serde_json::{json, Value};

fn about_picture(url: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What animal is in this picture?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]})
}

#[tokio::test]
async fn the_same_question_about_another_picture_is_not_served_from_cache() {
    // The semantic cache is on: the two questions have the very same text.
    let h = spawn_proxy(TestConfig::default()).await;
    assert_eq!(chat(&h, &about_picture("https://img.example/cat.png")).await.cache(), "miss");
    let dog = chat(&h, &about_picture("https://img.example/dog.png")).await;
    assert_eq!(dog.cache(), "miss", "{:?}", dog.headers);
    assert_eq!(h.mock.control.total_calls(), 2);
    assert_eq!(chat(&h, &about_picture("https://img.example/cat.png")).await.cache(), "exact");

    let mut named = ask("Which plan am I on?");
    named["messages"][0]["name"] = json!("alice");
    assert_eq!(chat(&h, &named).await.cache(), "miss");
    named["messages"][0]["name"] = json!("bob");
    assert_eq!(chat(&h, &named).await.cache(), "miss", "another speaker's answer is not served");
    assert_eq!(h.mock.control.total_calls(), 4);
}

#[tokio::test]
async fn seeds_past_two_to_the_fifty_third_do_not_share_an_entry() {
    let h = spawn_proxy(exact_only()).await;
    let mut body = ask("Roll a die");
    body["seed"] = json!(9_007_199_254_740_992_i64);
    assert_eq!(chat(&h, &body).await.cache(), "miss");
    body["seed"] = json!(9_007_199_254_740_993_i64);
    assert_eq!(chat(&h, &body).await.cache(), "miss");
    assert_eq!(h.mock.control.total_calls(), 2);
    let forwarded = h.mock.control.requests();
    assert_eq!(forwarded.last().map(|r| r["seed"].clone()), Some(json!(9_007_199_254_740_993_i64)));
    assert_eq!(chat(&h, &body).await.cache(), "exact");
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-odd", "object": "chat.completion", "created": 1, "model": "cheap",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    })
}

#[tokio::test]
async fn malformed_tool_call_answers_are_relayed_but_not_cached() {
    let h = spawn_proxy(exact_only()).await;
    let tool_calls = |call: Value| json!({"role": "assistant", "content": null, "tool_calls": [call]});
    let answers = [
        completion(tool_calls(json!({"id": "c1", "type": "function", "function": {"arguments": "{}"}})), "tool_calls"),
        completion(
            tool_calls(json!({"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}})),
            "tool_calls",
        ),
        completion(tool_calls(json!({"type": "function", "function": {"name": "f", "arguments": "{}"}})), "tool_calls"),
        completion(json!({"role": "assistant", "content": null}), "tool_calls"),
        completion(json!("not an object"), "stop"),
    ];
    for (i, answer) in answers.iter().enumerate() {
        let question = ask(&format!("odd answer {i}"));
        h.mock.control.push_faults("cheap", [Fault::Body { body: answer.clone() }]);
        let first = chat(&h, &question).await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert_eq!(first.body["choices"][0]["message"], answer["choices"][0]["message"], "relayed as sent");
        let second = chat(&h, &question).await;
        assert_eq!(second.cache(), "miss", "answer {i} must not be stored");
        assert_eq!(h.mock.control.total_calls(), 2 * (i as u64 + 1));
    }
}

#[tokio::test]
async fn well_formed_streamed_tool_calls_are_still_cached() {
    let h = spawn_proxy(exact_only()).await;
    let mut body = ask("weather in Oslo");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
    body["stream"] = json!(true);
    let live = chat(&h, &body).await;
    assert!(live.text.contains("get_weather"), "{}", live.text);
    let replay = chat(&h, &body).await;
    assert_eq!(replay.cache(), "exact");
    body["stream"] = json!(false);
    let as_json = chat(&h, &body).await;
    assert_eq!(as_json.body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn a_task_tag_that_moves_the_starting_rung_is_keyed() {
    let h = spawn_proxy(exact_only()).await;
    let body = ask("Prove that there are infinitely many primes");
    let plain = chat(&h, &body).await;
    assert_eq!(plain.header("x-deja-model"), Some("cheap"));
    let tagged = chat_with(&h, &body, &[("x-deja-task", "reasoning")]).await;
    assert_eq!(tagged.cache(), "miss", "the reasoning rung's answer is not the cheap rung's");
    assert_eq!(tagged.header("x-deja-model"), Some("top"));
    let mut via_metadata = body.clone();
    via_metadata["metadata"] = json!({"task": "reasoning"});
    let again = chat(&h, &via_metadata).await;
    assert_eq!(again.cache(), "exact", "the same tag, however it is sent, shares the entry");
    assert_eq!(again.header("x-deja-model"), Some("top"));
    // A tag the ladder does not route on changes nothing, so it shares the entry.
    let unrouted = chat_with(&h, &body, &[("x-deja-task", "chit-chat")]).await;
    assert_eq!(unrouted.cache(), "exact");
    assert_eq!(h.mock.control.total_calls(), 2);
}
