//! The life of a chat completion request, in order:
//! accept → exact cache → semantic cache → ladder → upstream → store.

use crate::answer::{Answer, Shared};
use crate::cache_control::{CacheMode, CachePolicy};
use crate::config::Config;
use crate::ctx::{header, ChatCtx};
use crate::fleet::Turn;
use crate::reply::{self, Outcome};
use crate::respond::{self, HitKind};
use crate::state::AppState;
use crate::{miss, relay};
use deja_api::conversation::split;
use deja_api::key::{conversation_fingerprint, routed_chat_keys};
use deja_api::{ApiError, ChatCompletion, ChatRequest, ErrorKind};
use deja_cache::{exact, semantic, Role};
use deja_router::{estimate_tokens, PlanError, RouteInput, Target};
use http::request::Parts;
use std::sync::Arc;
use std::time::Instant;

pub async fn chat(
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &Parts,
    tenant: Option<&str>,
    body: &[u8],
    request_id: String,
) -> Outcome {
    let started = Instant::now();
    match chat_inner(state, config, parts, tenant, body, request_id, started).await {
        Ok(o) => o,
        Err(e) => Outcome::error(&e),
    }
}

async fn chat_inner(
    state: Arc<AppState>,
    config: Arc<Config>,
    parts: &Parts,
    tenant: Option<&str>,
    body: &[u8],
    request_id: String,
    started: Instant,
) -> Result<Outcome, ApiError> {
    // Accept: parse, check the target exists, read the client's cache policy.
    let req = ChatRequest::parse(body)?;
    if config.catalog.resolve(&req.model).is_none() {
        return Err(ApiError::new(ErrorKind::NotFound, PlanError::NotFound(req.model.clone()).to_string())
            .with_code("model_not_found"));
    }
    crate::budget::check_allowed(&config, tenant, &req.model)?;
    let mut policy = CachePolicy::from_headers(&parts.headers)?;
    if !config.cache.enabled {
        policy.mode = CacheMode::Bypass;
    }
    let namespace = crate::ctx::namespace(parts, tenant)?;
    // A task tag that moves the starting rung changes who answers: it is keyed.
    let task = header(parts, "x-deja-task").or_else(|| req.metadata_task());
    let task_rung = match (config.catalog.resolve(&req.model), task) {
        (Some(Target::Ladder(l)), Some(t)) => {
            config.catalog.ladders.get(l).and_then(|l| l.tasks.get(t)).map(String::as_str)
        }
        _ => None,
    };
    let (key, fingerprint) = routed_chat_keys(&namespace, &req, task_rung);
    let conversation = match config.cache.conversations {
        Some(_) => {
            conversation_fingerprint(&namespace, &req, task_rung).zip(split(&req.messages)).map(|(coarse, c)| {
                crate::conversation::ConversationCtx { coarse, history_text: c.history_text(), history: None }
            })
        }
        None => None,
    };
    state.ledger.request();
    let question = req.last_user_text();
    let task = task.map(str::to_string);
    let mut ctx = ChatCtx {
        routes: state.routes_of(&config),
        state,
        config: config.clone(),
        req,
        namespace,
        key,
        fingerprint,
        policy,
        question,
        task,
        route: None,
        vector: None,
        vector_of: None,
        store_deferred: false,
        fleet_lock: None,
        conversation,
        started,
        request_id,
        budget: crate::budget::of(&config, tenant),
        reservation: crate::ledger::Reservation::none(),
    };

    // Exact cache.
    if ctx.policy.reads() {
        let now = deja_cache::now_ms();
        // The request's own key, then a learned alias (a verified paraphrase).
        // A learned alias is a semantic match: the client's floor applies to it.
        let floor = crate::ctx::client_floor(parts);
        match exact::lookup_or_alias(&ctx.state.store, &ctx.key, ctx.namespace.as_str(), floor, &ctx.policy.fresh, now)
        {
            Ok(Some((entry, _, exact::Via::Key))) => return Ok(serve_entry(&ctx, HitKind::Exact, &entry, now, None)),
            Ok(Some((entry, _, exact::Via::Alias { similarity }))) => {
                let mut out = serve_entry(&ctx, HitKind::Semantic { similarity }, &entry, now, None);
                reply::set_header(&mut out.response, "x-deja-verified", "alias");
                return Ok(out);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "exact lookup failed; treating as a miss"),
        }
        // Another replica's answer, shared through Redis ([cluster]).
        if let Some(entry) = crate::fleet::lookup(&ctx.state, &ctx.key, ctx.namespace.as_str(), now).await {
            if ctx.policy.fresh.accepts(&entry, now) {
                return Ok(serve_entry(&ctx, HitKind::Exact, &entry, now, None));
            }
        }
    }

    // Semantic cache.
    if let Some(hit) = semantic_stage(&mut ctx, parts).await {
        return Ok(hit);
    }

    // Ladder and upstream, coalescing identical requests in flight.
    let route = RouteInput {
        target: &ctx.req.model,
        prompt_tokens: estimate_tokens(ctx.req.prompt_chars()),
        task: ctx.task.as_deref(),
        route: ctx.route.as_deref(),
    };
    let mut plan = crate::planning::make(&ctx.state, &config, route).map_err(|e| match e {
        PlanError::NotFound(_) => ApiError::new(ErrorKind::NotFound, e.to_string()).with_code("model_not_found"),
        PlanError::PromptTooLarge { .. } => {
            ApiError::invalid_request(e.to_string(), Some("messages")).with_code("context_length_exceeded")
        }
    })?;
    // Budgets: the plan's worst case is reserved; past its budget a client
    // key is refused or cut to the cheapest rung.
    let max_tokens = ctx.req.max_completion_tokens.or(ctx.req.max_tokens);
    let worst = crate::budget::worst_case_usd(&config, &plan, ctx.req.prompt_chars(), max_tokens);
    let admitted = crate::budget::admit(&ctx.state.ledger, &config, tenant, &mut plan, worst)?;
    if admitted.downgraded {
        // A downgraded answer is not the one this request would normally get:
        // it is neither stored nor shared with identical requests in flight.
        ctx.policy.mode = CacheMode::Bypass;
    }
    ctx.reservation = admitted.reservation;
    let stream = ctx.req.is_stream();
    let (mut leader, mut feed) = (None, None);
    if ctx.policy.mode == CacheMode::Normal {
        let (role, live) = ctx.state.feeds.join(ctx.key, || ctx.state.coalescer.join(ctx.key), stream);
        match (role, live) {
            (Role::Leader(l), live) => (leader, feed) = (Some(l), live),
            // A streaming follower of a streaming leader reads its frames as they come.
            (Role::Follower(rx), Some(live)) if stream => return Ok(follow_stream(&ctx, live, rx).await),
            (Role::Follower(rx), _) => return Ok(follow(&ctx, rx).await),
        }
    }
    // Across the fleet too ([cluster]): one replica calls upstream, the others wait for its answer.
    if let Some(l) = leader.take() {
        match crate::fleet::turn(&ctx.state, ctx.namespace.as_str(), &ctx.key).await {
            Turn::Answered(answer) => {
                l.publish(Ok(answer.clone()));
                return Ok(coalesced(&ctx, &answer));
            }
            Turn::Call(lock) => {
                ctx.fleet_lock = lock;
                leader = Some(l);
            }
        }
    }
    let cache = ctx.policy.miss_label();
    let response = if stream {
        let feed = feed.unwrap_or_default();
        relay::stream_miss(ctx, plan, leader, feed).await
    } else {
        miss::unary_miss(ctx, plan, leader).await
    };
    Ok(Outcome { response, cache })
}

