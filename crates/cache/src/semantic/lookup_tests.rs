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
        semantic: Some(SemanticMeta {
            fingerprint: fingerprint.to_hex(),
            text: "when do you open?".into(),
            conversation: None,
            vector_of: None,
        }),
    }
}

fn settings() -> SemanticSettings {
    SemanticSettings {
        threshold: 0.9,
        verify_from: 0.8,
        ladder_thresholds: HashMap::new(),
        guards: GuardSettings::default(),
        candidates: 4,
    }
}

const V: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

const F: crate::Freshness = crate::Freshness { max_age_ms: None, min_fresh_ms: None };

static MODEL: std::sync::LazyLock<deja_embed::HashEmbedder> =
    std::sync::LazyLock::new(|| deja_embed::HashEmbedder::new(4));

fn reader() -> Reader<'static> {
    Reader { model: &*MODEL, spans: None }
}

/// Stores `e` and indexes it under `indexed_as`, which may not be its own
/// fingerprint: what a wrong or stale index would hold.
fn plant(store: &Store, index: &SemanticIndex, e: &Entry, indexed_as: &ContextFingerprint) {
    store.put(e, Some(&V)).expect("put");
    index.insert(store, e.id, indexed_as, &V).expect("index");
}

fn query<'a>(namespace: &'a str, fingerprint: &'a ContextFingerprint) -> Query<'a> {
    Query { namespace, fingerprint, vector: &V, text: "when do you open?", threshold: 0.9, fresh: F }
}

#[test]
fn an_entry_of_another_context_is_never_served() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let (asked, other) = (ContextFingerprint([1; 32]), ContextFingerprint([2; 32]));
    plant(&store, &index, &entry(1, "default", &other), &asked);
    let (hit, refusals) = lookup(&store, &index, &query("default", &asked), &settings(), reader(), 10).expect("lookup");
    assert!(hit.is_none(), "served an entry stored under another fingerprint");
    assert_eq!(refusals, vec![Refusal::Context]);
    let (judged, _) = judge(&store, &index, &query("default", &asked), &settings(), reader(), 4, 10).expect("judge");
    assert_eq!(judged[0].refused_by.as_deref(), Some("context"));
    assert_eq!(store.hit_stats(&CacheKey([1; 32])).expect("stats").hits, 0);
}

#[test]
fn an_entry_of_another_namespace_is_never_served() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp = ContextFingerprint([1; 32]);
    plant(&store, &index, &entry(1, "key-aaaa", &fp), &fp);
    let (hit, refusals) = lookup(&store, &index, &query("key-bbbb", &fp), &settings(), reader(), 10).expect("lookup");
    assert!(hit.is_none(), "served another tenant's entry");
    assert_eq!(refusals, vec![Refusal::Context]);
    let (hit, _) = lookup(&store, &index, &query("key-aaaa", &fp), &settings(), reader(), 10).expect("lookup");
    assert_eq!(hit.map(|h| h.entry.id), Some(CacheKey([1; 32])), "its own tenant is served");
}

#[test]
fn a_grey_band_candidate_is_offered_for_verification_and_not_counted() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp = ContextFingerprint([1; 32]);
    plant(&store, &index, &entry(1, "default", &fp), &fp);
    // cos = 0.85: between verify_from (0.8) and the threshold (0.9).
    let grey_vector = [0.85, (1.0f32 - 0.85 * 0.85).sqrt(), 0.0, 0.0];
    let q = Query { vector: &grey_vector, text: "what time do you open?", ..query("default", &fp) };
    let found = lookup_banded(&store, &index, &q, &settings(), reader(), Some((0.8, 3)), 10).expect("lookup");
    assert!(found.hit.is_none());
    assert_eq!(found.grey.len(), 1);
    assert_eq!(found.grey[0].text, "when do you open?");
    assert_eq!(store.hit_stats(&CacheKey([1; 32])).expect("stats").hits, 0);
    // Without a verifier the grey band is a miss, and below verify_from too.
    let (hit, _) = lookup(&store, &index, &q, &settings(), reader(), 10).expect("lookup");
    assert!(hit.is_none());
    let found = lookup_banded(&store, &index, &q, &settings(), reader(), Some((0.86, 3)), 10).expect("lookup");
    assert!(found.hit.is_none() && found.grey.is_empty());
}

#[test]
fn an_alias_serves_its_entry_only_while_it_lives_in_the_same_namespace() {
    let store = Store::temporary().expect("store");
    let fp = ContextFingerprint([1; 32]);
    let e = entry(1, "default", &fp);
    store.put(&e, Some(&V)).expect("put");
    let alias = CacheKey([9; 32]);
    assert!(store.add_alias(&alias, &e.id, 0.86).expect("alias"));
    let found = crate::exact::lookup_or_alias(&store, &alias, "default", None, &F, 10).expect("lookup");
    let via = crate::exact::Via::Alias { similarity: 0.86 };
    assert_eq!(found.map(|(e, _, via)| (e.id, via)), Some((e.id, via)));
    assert!(crate::exact::lookup_or_alias(&store, &alias, "key-other", None, &F, 10).expect("lookup").is_none());
    // A client's floor applies to aliases: above what it was learned at, or at 1.0, it is not served.
    assert!(crate::exact::lookup_or_alias(&store, &alias, "default", Some(0.9), &F, 10).expect("lookup").is_none());
    assert!(crate::exact::lookup_or_alias(&store, &alias, "default", Some(1.0), &F, 10).expect("lookup").is_none());
    assert!(crate::exact::lookup_or_alias(&store, &alias, "default", Some(0.8), &F, 10).expect("lookup").is_some());
    assert!(store.remove(&e.id).expect("remove"));
    assert!(store.alias(&alias).expect("alias").is_none(), "the alias died with its entry");
    assert!(crate::exact::lookup_or_alias(&store, &alias, "default", None, &F, 10).expect("lookup").is_none());
}
