//! What the gateway reads from a request's headers besides its cache policy.

use deja_api::{ApiError, Namespace};
use http::request::Parts;

/// A request header's trimmed value, if present and not empty.
pub fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The similarity floor a client asked for with `x-deja-threshold`: it
/// raises every semantic route's threshold (1.0: identical text only).
pub fn client_floor(parts: &Parts) -> Option<f32> {
    header(parts, "x-deja-threshold").and_then(|v| v.parse::<f32>().ok()).filter(|v| v.is_finite())
}

/// The request's namespace: the tenant narrowed by `x-deja-namespace`. A
/// header that is not visible ASCII is refused like any other bad value,
/// never silently ignored (that would widen the scope to the tenant's).
pub fn namespace(parts: &Parts, tenant: Option<&str>) -> Result<Namespace, ApiError> {
    let raw = parts.headers.get("x-deja-namespace");
    let narrowing = match raw.map(|v| v.to_str()) {
        Some(Err(_)) => Some("\u{fffd}"),
        Some(Ok(v)) => Some(v.trim()).filter(|v| !v.is_empty()),
        None => None,
    };
    Namespace::for_request(tenant, narrowing)
}