/// Embeds the last user message and looks for a paraphrase already answered.
/// The vector is kept for storing this request's answer on a miss.
async fn semantic_stage(ctx: &mut ChatCtx, parts: &Parts) -> Option<Outcome> {
    let embed = ctx.state.embed.as_ref()?;
    let question = ctx.question.clone()?;
    if !ctx.policy.writes() {
        return None;
    }
    // A conversation's history is embedded in the same batch as its question.
    let mut texts = vec![question.clone()];
    texts.extend(ctx.conversation.as_ref().map(|c| c.history_text.clone()));
    let mut vectors = match embed.embed_many(texts).await {
        Ok(v) => v.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "embedding failed; semantic stage skipped");
            return None;
        }
    };
    ctx.vector = vectors.next();
    if let Some(c) = ctx.conversation.as_mut() {
        c.history = vectors.next();
    }
    // A semantic route changes who answers, so it is keyed. The exact key
    // needs nothing more: it hashes every message, so two requests sharing it
    // have the same question, hence the same vector and the same route. Two
    // paraphrases may route differently: the route's rung joins the
    // fingerprint a semantic hit must match.
    ctx.route = crate::routes::choose(ctx);
    if let Some(rung) = &ctx.route {
        ctx.fingerprint = deja_api::key::route_fingerprint(ctx.fingerprint, rung);
        if let Some(c) = ctx.conversation.as_mut() {
            c.coarse = deja_api::key::route_fingerprint(c.coarse, rung);
        }
    }
    if !ctx.policy.reads() {
        return None;
    }
    let config = ctx.config.clone();
    let settings = &config.cache.semantic;
    let floor = crate::ctx::client_floor(parts);
    let threshold = settings.threshold_for(&ctx.req.model, floor);
    let threshold = ctx.state.slo.threshold(ctx.namespace.as_str(), threshold, &config.cache.slo);
    let now = deja_cache::now_ms();
    // The graph search and store reads run on a blocking thread.
    let (state, fingerprint, vector) = (ctx.state.clone(), ctx.fingerprint, ctx.vector.clone()?);
    let namespace = ctx.namespace.clone();
    // A client that raised the threshold is served nothing below its floor, verified or not.
    let verify_from = settings.verify_from.max(floor.unwrap_or(0.0).min(1.0));
    let verify = config.cache.verifier.as_ref().map(|v| (verify_from, v.max_candidates));
    let (text, fresh) = (question.clone(), ctx.policy.fresh);
    let lookup = tokio::task::spawn_blocking(move || {
        let query = semantic::Query {
            namespace: namespace.as_str(),
            fingerprint: &fingerprint,
            vector: &vector,
            text: &text,
            threshold,
            fresh,
        };
        let Some(reader) = state.reader() else { return Ok(semantic::Lookup::default()) };
        semantic::lookup_banded(&state.store, &state.index, &query, &config.cache.semantic, reader, verify, now)
    })
    .await;
    let mut found =
        match lookup.unwrap_or_else(|e| Err(deja_store::StoreError::Corrupt(format!("semantic lookup task: {e}")))) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "semantic lookup failed; treating as a miss");
                return None;
            }
        };
    let seen = crate::lookups::note(ctx, threshold, &found);
    if let Some(why) = found.unreadable {
        ctx.state.ledger.unmatchable(why);
    }
    for r in found.refusals {
        ctx.state.ledger.guard_refusal(r.as_str());
    }
    let template = found.template.take();
    if let Some(hit) = found.hit {
        return Some(serve_entry(ctx, HitKind::Semantic { similarity: hit.similarity }, &hit.entry, now, None));
    }
    let verified = seen.finish(verify_stage(ctx, &question, found.grey).await);
    if verified.is_some() {
        return verified;
    }
    // The same question after other earlier turns: only on the verifier's yes.
    if let Some(found) = crate::conversation::stage(ctx, &question, verify_from).await {
        if ctx.policy.fresh.accepts(&found.entry, deja_cache::now_ms()) {
            return Some(serve_verified(ctx, &found.entry, found.similarity, found.cost_usd).await);
        }
    }
    // A miss behind a template: its answer is stored in the template's group,
    // under the vector of the question's own part.
    if let Some(t) = template {
        ctx.fingerprint = t.fingerprint;
        ctx.vector = Some(t.vector);
        ctx.vector_of = Some(t.part);
    }
    None
}

