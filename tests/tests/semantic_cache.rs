//! The semantic cache with the real all-MiniLM-L6-v2 model: paraphrases hit,
//! near-misses and other contexts do not.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, Embedding, TestConfig};
use serde_json::json;

fn semantic() -> TestConfig {
    TestConfig { embedding: Embedding::Real, threshold: 0.80, ..Default::default() }
}

#[tokio::test]
async fn a_paraphrase_is_served_with_its_similarity() {
    let h = spawn_proxy(semantic()).await;
    let first = chat(&h, &ask("When do you open?")).await;
    assert_eq!(first.cache(), "miss");
    let para = chat(&h, &ask("What time do you open?")).await;
    assert_eq!(para.cache(), "semantic", "{:?}", para.headers);
    assert_eq!(para.content(), first.content());
    let sim: f32 = para.header("x-deja-similarity").and_then(|s| s.parse().ok()).expect("similarity header");
    assert!((0.80..=1.0).contains(&sim), "{sim}");
    assert_eq!(para.header("x-deja-entry"), first_entry(&h).await.as_deref());
    assert_eq!(h.mock.control.total_calls(), 1);
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert_eq!(stats["hits"]["semantic"], 1);
}

async fn first_entry(h: &deja_testkit::Harness) -> Option<String> {
    admin_get(h, "/admin/cache?limit=1").await.body["entries"][0]["id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn near_misses_with_other_numbers_negation_or_names_are_not_served() {
    let h = spawn_proxy(semantic()).await;
    for (original, near_miss) in [
        ("Book a table for 2 people tonight", "Book a table for 4 people tonight"),
        ("Cancel my subscription", "Don't cancel my subscription"),
        ("How do I install Python on Windows?", "How do I install Java on Windows?"),
    ] {
        assert_eq!(chat(&h, &ask(original)).await.cache(), "miss");
        let r = chat(&h, &ask(near_miss)).await;
        assert_eq!(r.cache(), "miss", "`{near_miss}` must not be served `{original}`'s answer");
        assert!(r.content().contains(near_miss));
    }
}

#[tokio::test]
async fn earlier_turns_must_match_exactly() {
    let h = spawn_proxy(semantic()).await;
    let convo = |service: &str| {
        json!({"model": "auto", "messages": [
            {"role": "user", "content": format!("I pay for {service} every month")},
            {"role": "assistant", "content": "Understood."},
            {"role": "user", "content": "cancel it"}
        ]})
    };
    assert_eq!(chat(&h, &convo("Netflix")).await.cache(), "miss");
    assert_eq!(chat(&h, &convo("Spotify")).await.cache(), "miss");
    let mut paraphrase = convo("Netflix");
    paraphrase["messages"][2]["content"] = json!("please cancel it");
    assert_eq!(chat(&h, &paraphrase).await.cache(), "semantic");
    let mut other_system = ask("When do you open?");
    chat(&h, &other_system).await;
    other_system["messages"] =
        json!([{"role": "system", "content": "You are a bank"}, {"role": "user", "content": "What time do you open?"}]);
    assert_eq!(chat(&h, &other_system).await.cache(), "miss");
}

#[tokio::test]
async fn other_tenants_and_parameters_do_not_match() {
    let h = spawn_proxy(TestConfig { client_keys: vec!["sk-a".into(), "sk-b".into()], ..semantic() }).await;
    let a = [("authorization", "Bearer sk-a")];
    let b = [("authorization", "Bearer sk-b")];
    chat_with(&h, &ask("When do you open?"), &a).await;
    assert_eq!(chat_with(&h, &ask("What time do you open?"), &b).await.cache(), "miss");
    assert_eq!(chat_with(&h, &ask("What time do you open?"), &a).await.cache(), "semantic");
    let mut hot = ask("What time do you open?");
    hot["temperature"] = json!(1.5);
    assert_eq!(chat_with(&h, &hot, &a).await.cache(), "miss");
}

#[tokio::test]
async fn deleted_and_expired_entries_are_never_served() {
    let h = spawn_proxy(semantic()).await;
    let first = chat(&h, &ask("When do you open?")).await;
    let id = first_entry(&h).await.expect("entry");
    let r = admin_send(&h, reqwest::Method::DELETE, &format!("/admin/cache/{id}"), &json!({})).await;
    assert_eq!(r.status, 204);
    assert_eq!(chat(&h, &ask("What time do you open?")).await.cache(), "miss");
    let again = chat(&h, &ask("When do you open?")).await;
    assert_eq!(again.cache(), "semantic", "served from the entry the miss above stored");
    assert_ne!(again.header("x-deja-entry"), Some(id.as_str()));
    drop(first);

    chat_with(&h, &ask("Where is the nearest branch?"), &[("x-deja-ttl", "1s")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(chat(&h, &ask("Where's your nearest branch?")).await.cache(), "miss");

    // A paraphrase's hit is bounded by the request's max-age too.
    chat(&h, &ask("Do you sell gift cards?")).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let strict = chat_with(&h, &ask("Do you sell gift cards?  "), &[("cache-control", "max-age=1")]).await;
    assert_eq!(strict.cache(), "miss", "{:?}", strict.headers);
}

#[tokio::test]
async fn a_paraphrase_still_hits_after_a_restart() {
    let h = spawn_proxy(semantic()).await;
    chat(&h, &ask("How can I reset my password?")).await;
    let h = h.restart().await;
    assert_eq!(chat(&h, &ask("How do I reset my password?")).await.cache(), "semantic");
    assert_eq!(h.mock.control.total_calls(), 1);
}

#[tokio::test]
async fn clients_may_raise_the_threshold_but_not_lower_it() {
    let h = spawn_proxy(semantic()).await;
    chat(&h, &ask("When do you open?")).await;
    assert_eq!(chat_with(&h, &ask("What time do you open?"), &[("x-deja-threshold", "0.999")]).await.cache(), "miss");
    let h2 = spawn_proxy(TestConfig { threshold: 0.99, ..semantic() }).await;
    chat(&h2, &ask("When do you open?")).await;
    assert_eq!(chat_with(&h2, &ask("What time do you open?"), &[("x-deja-threshold", "0.1")]).await.cache(), "miss");
}
