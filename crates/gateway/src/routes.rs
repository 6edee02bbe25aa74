//! Semantic routes on the request path: the examples are embedded once per
//! configuration (start-up and reload); a request's question, already
//! embedded for the semantic cache, picks the route nearest to it.
//!
//! Routes reuse the semantic cache's vector: with the semantic cache off, or
//! for a request that skipped embedding (no trailing user text, a
//! `cache-control` that forbids storing, an embedding failure), no route
//! applies and the ladder starts where its other rules say.

use crate::config::Config;
use deja_embed::{EmbedError, Embedder};
use deja_router::{choose_route, EmbeddedRoute, Target};

/// The routes of each ladder with their examples embedded, by ladder name:
/// runtime data made from one configuration, swapped with it on reload.
pub type RouteVectors = std::collections::HashMap<String, Vec<EmbeddedRoute>>;

/// Embeds every route's examples, one batch per route.
pub fn embed_routes(config: &Config, embedder: &dyn Embedder) -> Result<RouteVectors, EmbedError> {
    let mut vectors = RouteVectors::new();
    for (ladder, routes) in &config.routes {
        let mut embedded = Vec::with_capacity(routes.len());
        for r in routes {
            let examples = embedder.embed_batch(&r.examples)?;
            embedded.push(EmbeddedRoute { start_at: r.start_at.clone(), threshold: r.threshold, examples });
        }
        vectors.insert(ladder.clone(), embedded);
    }
    Ok(vectors)
}

/// The rung the route nearest to a question's `vector` starts at, when
/// `model` names a ladder with routes.
pub fn choose(routes: &RouteVectors, config: &Config, model: &str, vector: &[f32]) -> Option<String> {
    let Some(Target::Ladder(l)) = config.catalog.resolve(model) else {
        return None;
    };
    let ladder = config.catalog.ladder(l)?;
    let choice = choose_route(routes.get(&ladder.name)?, vector)?;
    tracing::debug!(ladder = %ladder.name, route = choice.index, similarity = choice.similarity, start_at = choice.start_at, "semantic route");
    Some(choice.start_at.to_string())
}
