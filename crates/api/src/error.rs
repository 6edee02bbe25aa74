//! The OpenAI-shaped error body: `{"error": {"message", "type", "param", "code"}}`.
//!
//! Every failure Deja answers with goes through [`ApiError`], so clients and
//! SDKs see the status and shape they already handle.

use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RateLimited,
    /// A client key past its USD budget (`[[clients]]`).
    InsufficientQuota,
    Internal,
    BadGateway,
    Unavailable,
    GatewayTimeout,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::RateLimited | Self::InsufficientQuota => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::Unavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }

    /// The `type` field OpenAI uses for this class of error.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::NotFound | Self::MethodNotAllowed | Self::PayloadTooLarge => {
                "invalid_request_error"
            }
            Self::Unauthorized => "authentication_error",
            Self::RateLimited => "rate_limit_error",
            Self::InsufficientQuota => "insufficient_quota",
            Self::Internal => "server_error",
            Self::BadGateway | Self::Unavailable | Self::GatewayTimeout => "upstream_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Overrides `kind.status()` when an upstream 4xx is passed through.
    pub status: Option<u16>,
    pub message: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, status: None, message: message.into(), code: None, param: None }
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let mut e = Self::new(ErrorKind::InvalidRequest, message);
        e.param = param.map(str::to_string);
        e
    }
    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.kind.status())
    }

    /// A low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::InsufficientQuota => "insufficient_quota",
            ErrorKind::Internal => "internal",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::GatewayTimeout => "gateway_timeout",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind.type_name(),
                "param": self.param,
                "code": self.code,
            }
        })
    }

    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status(), self.kind.type_name(), self.message)
    }
}

impl std::error::Error for ApiError {}
