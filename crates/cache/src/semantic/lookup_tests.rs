use super::*;
use deja_api::CacheKey;
use deja_store::{EntryKind, EntryUsage, SemanticMeta};

fn entry(n: u8, namespace: &str, fingerprint: &ContextFingerprint) -> Entry {
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
        semantic: Some(SemanticMeta { fingerprint: fingerprint.to_hex(), text: "when do you open?".into() }),
    }
}

fn settings() -> SemanticSettings {
    SemanticSettings {
        threshold: 0.9,
        ladder_thresholds: HashMap::new(),
        guards: GuardSettings::default(),
        candidates: 4,
    }
}

const V: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

/// Stores `e` and indexes it under `indexed_as`, which may not be its own
/// fingerprint: what a wrong or stale index would hold.
fn plant(store: &Store, index: &SemanticIndex, e: &Entry, indexed_as: &ContextFingerprint) {
    store.put(e, Some(&V)).expect("put");
    index.insert(store, e.id, indexed_as, &V).expect("index");
}

fn query<'a>(namespace: &'a str, fingerprint: &'a ContextFingerprint) -> Query<'a> {
    Query { namespace, fingerprint, vector: &V, text: "when do you open?", threshold: 0.9 }
}

#[test]
fn an_entry_of_another_context_is_never_served() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let (asked, other) = (ContextFingerprint([1; 32]), ContextFingerprint([2; 32]));
    plant(&store, &index, &entry(1, "default", &other), &asked);
    let (hit, refusals) = lookup(&store, &index, &query("default", &asked), &settings(), 10).expect("lookup");
    assert!(hit.is_none(), "served an entry stored under another fingerprint");
    assert_eq!(refusals, vec![Refusal::Context]);
    let judged = judge(&store, &index, &query("default", &asked), &settings(), 4, 10).expect("judge");
    assert_eq!(judged[0].refused_by.as_deref(), Some("context"));
    assert_eq!(store.hit_stats(&CacheKey([1; 32])).expect("stats").hits, 0);
}

#[test]
fn an_entry_of_another_namespace_is_never_served() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp = ContextFingerprint([1; 32]);
    plant(&store, &index, &entry(1, "key-aaaa", &fp), &fp);
    let (hit, refusals) = lookup(&store, &index, &query("key-bbbb", &fp), &settings(), 10).expect("lookup");
    assert!(hit.is_none(), "served another tenant's entry");
    assert_eq!(refusals, vec![Refusal::Context]);
    let (hit, _) = lookup(&store, &index, &query("key-aaaa", &fp), &settings(), 10).expect("lookup");
    assert_eq!(hit.map(|h| h.entry.id), Some(CacheKey([1; 32])), "its own tenant is served");
}
