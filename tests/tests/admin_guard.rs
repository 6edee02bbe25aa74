//! Guessing the admin token is slowed down: after ten wrong tokens from one
//! address within a minute, that address's admin requests are refused with
//! 429 and `Retry-After`, the right token included, while client traffic
//! goes on.

mod common;

use common::*;
use deja_testkit::spawn_proxy;

#[tokio::test]
async fn repeated_wrong_admin_tokens_lock_the_address_out() {
    let h = spawn_proxy(exact_only()).await;
    let get = |token: &'static str| {
        let url = h.url("/admin/stats");
        async move { client().get(url).bearer_auth(token).send().await.expect("answer") }
    };
    assert_eq!(get("test-admin-token").await.status(), 200);
    for i in 0..10 {
        assert_eq!(get("guess").await.status(), 401, "guess {i}");
    }
    let locked = get("test-admin-token").await;
    assert_eq!(locked.status(), 429);
    let wait: u64 = locked.headers()["retry-after"].to_str().ok().and_then(|v| v.parse().ok()).expect("retry-after");
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = locked.json().await.expect("json");
    assert_eq!(body["error"]["code"], "admin_locked");
    assert_eq!(chat(&h, &ask("still served?")).await.status, 200, "client traffic is not held up");
}
