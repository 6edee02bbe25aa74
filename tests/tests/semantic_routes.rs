//! Semantic routes with the real all-MiniLM-L6-v2 model: a question close to
//! a route's examples starts the ladder at the route's rung.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, Embedding, TestConfig};

const ROUTES: &str = r#"
[[ladders.routes]]
examples = ["refund my order", "I want my money back", "cancel my purchase and return the payment"]
start_at = "mid"
threshold = 0.6
[[ladders.routes]]
examples = ["prove this theorem step by step", "solve this differential equation"]
start_at = "top"
threshold = 0.6
"#;

fn routed() -> TestConfig {
    TestConfig { embedding: Embedding::Real, threshold: 0.80, extra_toml: ROUTES.to_string(), ..Default::default() }
}

#[tokio::test]
async fn a_paraphrase_of_a_route_example_starts_at_its_rung() {
    let h = spawn_proxy(routed()).await;
    let r = chat(&h, &ask("Please refund my order")).await;
    assert_eq!(r.header("x-deja-model"), Some("mid"), "{:?}", r.headers);
    let r = chat(&h, &ask("Can you solve this differential equation for me?")).await;
    assert_eq!(r.header("x-deja-model"), Some("top"), "{:?}", r.headers);
    let r = chat(&h, &ask("What is the capital of France?")).await;
    assert_eq!(r.header("x-deja-model"), Some("cheap"), "{:?}", r.headers);
}

#[tokio::test]
async fn the_same_routed_question_is_an_exact_hit() {
    let h = spawn_proxy(routed()).await;
    let first = chat(&h, &ask("Please refund my order")).await;
    assert_eq!(first.header("x-deja-model"), Some("mid"));
    // Same text, same vector, same route: the exact key needs no route.
    assert_eq!(chat(&h, &ask("Please refund my order")).await.cache(), "exact");
    assert_eq!(h.mock.control.total_calls(), 1);
}
