use super::*;
use deja_store::{Entry, EntryKind, EntryUsage, SemanticMeta};

fn unit(seed: u32, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 1000) as f32 / 500.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn put(store: &Store, index: &SemanticIndex, n: u32, fp: &ContextFingerprint, v: &[f32]) -> CacheKey {
    let mut idb = [0u8; 32];
    idb[..4].copy_from_slice(&n.to_le_bytes());
    let id = CacheKey(idb);
    let e = Entry {
        id,
        kind: EntryKind::Chat,
        namespace: "default".into(),
        requested_model: "m".into(),
        answered_by: "m".into(),
        request: serde_json::json!([]),
        response: serde_json::json!({}),
        usage: EntryUsage::default(),
        cost_usd: 0.0,
        created_ms: 1,
        expires_ms: u64::MAX,
        semantic: Some(SemanticMeta { fingerprint: fp.to_hex(), text: format!("q{n}") }),
    };
    store.put(&e, Some(v)).expect("put");
    index.insert(store, id, fp, v).expect("index");
    id
}

#[test]
fn finds_the_nearest_within_the_fingerprint_only() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp_a = ContextFingerprint([1; 32]);
    let fp_b = ContextFingerprint([2; 32]);
    // Enough entries in A to take the HNSW path, a few in B for the exact scan.
    for n in 0..400 {
        put(&store, &index, n, &fp_a, &unit(n, 32));
    }
    let b_id = put(&store, &index, 10_000, &fp_b, &unit(7, 32));
    let hits = index.search(&store, &fp_a, &unit(7, 32), 3).expect("search");
    assert!((hits[0].similarity - 1.0).abs() < 1e-4);
    assert_ne!(hits[0].id, b_id);
    let hits = index.search(&store, &fp_b, &unit(7, 32), 3).expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, b_id);
    assert!(index.search(&store, &ContextFingerprint([3; 32]), &unit(7, 32), 3).expect("search").is_empty());
}

#[test]
fn removed_entries_are_never_returned_and_rebuild_restores_state() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp = ContextFingerprint([1; 32]);
    let mut ids = Vec::new();
    for n in 0..300 {
        ids.push(put(&store, &index, n, &fp, &unit(n, 16)));
    }
    index.remove(&ids[5]);
    store.remove(&ids[5]).expect("remove");
    let hits = index.search(&store, &fp, &unit(5, 16), 5).expect("search");
    assert!(hits.iter().all(|h| h.id != ids[5]));
    assert_eq!(index.len(), 299);
    assert_eq!(index.tombstones(), 1);

    let rebuilt = SemanticIndex::new();
    assert_eq!(rebuilt.rebuild_from(&store).expect("rebuild"), 299);
    let hits = rebuilt.search(&store, &fp, &unit(6, 16), 1).expect("search");
    assert_eq!(hits[0].id, ids[6]);
}
