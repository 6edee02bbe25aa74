use super::*;
use deja_store::{ConversationMeta, EntryKind, EntryUsage, SemanticMeta};

const COARSE: ContextFingerprint = ContextFingerprint([1; 32]);
const Q: [f32; 4] = [1.0, 0.0, 0.0, 0.0];
const H: [f32; 4] = [0.0, 1.0, 0.0, 0.0];

fn entry(n: u8, namespace: &str, fine: u8, history: [f32; 4]) -> Entry {
    Entry {
        id: CacheKey([n; 32]),
        kind: EntryKind::Chat,
        namespace: namespace.into(),
        requested_model: "m".into(),
        answered_by: "m".into(),
        request: serde_json::json!([]),
        response: serde_json::json!({}),
        usage: EntryUsage::default(),
        cost_usd: 0.0,
        created_ms: 1,
        expires_ms: u64::MAX,
        semantic: Some(SemanticMeta {
            fingerprint: ContextFingerprint([fine; 32]).to_hex(),
            text: "cancel it".into(),
            conversation: Some(ConversationMeta { coarse: COARSE.to_hex(), history: history.to_vec() }),
            vector_of: None,
        }),
    }
}

fn plant(store: &Store, index: &ConversationIndex, e: &Entry) {
    store.put(e, Some(&Q)).expect("put");
    let history = e.semantic.as_ref().and_then(|s| s.conversation.as_ref()).map(|c| c.history.clone());
    index.insert(e.id, &COARSE, &Q, &history.unwrap_or_default());
}

fn found(store: &Store, index: &ConversationIndex, namespace: &str, history: &[f32]) -> Vec<CacheKey> {
    let fine = ContextFingerprint([99; 32]);
    let query = ConversationQuery { namespace, coarse: &COARSE, fine: &fine, question: &Q, history, text: "cancel it" };
    let floors = Floors { question: 0.8, history: 0.5, max: 3 };
    let model = deja_embed::HashEmbedder::new(8);
    let reader = crate::semantic::Reader { model: &model, spans: None };
    let got = index.candidates(store, &query, &GuardSettings::default(), reader, floors, 10).expect("candidates");
    got.into_iter().map(|c| c.entry.id).collect()
}

#[test]
fn a_candidate_needs_a_close_history_its_namespace_and_another_context() {
    let store = Store::temporary().expect("store");
    let index = ConversationIndex::default();
    plant(&store, &index, &entry(1, "default", 2, H));
    plant(&store, &index, &entry(2, "other", 2, H));
    // Stored under the query's own fingerprint: the exact-context path's.
    plant(&store, &index, &entry(3, "default", 99, H));
    assert_eq!(found(&store, &index, "default", &H), vec![CacheKey([1; 32])]);
    assert!(found(&store, &index, "default", &[0.0, 0.0, 1.0, 0.0]).is_empty(), "a far history is no candidate");
}

#[test]
fn removed_entries_are_dropped_and_a_rebuild_restores_the_rest() {
    let store = Store::temporary().expect("store");
    let index = ConversationIndex::default();
    plant(&store, &index, &entry(1, "default", 2, H));
    plant(&store, &index, &entry(4, "default", 5, H));
    store.remove(&CacheKey([4; 32])).expect("remove");
    assert_eq!(index.prune(&store).expect("prune"), 1);
    let rebuilt = ConversationIndex::default();
    assert_eq!(rebuilt.rebuild_from(&store).expect("rebuild"), 1);
    assert_eq!(found(&store, &rebuilt, "default", &H), vec![CacheKey([1; 32])]);
    store.remove(&CacheKey([1; 32])).expect("remove");
    assert!(found(&store, &rebuilt, "default", &H).is_empty());
    assert!(rebuilt.is_empty(), "met while gone, dropped");
}

#[test]
fn a_busy_context_keeps_its_newest_entries_and_removal_keeps_the_rest_findable() {
    let index = ConversationIndex::default();
    let coarse = ContextFingerprint([7; 32]);
    let id = |n: u32| {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&n.to_le_bytes());
        CacheKey(k)
    };
    for n in 0..(GROUP_MAX as u32 + 10) {
        index.insert(id(n), &coarse, &Q, &H);
    }
    assert_eq!(index.len(), GROUP_MAX, "bounded");
    assert_eq!(index.evicted(), 10);
    let inner = read(&index.inner);
    let group = inner.groups.get(&coarse.0).expect("group");
    assert!(!group.at.contains_key(&id(9)) && group.at.contains_key(&id(10)), "the oldest went first");
    drop(inner);
    // Removing from the middle moves the last member: every position stays right.
    index.remove(&id(100));
    index.remove(&id(GROUP_MAX as u32 + 9));
    let inner = read(&index.inner);
    let group = inner.groups.get(&coarse.0).expect("group");
    assert_eq!(group.members.len(), GROUP_MAX - 2);
    for (k, i) in &group.at {
        assert_eq!(group.members.get(*i).map(|m| m.id), Some(*k));
    }
}
