//! Who may call: client keys for the API, a bearer token for the admin API.
//! Comparisons are constant-time, and keys never leave this file in a log.

use deja_api::{ApiError, ErrorKind};
use http::request::Parts;
use subtle::ConstantTimeEq;

pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn api_key_header(parts: &Parts) -> Option<&str> {
    parts.headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The caller's tenant key when client keys are configured; `Ok(None)` when
/// the gateway is open.
pub fn client<'a>(parts: &'a Parts, keys: Option<&[String]>) -> Result<Option<&'a str>, ApiError> {
    let Some(keys) = keys else { return Ok(None) };
    // Anthropic's SDKs send the key as `x-api-key`; OpenAI's as a bearer token.
    let presented = bearer(parts).or_else(|| api_key_header(parts)).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unauthorized,
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
        .with_code("invalid_api_key")
    })?;
    // Check every key so timing does not reveal which one matched.
    let matched = keys.iter().fold(false, |acc, k| acc | equal(k, presented));
    if matched {
        Ok(Some(presented))
    } else {
        Err(ApiError::new(ErrorKind::Unauthorized, "incorrect API key provided").with_code("invalid_api_key"))
    }
}

pub fn admin(parts: &Parts, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Err(ApiError::new(ErrorKind::NotFound, "the admin API is disabled: its token variable is unset")
            .with_code("admin_disabled"));
    };
    match bearer(parts) {
        Some(t) if equal(t, token) => Ok(()),
        _ => Err(ApiError::new(ErrorKind::Unauthorized, "the admin API needs `Authorization: Bearer <admin token>`")
            .with_code("invalid_admin_token")),
    }
}

/// `/metrics` with `server.metrics_token_env` set: that token as a bearer.
pub fn metrics(parts: &Parts, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    match bearer(parts) {
        Some(t) if equal(t, token) => Ok(()),
        _ => Err(ApiError::new(ErrorKind::Unauthorized, "/metrics needs `Authorization: Bearer <metrics token>`")
            .with_code("invalid_metrics_token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = http::Request::get("/metrics");
        if let Some(a) = auth {
            b = b.header(http::header::AUTHORIZATION, a);
        }
        b.body(()).map(|r| r.into_parts().0).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn metrics_need_their_token_only_when_one_is_set() {
        assert!(metrics(&parts(None), None).is_ok(), "open by default");
        assert!(metrics(&parts(None), Some("t0k")).is_err());
        assert!(metrics(&parts(Some("Bearer wrong")), Some("t0k")).is_err());
        assert!(metrics(&parts(Some("Bearer t0k")), Some("t0k")).is_ok());
        let e = metrics(&parts(None), Some("t0k")).err().map(|e| e.status());
        assert_eq!(e, Some(401));
    }
}
