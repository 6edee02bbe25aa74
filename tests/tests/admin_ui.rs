//! The dashboard at `/admin/ui`: static files served with a strict CSP and
//! the right content types, while the data it shows stays behind the token.

mod common;

use common::*;
use deja_testkit::spawn_proxy;

#[tokio::test]
async fn the_dashboard_files_are_served_with_a_csp_and_their_content_types() {
    let h = spawn_proxy(exact_only()).await;
    for (path, content_type, marker) in [
        ("/admin/ui", "text/html", "<form id=\"login\""),
        ("/admin/ui/", "text/html", "<form id=\"login\""),
        ("/admin/ui/app.js", "text/javascript", "sessionStorage"),
        ("/admin/ui/app.css", "text/css", ".cards"),
    ] {
        // No token: the files hold no data.
        let r = client().get(h.url(path)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(header("content-type").starts_with(content_type), "{path}: {}", header("content-type"));
        assert!(header("content-security-policy").starts_with("default-src 'self'"), "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let body = r.text().await.expect("body");
        assert!(body.contains(marker), "{path}");
    }
    let page = client().get(h.url("/admin/ui")).send().await.expect("answer").text().await.expect("body");
    assert!(page.contains("src=\"/admin/ui/app.js\""), "the script is a separate file");
    assert!(!page.contains("<script>"), "no inline script");

    let r = client().get(h.url("/admin/ui/missing.js")).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn the_data_the_dashboard_shows_needs_the_token() {
    let h = spawn_proxy(exact_only()).await;
    for path in ["/admin/stats", "/admin/cache?limit=100"] {
        let r = client().get(h.url(path)).send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client().get(h.url(path)).bearer_auth("test-admin-token").send().await.expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // Only GET serves files: anything else under /admin/ui is the admin API's, behind the token.
    let r = client().post(h.url("/admin/ui")).body("x").send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 401);
}
