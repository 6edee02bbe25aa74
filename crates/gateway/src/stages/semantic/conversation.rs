//! Conversations that can hit: a multi-turn request whose earlier turns
//! differ from a cached one's (other small talk, reworded history) may be
//! served the cached answer, but only on the verifier's yes.
//!
//! Candidates share the coarse fingerprint (namespace, model, parameters,
//! system messages, tools, the question's non-text parts: all exact), have a
//! question at least `verify_from` close and a history at least
//! `history_min` close. They are never served directly, even at similarity
//! 1.0, and never without a verifier; the verifier sees both conversations'
//! turns verbatim and the shared system messages.

use super::Semantic;
use crate::stages::{Accepted, Looked};
use deja_api::chat::message_text;
use deja_api::conversation::{split, transcript};
use deja_cache::conversation::{ConversationCandidate, ConversationQuery, Floors};
use deja_store::Entry;
use serde_json::{json, Value};

/// The verifier's instructions for conversations.
pub const PROMPT: &str = "You decide whether a cached answer may be reused. You are given a new conversation \
and one or more numbered cached conversations, each ending with a user message, under the same shared context. \
A cached conversation matches only if the correct reply to its last user message, read in its own conversation, \
is exactly the correct reply to the new conversation's last user message, read in the new conversation: what \
\"it\", \"that\" or \"the same\" refer to must be the same, and a different object, number, name, time, negation \
or intent means no match. Reply with only the number of the matching cached conversation, or with none.";

/// A conversation entry the verifier said yes to, and what asking cost.
pub struct Verified {
    pub entry: Entry,
    pub similarity: f32,
    pub cost_usd: f64,
}

/// The conversation a stored request's messages hold, as the verifier reads it.
fn rendered(messages: &Value) -> Option<String> {
    let c = split(messages.as_array()?)?;
    Some(format!("{}\nuser: {}", transcript(&c.turns), message_text(c.question)?))
}

/// The verifier's messages: the shared system messages once, then every
/// conversation's turns and closing question, verbatim.
pub fn messages(shared: &str, new: &str, cached: &[String]) -> Value {
    let q = crate::verify::quoted;
    let mut user = format!(
        "Each text below is a JSON string.\n\nShared context:\n{}\n\nNew conversation:\n{}\n\n",
        q(shared),
        q(new)
    );
    user.push_str("Cached conversations:\n");
    for (i, text) in cached.iter().enumerate() {
        user.push_str(&format!("{}. {}\n", i + 1, q(text)));
    }
    user.push_str(&format!(
        "\nAnswer with the number (1 to {}) of the cached conversation whose last user message has the same \
         correct reply as the new conversation's, or none.",
        cached.len()
    ));
    json!([{"role": "system", "content": PROMPT}, {"role": "user", "content": user}])
}

/// A multi-turn request the semantic stage did not answer.
pub(super) struct Conversation<'a> {
    pub semantic: &'a Semantic,
    pub request: &'a Accepted,
    pub looked: &'a Looked,
    pub question: &'a str,
}

impl Conversation<'_> {
    /// Looks for conversation candidates and asks the verifier about them.
    /// `question_min` is the grey band's floor (a client's raised threshold
    /// included). `None` is a miss: no candidate, a no, or a failure.
    pub async fn run(&self, question_min: f32) -> Option<Verified> {
        let (ctx, semantic, question) = (self.request, self.semantic, self.question);
        let config = ctx.config.clone();
        let settings = config.cache.conversations?;
        let verifier = config.cache.verifier.as_ref()?;
        let (coarse, history) = self.looked.conversation.clone()?;
        let vector = self.looked.vector.clone()?;
        let fine = self.looked.fingerprint.unwrap_or(ctx.fingerprint);
        let namespace = ctx.namespace.clone();
        let (store, conversations, spans, model) =
            (semantic.store.clone(), semantic.conversations.clone(), semantic.spans.clone(), semantic.model.clone());
        let floors = Floors { question: question_min, history: settings.history_min, max: verifier.max_candidates * 2 };
        let guards = config.cache.semantic.guards;
        let text = question.to_string();
        let now = deja_cache::now_ms();
        let found = tokio::task::spawn_blocking(move || {
            let query = ConversationQuery {
                namespace: namespace.as_str(),
                coarse: &coarse,
                fine: &fine,
                question: &vector,
                history: &history,
                text: &text,
            };
            let Some(model) = model.as_deref() else { return Ok(Vec::new()) };
            let reader = deja_cache::semantic::Reader { model, spans: Some(&spans) };
            conversations.candidates(&store, &query, &guards, reader, floors, now)
        })
        .await;
        let found = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "conversation lookup failed; treating as a miss");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "conversation lookup task failed; treating as a miss");
                return None;
            }
        };
        let mut asked: Vec<(ConversationCandidate, String)> = Vec::new();
        for c in found {
            if asked.len() >= verifier.max_candidates || semantic.rejections.contains(&ctx.key, &c.entry.id) {
                continue;
            }
            if let Some(text) = rendered(&c.entry.request) {
                asked.push((c, text));
            }
        }
        if asked.is_empty() {
            return None;
        }
        // Past its budget a client gets no verifier call made for it.
        if semantic.calls.ledger.reached(ctx.budget.as_ref()) {
            return None;
        }
        let convo = ctx.conversation.as_ref()?;
        let new = format!("{}\nuser: {question}", convo.history_text);
        let shared = shared_context(&ctx.req.messages);
        let cached: Vec<String> = asked.iter().map(|(_, t)| t.clone()).collect();
        let msgs = messages(&shared, &new, &cached);
        let payer = ctx.payer();
        let verdict = match crate::verify::verify_messages(
            &semantic.calls,
            &config,
            &payer,
            verifier,
            msgs,
            cached.len(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                semantic.calls.ledger.verification(ctx.namespace.as_str(), 0.0);
                tracing::warn!(error = %e, "conversation verification failed; treating as a miss");
                return None;
            }
        };
        let Some((chosen, _)) = verdict.chosen.and_then(|i| asked.get(i)) else {
            for (c, _) in &asked {
                semantic.rejections.insert(ctx.key, c.entry.id);
            }
            return None;
        };
        Some(Verified { entry: chosen.entry.clone(), similarity: chosen.similarity, cost_usd: verdict.cost_usd })
    }
}

/// The system and developer messages' text, the same in every candidate.
fn shared_context(messages: &[Value]) -> String {
    let texts: Vec<String> =
        split(messages).map(|c| c.system.iter().filter_map(|m| message_text(m)).collect()).unwrap_or_default();
    if texts.is_empty() {
        "(none)".to_string()
    } else {
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_both_conversations_verbatim() {
        let stored = json!([
            {"role": "system", "content": "support bot"},
            {"role": "user", "content": "I pay for a streaming subscription"},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "Cancel it"}
        ]);
        let cached = rendered(&stored).expect("a conversation");
        assert_eq!(cached, "user: I pay for a streaming subscription\nassistant: Noted.\nuser: Cancel it");
        let m = messages("support bot", "user: my gym membership\nuser: Cancel it", &[cached]);
        let text = m[1]["content"].as_str().unwrap_or_default();
        assert!(text.contains("streaming subscription") && text.contains("gym membership"), "{text}");
        assert!(text.contains("Shared context:\n\"support bot\""), "{text}");
        assert_eq!(shared_context(stored.as_array().map(Vec::as_slice).unwrap_or_default()), "support bot");
    }
}
