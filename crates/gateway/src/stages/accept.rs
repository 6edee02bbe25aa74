//! Accept: parse the request, check its target exists and the client may
//! use it, read the client's cache policy, and compute its keys.

use super::{Accepted, ConversationKey};
use crate::cache_control::{CacheMode, CachePolicy};
use crate::config::Config;
use crate::headers::{client_floor, header, namespace};
use crate::ledger::Ledger;
use crate::routes::RouteVectors;
use deja_api::conversation::split;
use deja_api::key::{conversation_fingerprint, routed_chat_keys};
use deja_api::{ApiError, ChatRequest, ErrorKind};
use deja_router::{PlanError, Target};
use http::request::Parts;
use std::sync::Arc;
use std::time::Instant;

pub struct Accept {
    ledger: Arc<Ledger>,
}

/// The request as it reached the gateway, with the configuration it is served under.
pub struct Arrived<'a> {
    pub config: Arc<Config>,
    pub routes: Arc<RouteVectors>,
    pub parts: &'a Parts,
    pub tenant: Option<&'a str>,
    pub body: &'a [u8],
    pub request_id: String,
    pub started: Instant,
}

impl Accept {
    pub fn new(ledger: Arc<Ledger>) -> Self {
        Self { ledger }
    }

    pub fn run(&self, a: Arrived<'_>) -> Result<Accepted, ApiError> {
        let Arrived { config, routes, parts, tenant, body, request_id, started } = a;
        let req = ChatRequest::parse(body)?;
        let Some(target) = config.catalog.resolve(&req.model) else {
            return Err(ApiError::new(ErrorKind::NotFound, PlanError::NotFound(req.model.clone()).to_string())
                .with_code("model_not_found"));
        };
        crate::budget::check_allowed(&config, tenant, &req.model)?;
        let mut policy = CachePolicy::from_headers(&parts.headers)?;
        if !config.cache.enabled {
            policy.mode = CacheMode::Bypass;
        }
        let namespace = namespace(parts, tenant)?;
        // A task tag that moves the starting rung changes who answers: it is keyed.
        let task = header(parts, "x-deja-task").or_else(|| req.metadata_task());
        let task_rung = match (target, task) {
            (Target::Ladder(l), Some(t)) => {
                config.catalog.ladders.get(l).and_then(|l| l.tasks.get(t)).map(String::as_str)
            }
            _ => None,
        };
        let (key, fingerprint) = routed_chat_keys(&namespace, &req, task_rung);
        let conversation = match config.cache.conversations {
            Some(_) => conversation_fingerprint(&namespace, &req, task_rung)
                .zip(split(&req.messages))
                .map(|(coarse, c)| ConversationKey { coarse, history_text: c.history_text() }),
            None => None,
        };
        self.ledger.request();
        Ok(Accepted {
            budget: crate::budget::of(&config, tenant),
            question: req.last_user_text(),
            task: task.map(str::to_string),
            floor: client_floor(parts),
            config,
            routes,
            req,
            namespace,
            key,
            fingerprint,
            policy,
            conversation,
            started,
            request_id,
        })
    }
}
