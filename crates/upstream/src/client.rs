use crate::error::UpstreamError;
use crate::response::UpstreamResponse;
use crate::retry_after::retry_after;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Error bodies are read for the client's benefit, up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// One request to one provider.
pub struct Attempt<'a> {
    /// e.g. `https://api.openai.com/v1`
    pub base_url: &'a str,
    /// e.g. `/chat/completions`
    pub path: &'a str,
    /// The provider's own key; `None` sends no key at all.
    pub api_key: Option<&'a str>,
    /// How the key (and any version header) is sent.
    pub dialect: Dialect,
    pub body: Bytes,
    pub first_byte_timeout: Duration,
    /// The whole attempt, body included, must end by then.
    pub deadline: Instant,
}

/// The headers a provider's API expects besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `Authorization: Bearer <key>`.
    #[default]
    OpenAi,
    /// `x-api-key: <key>` and `anthropic-version`, no `Authorization`.
    Anthropic,
    /// `x-goog-api-key: <key>` (never `?key=` in the URL), no `Authorization`.
    Gemini,
}

/// The Messages API version Deja's Anthropic translation follows.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    pub fn new() -> Result<Self, UpstreamError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Self { client })
    }

    /// Sends the attempt and waits for a 2xx response head. Any other status
    /// comes back as [`UpstreamError::Status`] with its (bounded) body.
    pub async fn send(&self, attempt: Attempt<'_>) -> Result<UpstreamResponse, UpstreamError> {
        let url = format!("{}{}", attempt.base_url.trim_end_matches('/'), attempt.path);
        let uri: http::Uri = url.parse().map_err(|_| UpstreamError::InvalidUrl(url.clone()))?;
        let mut req = http::Request::post(uri)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .header(USER_AGENT, concat!("deja/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(attempt.body))
            .map_err(|e| UpstreamError::InvalidUrl(e.to_string()))?;
        if attempt.dialect == Dialect::Anthropic {
            req.headers_mut().insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
        }
        if let Some(key) = attempt.api_key {
            let (name, value) = match attempt.dialect {
                Dialect::OpenAi => (AUTHORIZATION, format!("Bearer {key}")),
                Dialect::Anthropic => (http::HeaderName::from_static("x-api-key"), key.to_string()),
                Dialect::Gemini => (http::HeaderName::from_static("x-goog-api-key"), key.to_string()),
            };
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| UpstreamError::InvalidUrl("API key is not a valid header value".into()))?;
            value.set_sensitive(true);
            req.headers_mut().insert(name, value);
        }
        let first_byte_by = attempt.deadline.min(Instant::now() + attempt.first_byte_timeout);
        let response = match tokio::time::timeout_at(first_byte_by, self.client.request(req)).await {
            Err(_) if first_byte_by < attempt.deadline => return Err(UpstreamError::FirstByteTimeout),
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) => return Err(UpstreamError::Connect(describe(&e))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let headers = response.headers().clone();
        let mut resp = UpstreamResponse::new(status, headers, response.into_body(), attempt.deadline);
        if !(200..300).contains(&status) {
            let body = resp.collect(MAX_ERROR_BODY).await.unwrap_or_default();
            return Err(UpstreamError::Status { status, body, retry_after });
        }
        Ok(resp)
    }
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
