//! Upstream misbehaviour over real sockets: odd `Retry-After` values.

mod common;

use common::*;
use deja_mock_upstream::Fault;
use deja_testkit::spawn_proxy;

fn status_with_retry_after(status: u16, raw: &str) -> Fault {
    Fault::Status { status, retry_after_s: None, retry_after: Some(raw.to_string()) }
}

#[tokio::test]
async fn an_absurd_retry_after_falls_back_to_the_next_rung() {
    let h = spawn_proxy(exact_only()).await;
    h.mock.control.push_faults("cheap", [status_with_retry_after(429, "1e20")]);
    let r = chat(&h, &ask("absurd retry-after")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-deja-model"), Some("mid"));
    assert_eq!(r.header("x-deja-attempts"), Some("2"));
    assert_eq!(h.mock.control.calls("cheap"), 1);
}

#[tokio::test]
async fn no_retry_after_value_breaks_a_request() {
    let values = [
        "1e20",
        "-1",
        "NaN",
        "inf",
        "99999999999999999999999999",
        "0.5",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "soon",
    ];
    for v in values {
        let h = spawn_proxy(exact_only()).await;
        h.mock.control.push_faults("cheap", [status_with_retry_after(503, v)]);
        let r = chat(&h, &ask("any retry-after")).await;
        assert_eq!(r.status, 200, "Retry-After: {v}: {}", r.text);
        assert_eq!(r.header("x-deja-model"), Some("mid"), "Retry-After: {v}");
    }
}
