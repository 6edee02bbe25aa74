//! Builds the request path's stages from the state's handles: each stage
//! gets what it needs and nothing else.

use crate::answer::Shared;
use crate::hits::Hits;
use crate::ledger::Ledger;
use crate::lookups::Lookups;
use crate::metrics::Metrics;
use crate::ports::Ports;
use crate::slo::{Sampler, Tracker};
use crate::stages::{accept, coalesce, exact, plan, semantic, store, upstream, AnswerSink, Stages};
use crate::verify::Rejections;
use crate::walker::Calls;
use deja_cache::conversation::ConversationIndex;
use deja_cache::{Coalescer, SemanticIndex, SpanVectors};
use deja_embed::{EmbedService, Embedder};
use deja_store::Store;
use std::sync::Arc;

/// Everything the stages are made from.
pub(crate) struct Handles {
    pub store: Arc<Store>,
    pub index: Arc<SemanticIndex>,
    pub conversations: Arc<ConversationIndex>,
    pub embed: Option<EmbedService>,
    pub model: Option<Arc<dyn Embedder>>,
    pub spans: Arc<SpanVectors>,
    pub calls: Arc<Calls>,
    pub metrics: Arc<Metrics>,
    pub ledger: Arc<Ledger>,
    pub lookups: Arc<Lookups>,
    pub slo: Arc<Tracker>,
    pub rejections: Arc<Rejections>,
    pub coalescer: Arc<Coalescer<Shared>>,
    pub sweep_now: Arc<tokio::sync::Notify>,
    pub ports: Ports,
}

impl Handles {
    pub fn stages(&self) -> Stages {
        let sampler = Arc::new(Sampler {
            calls: self.calls.clone(),
            embed: self.embed.clone(),
            tracker: self.slo.clone(),
            metrics: self.metrics.clone(),
        });
        let hits = Arc::new(Hits { ledger: self.ledger.clone(), metrics: self.metrics.clone(), sampler });
        let store = Arc::new(store::Remember {
            store: self.store.clone(),
            index: self.index.clone(),
            conversations: self.conversations.clone(),
            shared: self.ports.shared.clone(),
            metrics: self.metrics.clone(),
            sweep_now: self.sweep_now.clone(),
        });
        Stages {
            accept: accept::Accept::new(self.ledger.clone()),
            exact: exact::Exact { store: self.store.clone(), shared: self.ports.shared.clone(), hits: hits.clone() },
            semantic: semantic::Semantic {
                embed: self.embed.clone(),
                model: self.model.clone(),
                spans: self.spans.clone(),
                store: self.store.clone(),
                index: self.index.clone(),
                conversations: self.conversations.clone(),
                slo: self.slo.clone(),
                rejections: self.rejections.clone(),
                calls: self.calls.clone(),
                lookups: self.lookups.clone(),
                hits: hits.clone(),
            },
            plan: plan::Plan { calls: self.calls.clone() },
            coalesce: coalesce::Coalesce {
                coalescer: self.coalescer.clone(),
                feeds: Arc::default(),
                lock: self.ports.lock.clone(),
                hits,
            },
            upstream: Arc::new(upstream::Upstream {
                calls: self.calls.clone(),
                sink: store.clone() as Arc<dyn AnswerSink>,
                metrics: self.metrics.clone(),
            }),
            store,
        }
    }
}