/// Asks the verifier about grey-band candidates not already rejected for
/// this request. A yes is served, remembered as an alias and counted; a no
/// is remembered; a failure is a miss.
async fn verify_stage(ctx: &mut ChatCtx, question: &str, grey: Vec<semantic::GreyCandidate>) -> Option<Outcome> {
    let config = ctx.config.clone();
    let settings = config.cache.verifier.as_ref()?;
    // Past its budget a client gets no call made for it: a miss, which its
    // budget then refuses or sends to the cheapest rung.
    if ctx.budget_reached() {
        return None;
    }
    let asked: Vec<semantic::GreyCandidate> = grey
        .into_iter()
        .filter(|c| !ctx.state.rejections.contains(&ctx.key, &c.entry.id))
        .take(settings.max_candidates)
        .collect();
    if asked.is_empty() {
        return None;
    }
    // Texts sharing a template: the verifier sees the template once and what
    // differs, for the candidates whose differing part of the question is the
    // best one's.
    let framed = asked.first().filter(|c| c.compared.framed).map(|c| c.compared.query_part.clone());
    let asked: Vec<semantic::GreyCandidate> = match &framed {
        Some(part) => asked.into_iter().filter(|c| c.compared.framed && &c.compared.query_part == part).collect(),
        None => asked.into_iter().filter(|c| !c.compared.framed).collect(),
    };
    let template = asked.first().and_then(|c| c.compared.template.clone());
    let shown = framed.as_deref().unwrap_or(question);
    let texts: Vec<&str> = asked
        .iter()
        .map(|c| if c.compared.framed { c.compared.candidate_part.as_str() } else { c.text.as_str() })
        .collect();
    if settings.mode == crate::config::VerifierMode::Async {
        let candidates = asked.iter().map(|c| (c.entry.id, c.similarity)).collect();
        let verdict_coming = crate::verify_later::verify_later(crate::verify_later::Later {
            state: ctx.state.clone(),
            config: config.clone(),
            key: ctx.key,
            payer: ctx.payer(),
            learn: ctx.policy.writes(),
            template,
            question: shown.to_string(),
            texts: texts.iter().map(|t| t.to_string()).collect(),
            candidates,
        });
        // The verdict decides what this wording is served next: a yes its
        // alias to the entry, a no (remembered) an answer of its own, stored
        // when it is next asked. Storing this answer now would shadow the alias.
        ctx.store_deferred = verdict_coming;
        return None;
    }
    let payer = ctx.payer();
    let verdict =
        match crate::verify::verify(&ctx.state, &config, &payer, settings, template.as_deref(), shown, &texts).await {
            Ok(v) => v,
            Err(e) => {
                ctx.state.ledger.verification(ctx.namespace.as_str(), 0.0);
                tracing::warn!(error = %e, "verification failed; treating as a miss");
                return None;
            }
        };
    let Some(chosen) = verdict.chosen.and_then(|i| asked.get(i)) else {
        for c in &asked {
            ctx.state.rejections.insert(ctx.key, c.entry.id);
        }
        return None;
    };
    Some(serve_verified(ctx, &chosen.entry, chosen.similarity, verdict.cost_usd).await)
}

