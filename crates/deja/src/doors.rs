//! The Responses and Messages doors on the listener: a door request is
//! translated into the chat request it means, answered by the chat pipeline
//! like any other (cache, ladder, budgets, counters), and the answer —
//! whole, streamed or an error — reshaped into the door's format.

use bytes::Bytes;
use deja_api::sse::SseParser;
use deja_api::ApiError;
use deja_doors::{messages, responses, DoorError, Shaper};
use deja_gateway::reply::{self, Body, Outcome};
use deja_gateway::state::AppState;
use deja_gateway::{pipeline, Config};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// OpenAI's `POST /v1/responses`.
    Responses,
    /// Anthropic's `POST /v1/messages`.
    Messages,
}

impl Door {
    pub fn endpoint(self) -> &'static str {
        match self {
            Door::Responses => "responses",
            Door::Messages => "messages",
        }
    }

    /// An error in the shape this door's clients parse.
    pub fn error(self, e: &ApiError) -> Outcome {
        match self {
            Door::Responses => Outcome::error(e),
            Door::Messages => {
                let shaped = messages::error(e.status(), &e.to_json());
                Outcome { response: door_error(shaped), cache: "error" }
            }
        }
    }
}

/// Serves one door request whose body has been read and whose caller passed
/// authentication and rate limits.
pub async fn serve(
    door: Door,
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &http::request::Parts,
    tenant: Option<&str>,
    body: &[u8],
    request_id: String,
) -> Outcome {
    match door {
        Door::Responses => {
            let translated = match responses::translate(body) {
                Ok(t) => t,
                Err(e) => return door.error(&e),
            };
            let chat = translated.chat.to_string();
            let outcome = pipeline::chat(state, config, parts, tenant, chat.as_bytes(), request_id).await;
            let echo = translated.echo;
            reshape(outcome, |v| responses::answer(&echo, v), || responses::shaper(echo.clone()), None).await
        }
        Door::Messages => {
            let translated = match messages::translate(body) {
                Ok(t) => t,
                Err(e) => return door.error(&e),
            };
            let chat = translated.chat.to_string();
            let outcome = pipeline::chat(state, config, parts, tenant, chat.as_bytes(), request_id).await;
            let echo = translated.echo;
            reshape(outcome, |v| messages::answer(&echo, v), || messages::shaper(echo.clone()), Some(messages::error))
                .await
        }
    }
}

/// `POST /v1/messages/count_tokens`: answered here, no upstream call.
pub fn count_tokens(body: &[u8]) -> Outcome {
    match messages::count_tokens(body) {
        Ok(v) => Outcome { response: reply::json(StatusCode::OK, &v), cache: "none" },
        Err(e) => Door::Messages.error(&e),
    }
}

/// Reshapes the chat pipeline's answer: a stream event by event, a whole
/// answer or an error at once. Headers (`x-deja-*`, rate limits) are kept.
async fn reshape(
    outcome: Outcome,
    answer: impl FnOnce(&Value) -> Value,
    shaper: impl FnOnce() -> Box<dyn Shaper>,
    error: Option<fn(u16, &Value) -> DoorError>,
) -> Outcome {
    let Outcome { response, cache } = outcome;
    let (mut head, body) = response.into_parts();
    let streamed = head
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed && head.status.is_success() {
        return Outcome { response: Response::from_parts(head, shape_stream(body, shaper())), cache };
    }
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => Bytes::from(
            ApiError::new(deja_api::ErrorKind::Internal, format!("the answer could not be read: {e}")).to_body(),
        ),
    };
    head.headers.remove(CONTENT_LENGTH);
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let status = head.status.as_u16();
    let reshaped = if head.status.is_success() {
        answer(&value)
    } else if let Some(error) = error {
        let (status, body) = error(status, &value);
        head.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        body
    } else {
        return Outcome { response: Response::from_parts(head, reply::full(bytes)), cache };
    };
    Outcome { response: Response::from_parts(head, reply::full(reshaped.to_string())), cache }
}

fn door_error((status, body): DoorError) -> Response<Body> {
    reply::json(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &body)
}

/// Reads the chat stream as it arrives and writes the door's events: each
/// chat chunk is reshaped as soon as it is complete, so the door's stream is
/// as unbuffered as chat's. A client that goes away drops the chat stream too.
fn shape_stream(mut chat: Body, mut shaper: Box<dyn Shaper>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut parser = SseParser::new();
        let send = |events: Vec<deja_doors::Event>| {
            let tx = tx.clone();
            async move {
                for event in events {
                    if tx.send(event.frame()).await.is_err() {
                        return false;
                    }
                }
                true
            }
        };
        'read: while let Some(frame) = chat.frame().await {
            let Ok(frame) = frame else { break };
            let Ok(data) = frame.into_data() else { continue };
            let Ok(payloads) = parser.push(&data) else { break };
            for payload in payloads {
                if payload == deja_api::sse::DONE {
                    continue;
                }
                let Ok(chunk) = serde_json::from_str::<Value>(&payload) else { continue };
                if !send(shaper.chunk(&chunk)).await {
                    break 'read;
                }
            }
        }
        send(shaper.end()).await;
    });
    reply::channel_body(rx)
}
