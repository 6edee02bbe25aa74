//! Conversation candidates: entries of multi-turn requests whose coarse
//! context (namespace, model, parameters, system messages, tools, the
//! question's non-text parts) matches a new request's, whose question is
//! close and whose earlier turns are close by embedding.
//!
//! A candidate is never a hit by itself, whatever its similarity: the
//! gateway serves it only on the verifier's yes. Entries are re-read from
//! the store, and their namespace and coarse fingerprint checked, before
//! they are offered; the index only suggests.
//!
//! The index is in memory, one list per coarse fingerprint (its newest
//! [`GROUP_MAX`] entries), scanned exactly, and rebuilt from the store's entries at start-up (sled is the source of
//! truth: the coarse fingerprint and history vector live in the entry, the
//! question vector in the `vectors` tree). Ids of removed entries are dropped
//! when a lookup meets them and by [`ConversationIndex::prune`].

use crate::compare::{Comparer, Unreadable};
use crate::guards::GuardSettings;
use crate::semantic::Reader;
use deja_api::{CacheKey, ContextFingerprint};
use deja_embed::cosine;
use deja_store::{Entry, Store, StoreError};
use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The newest conversation entries of one coarse context that are
/// candidates: a lookup scans its group exactly, so one busy system prompt
/// never makes a lookup cost the whole store. Older entries still serve
/// exact hits and exact-context paraphrases.
pub const GROUP_MAX: usize = 4096;

struct Member {
    id: CacheKey,
    question: Vec<f32>,
    history: Vec<f32>,
    /// Insertion order, to evict the oldest past [`GROUP_MAX`].
    seq: u64,
}

/// One coarse context's members, and where each sits (removal in O(1)).
#[derive(Default)]
struct Group {
    members: Vec<Member>,
    at: HashMap<CacheKey, usize>,
}

impl Group {
    fn remove(&mut self, id: &CacheKey) {
        let Some(i) = self.at.remove(id) else { return };
        if i >= self.members.len() {
            return;
        }
        self.members.swap_remove(i);
        if let Some(moved) = self.members.get(i) {
            self.at.insert(moved.id, i);
        }
    }

    fn oldest(&self) -> Option<CacheKey> {
        self.members.iter().min_by_key(|m| m.seq).map(|m| m.id)
    }
}

#[derive(Default)]
struct Inner {
    groups: HashMap<[u8; 32], Group>,
    located: HashMap<CacheKey, [u8; 32]>,
    seq: u64,
    /// Entries dropped from a full group.
    evicted: u64,
}

impl Inner {
    fn remove(&mut self, id: &CacheKey) {
        let Some(fp) = self.located.remove(id) else { return };
        if let Some(group) = self.groups.get_mut(&fp) {
            group.remove(id);
            if group.members.is_empty() {
                self.groups.remove(&fp);
            }
        }
    }

    fn insert(&mut self, id: CacheKey, coarse: [u8; 32], question: Vec<f32>, history: Vec<f32>) {
        self.remove(&id);
        let full = self.groups.get(&coarse).is_some_and(|g| g.members.len() >= GROUP_MAX);
        if full {
            if let Some(oldest) = self.groups.get(&coarse).and_then(Group::oldest) {
                self.remove(&oldest);
                self.evicted += 1;
            }
        }
        self.seq += 1;
        let seq = self.seq;
        self.located.insert(id, coarse);
        let group = self.groups.entry(coarse).or_default();
        group.at.insert(id, group.members.len());
        group.members.push(Member { id, question, history, seq });
    }
}

/// Entries findable by conversations, by coarse fingerprint.
#[derive(Default)]
pub struct ConversationIndex {
    inner: RwLock<Inner>,
}

/// What a conversation lookup compares.
pub struct ConversationQuery<'a> {
    pub namespace: &'a str,
    pub coarse: &'a ContextFingerprint,
    /// The request's own context fingerprint: entries stored under it belong
    /// to the exact-context path and are not offered again here.
    pub fine: &'a ContextFingerprint,
    pub question: &'a [f32],
    pub history: &'a [f32],
    /// The closing question's text, for the guards.
    pub text: &'a str,
}

/// The floors a candidate must reach, and how many to offer.
#[derive(Debug, Clone, Copy)]
pub struct Floors {
    pub question: f32,
    pub history: f32,
    pub max: usize,
}

/// A live entry a conversation may be served from, if the verifier agrees.
#[derive(Debug, Clone)]
pub struct ConversationCandidate {
    pub entry: Entry,
    /// The cached closing question, verbatim.
    pub text: String,
    pub similarity: f32,
    pub history_similarity: f32,
}