/// Serves an entry the verifier said yes to, counts the hit and learns the
/// request's key as an alias of the entry.
async fn serve_verified(ctx: &ChatCtx, entry: &deja_store::Entry, similarity: f32, cost_usd: f64) -> Outcome {
    let now = deja_cache::now_ms();
    if let Err(e) = ctx.state.store.record_hit(&entry.id, now) {
        tracing::warn!(error = %e, "could not count a verified hit");
    }
    // A cache-control that forbids storing also forbids learning an alias.
    // The alias is a sled transaction: written on a blocking thread, before
    // the answer goes, so the next identical request finds it.
    if ctx.policy.writes() {
        let (store, key, id) = (ctx.state.store.clone(), ctx.key, entry.id);
        match tokio::task::spawn_blocking(move || store.add_alias(&key, &id, similarity)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
            Err(e) => tracing::warn!(error = %e, "could not remember a verified paraphrase"),
        }
    }
    serve_entry(ctx, HitKind::Semantic { similarity }, entry, now, Some(cost_usd))
}

/// Answers with a cached entry. `verification_usd` is what verifying it cost,
/// when it was served on the verifier's word.
fn serve_entry(
    ctx: &ChatCtx,
    kind: HitKind,
    entry: &deja_store::Entry,
    now_ms: u64,
    verification_usd: Option<f64>,
) -> Outcome {
    let mut response = if ctx.req.is_stream() {
        match serde_json::from_value::<ChatCompletion>(entry.response.clone()) {
            Ok(c) => respond::completion(&c, true, ctx.req.wants_usage_chunk()),
            Err(_) => {
                return Outcome::error(&ApiError::new(ErrorKind::Internal, "a cached entry could not be read"));
            }
        }
    } else {
        // Stored as the completion a client receives: no need to rebuild it.
        reply::json_bytes(http::StatusCode::OK, serde_json::to_vec(&entry.response).unwrap_or_default())
    };
    let saved_usd = (entry.cost_usd - verification_usd.unwrap_or(0.0)).max(0.0);
    ctx.state.ledger.hit(matches!(kind, HitKind::Semantic { .. }), entry, saved_usd);
    if matches!(kind, HitKind::Semantic { .. }) {
        crate::slo::sample(ctx, entry);
    }
    // A hit is all Deja's own time.
    ctx.state.metrics.overhead.observe(ctx.started.elapsed().as_secs_f64());
    respond::hit_headers(&mut response, kind, entry, now_ms);
    if verification_usd.is_some() {
        reply::set_header(&mut response, "x-deja-verified", "llm");
        reply::set_header(&mut response, "x-deja-cost-usd", &respond::format_usd(verification_usd.unwrap_or(0.0)));
        reply::set_header(&mut response, "x-deja-saved-usd", &respond::format_usd(saved_usd));
    }
    Outcome { response, cache: kind.label() }
}

