//! Request bodies: read whole, within `server.max_body_bytes` and
//! `limits.body_read_timeout`, refused with OpenAI-shaped 413 and 408s.
//!
//! Only the routes that take a body read one, so a limit applies where a
//! body is read rather than to every request as `RequestBodyLimitLayer` would.

use bytes::Bytes;
use deja_api::{ApiError, ErrorKind};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::time::Duration;

pub async fn read_body(
    parts: &http::request::Parts,
    body: Incoming,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(ErrorKind::PayloadTooLarge, format!("the request body exceeds {max} bytes"))
            .with_code("request_too_large")
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let Ok(read) = tokio::time::timeout(timeout, Limited::new(body, max).collect()).await else {
        return Err(ApiError::invalid_request(format!("the request body did not arrive within {timeout:?}"), None)
            .with_status(408)
            .with_code("request_timeout"));
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(ApiError::invalid_request(format!("could not read the request body: {e}"), None)),
    }
}

/// After a 408 the rest of the body may still be on its way: the connection
/// is closed rather than kept waiting for it.
pub fn close_after_timeout<B>(mut response: Response<B>) -> Response<B> {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        response.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
