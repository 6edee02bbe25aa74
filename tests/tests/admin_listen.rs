//! `server.admin_listen`: the admin API, the dashboard and `/metrics` on an
//! address of their own, and client traffic alone on `listen`.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, TestConfig};

#[tokio::test]
async fn the_admin_api_and_metrics_answer_only_on_the_admin_address() {
    let h = spawn_proxy(TestConfig { admin_listen: true, ..exact_only() }).await;
    assert_ne!(h.admin_url("/"), h.url("/"), "two listeners");
    let get = |url: String| async move {
        client().get(url).bearer_auth("test-admin-token").send().await.expect("answer").status().as_u16()
    };
    // Client traffic on the client address only.
    assert_eq!(chat(&h, &ask("hello")).await.status, 200);
    let on_admin = client().post(h.admin_url("/v1/chat/completions")).json(&ask("hello")).send().await.expect("answer");
    assert_eq!(on_admin.status().as_u16(), 404);
    // The admin API, the dashboard and /metrics on the admin address only.
    for path in ["/admin/stats", "/admin/ui", "/metrics"] {
        assert_eq!(get(h.url(path)).await, 404, "{path} on the client address");
        assert_eq!(get(h.admin_url(path)).await, 200, "{path} on the admin address");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(h.url(path)).await, 200, "{path}");
        assert_eq!(get(h.admin_url(path)).await, 200, "{path}");
    }
}