/// Answers with what an identical request in flight (on this replica or
/// another) got from upstream: counted as an exact hit.
fn coalesced(ctx: &ChatCtx, answer: &Answer) -> Outcome {
    let mut response = respond::completion(&answer.completion, ctx.req.is_stream(), ctx.req.wants_usage_chunk());
    respond::miss_headers(&mut response, "coalesced", &answer.answered_by, 0, Some(0.0));
    reply::set_header(&mut response, "x-deja-saved-usd", &respond::format_usd(answer.cost_usd));
    ctx.state.ledger.coalesced(ctx.namespace.as_str(), &answer.answered_by, answer.cost_usd);
    Outcome { response, cache: "coalesced" }
}

/// Reads the stream of the identical streaming request in flight as it
/// comes: its first frame arrives with the leader's. Counted as an exact
/// hit once the whole answer is read.
async fn follow_stream(
    ctx: &ChatCtx,
    feed: std::sync::Arc<crate::feed::Feed>,
    mut rx: tokio::sync::broadcast::Receiver<Shared>,
) -> Outcome {
    // The leader may be answered without streaming (by another replica) or vanish.
    let head = tokio::select! {
        biased;
        head = feed.head() => head,
        shared = rx.recv() => return followed(ctx, shared),
    };
    let head = match head {
        Ok(head) => head,
        Err(e) => return Outcome::error(&e),
    };
    let (ledger, namespace, model) = (ctx.state.ledger.clone(), ctx.namespace.as_str().to_string(), head.model.clone());
    let on_done = Box::new(move |cost_usd: f64| ledger.coalesced(&namespace, &model, cost_usd));
    let mut response = reply::event_stream(feed.body(ctx.req.wants_usage_chunk(), Some(on_done)));
    respond::miss_headers(&mut response, "coalesced", &head.model, 0, Some(0.0));
    Outcome { response, cache: "coalesced" }
}

/// Waits for the identical request already in flight and answers with its result.
async fn follow(ctx: &ChatCtx, mut rx: tokio::sync::broadcast::Receiver<Shared>) -> Outcome {
    followed(ctx, rx.recv().await)
}

fn followed(ctx: &ChatCtx, shared: Result<Shared, tokio::sync::broadcast::error::RecvError>) -> Outcome {
    match shared {
        Ok(Ok(answer)) => coalesced(ctx, &answer),
        Ok(Err(e)) => Outcome::error(&e),
        Err(_) => Outcome::error(&ApiError::new(
            ErrorKind::BadGateway,
            "the identical request this one waited on ended without an answer",
        )),
    }
}
