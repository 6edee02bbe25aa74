//! The client API's POST routes: the caller's key, the body, the rate limit
//! and the deadline, then the handler. Each refusal is shaped for the door
//! the request came through.

use super::body::read_body;
use super::outcome::err;
use super::{deadline, Edge};
use crate::doors::{self, Door};
use crate::rate;
use deja_api::ApiError;
use deja_gateway::reply::Outcome;
use deja_gateway::{auth, embeddings, pipeline};
use http::request::Parts;
use hyper::body::Incoming;

/// What a POST to the client API is for.
#[derive(Clone, Copy)]
pub enum Endpoint {
    Chat,
    Embeddings,
    Door(Door),
}

impl Endpoint {
    pub fn of(path: &str) -> Option<Self> {
        match path {
            "/v1/chat/completions" => Some(Endpoint::Chat),
            "/v1/embeddings" => Some(Endpoint::Embeddings),
            "/v1/responses" => Some(Endpoint::Door(Door::Responses)),
            "/v1/messages" => Some(Endpoint::Door(Door::Messages)),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Door(door) => door.endpoint(),
        }
    }

    /// An error in the shape this endpoint's clients parse.
    fn refuse(self, e: ApiError) -> Outcome {
        match self {
            Endpoint::Door(door) => door.error(&e),
            _ => err(e),
        }
    }
}

pub async fn serve(edge: &Edge, endpoint: Endpoint, parts: &Parts, body: Incoming, id: String) -> Outcome {
    let state = &edge.state;
    let config = state.config();
    let limits = &config.limits;
    let work = async {
        let tenant = match auth::client(parts, config.client_keys()) {
            Ok(t) => t,
            Err(e) => return endpoint.refuse(e),
        };
        let bytes = match read_body(parts, body, config.server.max_body_bytes, limits.body_read_timeout).await {
            Ok(b) => b,
            Err(e) => return endpoint.refuse(e),
        };
        let rate = match edge.rates.check(config.rate_limit(tenant), tenant, rate::estimate_tokens(&bytes)) {
            Ok(headers) => headers,
            Err(refused) => match endpoint {
                Endpoint::Door(door @ Door::Messages) => {
                    let mut out = door.error(&refused.error());
                    refused.add_headers(&mut out.response);
                    return out;
                }
                _ => return Outcome { response: refused.response(), cache: "error" },
            },
        };
        let mut outcome = match endpoint {
            Endpoint::Chat => pipeline::chat(state.clone(), config.clone(), parts, tenant, &bytes, id).await,
            Endpoint::Embeddings => embeddings::embeddings(state.clone(), config.clone(), parts, tenant, &bytes).await,
            Endpoint::Door(door) => doors::serve(door, state.clone(), config.clone(), parts, tenant, &bytes, id).await,
        };
        rate::add_headers(&mut outcome.response, &rate);
        outcome
    };
    deadline::within(limits.request_timeout, |e| endpoint.refuse(e), work).await
}

/// Anthropic's `POST /v1/messages/count_tokens`: no deadline, no rate limit.
pub async fn count_tokens(edge: &Edge, parts: &Parts, body: Incoming) -> Outcome {
    let config = edge.state.config();
    if let Err(e) = auth::client(parts, config.client_keys()) {
        return Door::Messages.error(&e);
    }
    match read_body(parts, body, config.server.max_body_bytes, config.limits.body_read_timeout).await {
        Ok(bytes) => doors::count_tokens(&bytes),
        Err(e) => Door::Messages.error(&e),
    }
}
