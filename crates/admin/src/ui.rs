//! The operator dashboard at `/admin/ui`: a static page, its script and its
//! stylesheet, compiled into the binary. They hold no data, so they are served
//! without the admin token; the page calls the admin API with the token the
//! operator types, and every one of those calls is authorised as usual.

use deja_api::{ApiError, ErrorKind};
use deja_gateway::reply::{self, Body};
use http::{header, HeaderValue, Response, StatusCode};

/// Scripts, styles, images and connections from this origin only; no inline
/// code, no framing, no plugins, forms post back here only.
pub const CSP: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// Whether `path` belongs to the dashboard (rather than the admin API).
pub fn is_ui_path(path: &str) -> bool {
    path == "/admin/ui" || path.starts_with("/admin/ui/")
}

/// The asset at `path`, or an OpenAI-shaped 404.
pub fn serve(path: &str) -> Response<Body> {
    let (body, content_type) = match path {
        "/admin/ui" | "/admin/ui/" | "/admin/ui/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/admin/ui/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/admin/ui/app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => {
            return reply::error(
                &ApiError::new(ErrorKind::NotFound, format!("no dashboard file {path}")).with_code("unknown_url"),
            )
        }
    };
    let mut r = Response::new(reply::full(body));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_code_and_loads_only_local_files() {
        assert!(!INDEX.contains("<script>"), "scripts are separate files");
        assert!(!INDEX.contains("style="), "no inline styles under the CSP");
        let handler = |w: &str| w.starts_with("on") && w.contains('=');
        assert!(!INDEX.split_whitespace().any(handler), "no inline event handlers");
        for text in [INDEX, SCRIPT, STYLE] {
            // The SVG namespace is a name, not something fetched.
            let text = text.replace("\"http://www.w3.org/2000/svg\"", "");
            assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"));
        }
        assert!(!SCRIPT.contains("innerHTML"), "data is written as text");
        assert!(!SCRIPT.contains("localStorage"), "the token stays in this tab");
    }

    #[test]
    fn ui_paths_are_recognised() {
        assert!(is_ui_path("/admin/ui") && is_ui_path("/admin/ui/app.js"));
        assert!(!is_ui_path("/admin/uix") && !is_ui_path("/admin/stats"));
    }
}
