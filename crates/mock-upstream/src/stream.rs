//! What every simulated dialect's stream shares: the faults that strike
//! mid-stream, the chunk delay, and the event-stream response itself.

use crate::control::{Fault, MockControl};
use bytes::Bytes;
use http::Response;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;
pub(crate) type FrameTx = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Applies the fault that strikes before event `i`, if any. True when the
/// stream ends there.
pub(crate) async fn strike(fault: &Option<Fault>, i: usize, tx: &FrameTx, control: &MockControl) -> bool {
    match fault {
        Some(Fault::StallAfter { chunks }) if i == *chunks => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            true
        }
        Some(Fault::CutAfter { chunks }) if i == *chunks => {
            // Let what was sent reach the wire before the connection drops.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Err(std::io::Error::other("cut"))).await;
            true
        }
        Some(Fault::EndlessEventAfter { chunks }) if i == *chunks => {
            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"data: {\"endless\": \"")))).await;
            let filler = Bytes::from(vec![b'x'; 64 * 1024]);
            for _ in 0..4096 {
                if tx.send(Ok(Frame::data(filler.clone()))).await.is_err() {
                    break;
                }
                control.count_endless_bytes(filler.len());
            }
            true
        }
        _ => false,
    }
}

/// A `text/event-stream` response fed by `rx`.
pub(crate) fn response(rx: mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"));
    r
}

/// Streams `events`, each framed by `frame`, with the mock's chunk delay and
/// the call's mid-stream fault.
pub(crate) fn events(
    control: &MockControl,
    fault: Option<Fault>,
    events: Vec<Value>,
    frame: fn(&Value) -> Bytes,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel(16);
    let delay = control.chunk_delay();
    let control = control.clone();
    tokio::spawn(async move {
        for (i, event) in events.iter().enumerate() {
            if strike(&fault, i, &tx, &control).await {
                return;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(Frame::data(frame(event)))).await.is_err() {
                return;
            }
        }
    });
    response(rx)
}
