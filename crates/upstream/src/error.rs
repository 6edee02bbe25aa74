use bytes::Bytes;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid upstream URL: {0}")]
    InvalidUrl(String),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no response within the first-byte timeout")]
    FirstByteTimeout,
    #[error("the attempt ran past its total timeout")]
    Timeout,
    #[error("the upstream answered {status}")]
    Status { status: u16, body: Bytes, retry_after: Option<Duration> },
    #[error("the upstream connection broke: {0}")]
    Body(String),
    #[error("the upstream response exceeded {0} bytes")]
    TooLarge(usize),
}