fn read(l: &RwLock<Inner>) -> RwLockReadGuard<'_, Inner> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write(l: &RwLock<Inner>) -> RwLockWriteGuard<'_, Inner> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl ConversationIndex {
    pub fn insert(&self, id: CacheKey, coarse: &ContextFingerprint, question: &[f32], history: &[f32]) {
        write(&self.inner).insert(id, coarse.0, question.to_vec(), history.to_vec());
    }

    pub fn remove(&self, id: &CacheKey) {
        write(&self.inner).remove(id);
    }

    pub fn len(&self) -> usize {
        read(&self.inner).located.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped from a full group since start.
    pub fn evicted(&self) -> u64 {
        read(&self.inner).evicted
    }

    /// Indexes the store's conversation entries, keeping any indexed while
    /// the scan ran. Returns how many the scan found.
    pub fn rebuild_from(&self, store: &Store) -> Result<usize, StoreError> {
        let mut built = Inner::default();
        for v in store.vectors() {
            let v = v?;
            let entry = match store.get(&v.id) {
                Ok(Some(e)) => e,
                Ok(None) | Err(StoreError::Corrupt(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(meta) = entry.semantic.and_then(|s| s.conversation) else { continue };
            let Some(coarse) = ContextFingerprint::from_hex(&meta.coarse) else { continue };
            built.insert(v.id, coarse.0, v.vector, meta.history);
        }
        let n = built.located.len();
        let mut current = write(&self.inner);
        // Entries indexed while the scan ran are kept: it may have passed them.
        for (coarse, group) in std::mem::take(&mut current.groups) {
            for m in group.members {
                if !built.located.contains_key(&m.id) {
                    built.insert(m.id, coarse, m.question, m.history);
                }
            }
        }
        *current = built;
        Ok(n)
    }

    /// Drops ids whose entry is gone from the store. Returns how many.
    pub fn prune(&self, store: &Store) -> Result<usize, StoreError> {
        let ids: Vec<CacheKey> = read(&self.inner).located.keys().copied().collect();
        let mut dead = Vec::new();
        for id in ids {
            if store.vector(&id)?.is_none() {
                dead.push(id);
            }
        }
        let mut inner = write(&self.inner);
        for id in &dead {
            inner.remove(id);
        }
        Ok(dead.len())
    }

    /// Live entries in the query's coarse context above both floors that
    /// pass the guards, best question similarity first, at most `floors.max`.
    ///
    /// Questions are compared as a semantic lookup compares them (on what
    /// differs, never what the model cannot read: [`crate::compare`]).
    pub fn candidates(
        &self,
        store: &Store,
        query: &ConversationQuery<'_>,
        guards: &GuardSettings,
        reader: Reader<'_>,
        floors: Floors,
        now_ms: u64,
    ) -> Result<Vec<ConversationCandidate>, StoreError> {
        let comparer = Comparer::new(reader.model, guards, reader.spans, query.text);
        if comparer.query_unreadable() == Some(Unreadable::UnknownTokens) {
            return Ok(Vec::new());
        }
        let mut close: Vec<(CacheKey, f32, f32)> = {
            let inner = read(&self.inner);
            let Some(group) = inner.groups.get(&query.coarse.0) else { return Ok(Vec::new()) };
            group
                .members
                .iter()
                .filter_map(|m| {
                    let q = cosine(query.question, &m.question);
                    let h = cosine(query.history, &m.history);
                    (q >= floors.question && h >= floors.history).then_some((m.id, q, h))
                })
                .collect()
        };
        close.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.total_cmp(&a.2)));
        let coarse_hex = query.coarse.to_hex();
        let fine_hex = query.fine.to_hex();
        let mut out = Vec::new();
        for (id, similarity, history_similarity) in close {
            if out.len() >= floors.max {
                break;
            }
            let entry = match store.get(&id) {
                Ok(Some(e)) if !e.is_expired(now_ms) => e,
                Ok(None) => {
                    self.remove(&id);
                    continue;
                }
                Ok(Some(_)) | Err(StoreError::Corrupt(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(meta) = &entry.semantic else { continue };
            let coarse_matches = meta.conversation.as_ref().is_some_and(|c| c.coarse.eq_ignore_ascii_case(&coarse_hex));
            if !coarse_matches || entry.namespace != query.namespace || meta.fingerprint.eq_ignore_ascii_case(&fine_hex)
            {
                continue;
            }
            let similarity = match comparer.compare(&meta.text, similarity) {
                Ok(c) if c.refusal.is_none() && c.similarity >= floors.question => c.similarity,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "embedding what differs failed; candidate skipped");
                    continue;
                }
            };
            let text = meta.text.clone();
            out.push(ConversationCandidate { entry, text, similarity, history_similarity });
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
