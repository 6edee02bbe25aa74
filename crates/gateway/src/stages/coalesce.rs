//! Coalesce: of identical requests in flight, one calls upstream and the
//! others wait for its answer: on this replica (a streaming follower reads
//! the leader's stream as it comes), and across the fleet ([cluster]).

use super::{Accepted, Leading, Planned, Step};
use crate::answer::Shared;
use crate::cache_control::CacheMode;
use crate::feed::{Feed, Feeds};
use crate::hits::Hits;
use crate::ports::{FleetLock, Turn};
use crate::reply::{self, Outcome};
use crate::respond;
use deja_api::{ApiError, ErrorKind};
use deja_cache::{Coalescer, Role};
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

pub struct Coalesce {
    pub coalescer: Arc<Coalescer<Shared>>,
    pub feeds: Arc<Feeds>,
    pub lock: Option<Arc<dyn FleetLock>>,
    pub hits: Arc<Hits>,
}

impl Coalesce {
    pub async fn run(&self, request: &Accepted, planned: &Planned) -> Step<Leading> {
        let alone = Leading { leader: None, feed: None, fleet_lock: None };
        if planned.policy.mode != CacheMode::Normal {
            return Step::Next(alone);
        }
        let stream = request.req.is_stream();
        let (role, live) = self.feeds.join(request.key, || self.coalescer.join(request.key), stream);
        let (leader, feed) = match (role, live) {
            (Role::Leader(l), live) => (l, live),
            // A streaming follower of a streaming leader reads its frames as they come.
            (Role::Follower(rx), Some(live)) if stream => {
                return Step::Answered(self.follow_stream(request, live, rx).await)
            }
            (Role::Follower(mut rx), _) => return Step::Answered(self.followed(request, rx.recv().await)),
        };
        // Across the fleet too: one replica calls upstream, the others wait for its answer.
        let turn = match &self.lock {
            Some(lock) => lock.turn(request.namespace.as_str(), &request.key).await,
            None => Turn::Call(None),
        };
        match turn {
            Turn::Answered(answer) => {
                leader.publish(Ok(answer.clone()));
                Step::Answered(self.hits.coalesced(request, &answer))
            }
            Turn::Call(fleet_lock) => Step::Next(Leading { leader: Some(leader), feed, fleet_lock }),
        }
    }

    /// Reads the stream of the identical streaming request in flight as it
    /// comes: its first frame arrives with the leader's. Counted as an exact
    /// hit once the whole answer is read.
    async fn follow_stream(&self, request: &Accepted, feed: Arc<Feed>, mut rx: broadcast::Receiver<Shared>) -> Outcome {
        // The leader may be answered without streaming (by another replica) or vanish.
        let head = tokio::select! {
            biased;
            head = feed.head() => head,
            shared = rx.recv() => return self.followed(request, shared),
        };
        let head = match head {
            Ok(head) => head,
            Err(e) => return Outcome::error(&e),
        };
        let ledger = self.hits.ledger.clone();
        let (namespace, model) = (request.namespace.as_str().to_string(), head.model.clone());
        let on_done = Box::new(move |cost_usd: f64| ledger.coalesced(&namespace, &model, cost_usd));
        let mut response = reply::event_stream(feed.body(request.req.wants_usage_chunk(), Some(on_done)));
        respond::miss_headers(&mut response, "coalesced", &head.model, 0, Some(0.0));
        Outcome { response, cache: "coalesced" }
    }

    /// Answers with what the identical request waited on got.
    fn followed(&self, request: &Accepted, shared: Result<Shared, RecvError>) -> Outcome {
        match shared {
            Ok(Ok(answer)) => self.hits.coalesced(request, &answer),
            Ok(Err(e)) => Outcome::error(&e),
            Err(_) => Outcome::error(&ApiError::new(
                ErrorKind::BadGateway,
                "the identical request this one waited on ended without an answer",
            )),
        }
    }
}
