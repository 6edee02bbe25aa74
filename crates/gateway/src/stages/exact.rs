//! Exact: the request's own key, then a learned alias (a verified
//! paraphrase), then another replica's answer ([cluster]).

use super::{Accepted, Step};
use crate::hits::{Found, Hits};
use crate::ports::SharedTier;
use crate::reply;
use crate::respond::HitKind;
use deja_cache::exact;
use deja_store::Store;
use std::sync::Arc;

pub struct Exact {
    pub store: Arc<Store>,
    pub shared: Option<Arc<dyn SharedTier>>,
    pub hits: Arc<Hits>,
}

impl Exact {
    pub async fn run(&self, request: &Accepted) -> Step<()> {
        if !request.policy.reads() {
            return Step::Next(());
        }
        let now = deja_cache::now_ms();
        let found = |kind, entry| Found { kind, entry, now_ms: now, verification_usd: None, route: None };
        // A learned alias is a semantic match: the client's floor applies to it.
        let floor = request.floor;
        let (key, namespace, fresh) = (&request.key, request.namespace.as_str(), &request.policy.fresh);
        match exact::lookup_or_alias(&self.store, key, namespace, floor, fresh, now) {
            Ok(Some((entry, _, exact::Via::Key))) => {
                return Step::Answered(self.hits.entry(request, found(HitKind::Exact, &entry)));
            }
            Ok(Some((entry, _, exact::Via::Alias { similarity }))) => {
                let mut out = self.hits.entry(request, found(HitKind::Semantic { similarity }, &entry));
                reply::set_header(&mut out.response, "x-deja-verified", "alias");
                return Step::Answered(out);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "exact lookup failed; treating as a miss"),
        }
        if let Some(shared) = &self.shared {
            if let Some(entry) = shared.lookup(key, namespace, now).await {
                if fresh.accepts(&entry, now) {
                    return Step::Answered(self.hits.entry(request, found(HitKind::Exact, &entry)));
                }
            }
        }
        Step::Next(())
    }
}
