//! The `x-request-id` every request is known by in logs and in its answer:
//! the client's own when it sent a usable one, else `req_` followed by this
//! process's start time and a sequence number, both in hex.

use http::{HeaderValue, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use tower_http::request_id::{MakeRequestId, RequestId};

/// The longest client-sent id kept; a longer one is replaced.
const MAX_CLIENT_ID: usize = 128;

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// Distinguishes this process's ids from an earlier run's.
static BOOT: LazyLock<u32> = LazyLock::new(|| deja_cache::now_ms() as u32);

fn next() -> String {
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let boot = *BOOT;
    format!("req_{boot:08x}{seq:08x}")
}

/// Makes an id for a request that came without a usable one.
#[derive(Debug, Clone, Copy)]
pub struct Sequential;

impl MakeRequestId for Sequential {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&next()).ok().map(RequestId::new)
    }
}

/// Drops a client's `x-request-id` that is too long or not printable text,
/// so [`Sequential`] makes one in its place: the id goes into every log line,
/// and a client should not be able to flood or garble them.
pub fn refuse_unfit<B>(mut req: Request<B>) -> Request<B> {
    let fit = req.headers().get("x-request-id").map(|v| v.to_str().is_ok_and(|s| s.len() <= MAX_CLIENT_ID));
    if fit == Some(false) {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// The id `SetRequestIdLayer` gave this request before any handler runs.
pub fn of(extensions: &http::Extensions) -> String {
    extensions.get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &[u8]) -> Request<()> {
        let mut req = Request::new(());
        req.headers_mut().insert("x-request-id", HeaderValue::from_bytes(id).expect("a header value"));
        req
    }

    #[test]
    fn a_short_printable_client_id_is_kept() {
        let req = refuse_unfit(with_id(&[b'a'; MAX_CLIENT_ID]));
        assert_eq!(req.headers().get("x-request-id").map(HeaderValue::len), Some(MAX_CLIENT_ID));
    }

    #[test]
    fn a_long_or_unprintable_client_id_is_dropped() {
        assert!(refuse_unfit(with_id(&[b'a'; MAX_CLIENT_ID + 1])).headers().get("x-request-id").is_none());
        assert!(refuse_unfit(with_id("é".as_bytes())).headers().get("x-request-id").is_none());
    }

    #[test]
    fn made_ids_keep_their_shape_and_differ() {
        let (a, b) = (next(), next());
        assert_ne!(a, b);
        assert!(a.starts_with("req_") && a.len() == 20, "{a}");
    }
}
