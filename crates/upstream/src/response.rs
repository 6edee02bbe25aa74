use crate::error::UpstreamError;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::time::Duration;
use tokio::time::Instant;

/// A 2xx response head with its body still to read, chunk by chunk, as the
/// provider sends it: nothing is buffered on the way to the client.
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: Incoming,
    deadline: Instant,
}

impl UpstreamResponse {
    pub(crate) fn new(status: u16, headers: http::HeaderMap, body: Incoming, deadline: Instant) -> Self {
        Self { status, headers, body, deadline }
    }

    pub fn is_event_stream(&self) -> bool {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    /// The next data chunk, `None` at the end. Fails if nothing arrives within
    /// `idle` or the attempt's deadline passes.
    pub async fn next_chunk(&mut self, idle: Duration) -> Result<Option<Bytes>, UpstreamError> {
        loop {
            let by = self.deadline.min(Instant::now() + idle);
            let frame = match tokio::time::timeout_at(by, self.body.frame()).await {
                Err(_) if by < self.deadline => return Err(UpstreamError::FirstByteTimeout),
                Err(_) => return Err(UpstreamError::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(UpstreamError::Body(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
    }

    /// The whole body, up to `max` bytes, before the deadline.
    pub async fn collect(&mut self, max: usize) -> Result<Bytes, UpstreamError> {
        let mut buf = BytesMut::new();
        let idle = self.deadline.saturating_duration_since(Instant::now());
        while let Some(chunk) = self.next_chunk(idle).await? {
            if buf.len() + chunk.len() > max {
                return Err(UpstreamError::TooLarge(max));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}
