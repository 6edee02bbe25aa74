use super::*;
use deja_embed::cosine;
use deja_store::{Entry, EntryKind, EntryUsage, SemanticMeta};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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
        semantic: Some(SemanticMeta {
            fingerprint: fp.to_hex(),
            text: format!("q{n}"),
            conversation: None,
            vector_of: None,
        }),
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

/// Inserts as the server makes them (store, then index) from another thread
/// until `stop`, returning what was inserted.
fn insert_until(
    store: Arc<Store>,
    index: Arc<SemanticIndex>,
    stop: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    fps: Vec<ContextFingerprint>,
) -> std::thread::JoinHandle<Vec<(CacheKey, ContextFingerprint, Vec<f32>)>> {
    std::thread::spawn(move || {
        let mut inserted = Vec::new();
        let mut n = 100_000u32;
        while !stop.load(Ordering::SeqCst) {
            let fp = fps[n as usize % fps.len()];
            let v = unit(n, 32);
            inserted.push((put(&store, &index, n, &fp, &v), fp, v));
            started.fetch_add(1, Ordering::SeqCst);
            n += 1;
        }
        inserted
    })
}

fn wait_for(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::SeqCst) < n {
        std::thread::yield_now();
    }
}

#[test]
fn inserts_during_a_rebuild_are_never_lost() {
    let store = Arc::new(Store::temporary().expect("store"));
    let index = Arc::new(SemanticIndex::new());
    let fps: Vec<ContextFingerprint> = (1..=3).map(|b| ContextFingerprint([b; 32])).collect();
    for n in 0..3_000u32 {
        put(&store, &index, n, &fps[n as usize % 3], &unit(n, 32));
    }
    let (stop, started) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let inserter = insert_until(store.clone(), index.clone(), stop.clone(), started.clone(), fps.clone());
    for round in 1..=2 {
        wait_for(&started, round * 20);
        index.rebuild_from(&store).expect("rebuild");
    }
    stop.store(true, Ordering::SeqCst);
    let inserted = inserter.join().expect("inserter");
    assert_eq!(index.len(), 3_000 + inserted.len());
    let lost: Vec<CacheKey> = inserted
        .iter()
        .filter(|(id, fp, v)| !index.search(&store, fp, v, 4).expect("search").iter().any(|c| c.id == *id))
        .map(|(id, _, _)| *id)
        .collect();
    assert!(lost.is_empty(), "{} of {} inserts made during rebuilds were lost", lost.len(), inserted.len());
}

#[test]
fn an_overflowing_change_log_keeps_the_index_whole_and_asks_for_another_rebuild() {
    let store = Arc::new(Store::temporary().expect("store"));
    let index = Arc::new(SemanticIndex::with_pending_limit(0));
    let fps = vec![ContextFingerprint([1; 32])];
    for n in 0..2_000u32 {
        put(&store, &index, n, &fps[0], &unit(n, 32));
    }
    let (stop, started) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let inserter = insert_until(store.clone(), index.clone(), stop.clone(), started.clone(), fps.clone());
    wait_for(&started, 20);
    index.rebuild_from(&store).expect("rebuild");
    let during = started.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let inserted = inserter.join().expect("inserter");
    assert!(during > 20);
    assert!(index.needs_rebuild(), "a rebuild that could not replay every change asks for another");
    for (id, fp, v) in &inserted {
        assert!(index.search(&store, fp, v, 4).expect("search").iter().any(|c| c.id == *id));
    }
    assert_eq!(index.rebuild_from(&store).expect("rebuild"), 2_000 + inserted.len());
    assert!(!index.needs_rebuild());
}

#[test]
fn a_context_busy_building_its_graph_does_not_hold_up_the_others() {
    let store = Arc::new(Store::temporary().expect("store"));
    let index = Arc::new(SemanticIndex::new());
    let (busy, other) = (ContextFingerprint([1; 32]), ContextFingerprint([2; 32]));
    put(&store, &index, 1, &busy, &unit(1, 16));
    let other_id = put(&store, &index, 2, &other, &unit(2, 16));
    // What a graph build holds while it runs: its own group, for writing.
    let group = index.group(&busy.0).expect("group");
    let _building = write(&group);
    let (tx, rx) = std::sync::mpsc::channel();
    let (s, ix) = (store.clone(), index.clone());
    std::thread::spawn(move || {
        let found = ix.search(&s, &other, &unit(2, 16), 1).map(|c| c.first().map(|c| c.id));
        let inserted = put(&s, &ix, 3, &other, &unit(3, 16));
        let _ = tx.send((found.ok().flatten(), inserted));
    });
    let (found, _) = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("not held up");
    assert_eq!(found, Some(other_id));
}

#[test]
fn a_graph_search_reports_the_exact_similarity_not_the_quantized_one() {
    let store = Store::temporary().expect("store");
    let index = SemanticIndex::new();
    let fp = ContextFingerprint([4; 32]);
    let vectors: Vec<Vec<f32>> = (0..600u32).map(|n| unit(n, 384)).collect();
    for (n, v) in vectors.iter().enumerate() {
        put(&store, &index, n as u32, &fp, v);
    }
    assert_eq!(index.stats().graphs, 1, "past the exact-scan size the group has a graph");
    // A query near entry 42, as a paraphrase is near its question.
    let noise = unit(9_999, 384);
    let mut query: Vec<f32> = vectors[42].iter().zip(&noise).map(|(a, b)| a + 0.3 * b).collect();
    let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    query.iter_mut().for_each(|x| *x /= norm);
    let found = index.search(&store, &fp, &query, 4).expect("search");
    let best = found.first().expect("a candidate");
    let mut idb = [0u8; 32];
    idb[..4].copy_from_slice(&42u32.to_le_bytes());
    assert_eq!(best.id, CacheKey(idb));
    assert_eq!(best.similarity.to_bits(), cosine(&query, &vectors[42]).to_bits());
    for c in &found {
        let v = store.vector(&c.id).expect("vector").expect("stored");
        assert_eq!(c.similarity.to_bits(), cosine(&query, &v).to_bits());
    }
}

#[test]
fn the_quantized_distance_stays_close_to_the_exact_one() {
    use super::super::group::{quantize, QuantizedCosine};
    use hnsw_rs::anndists::dist::Distance;
    let mut worst = 0.0f32;
    for n in 0..200u32 {
        let (a, b) = (unit(n, 384), unit(n + 1_000, 384));
        let exact = 1.0 - cosine(&a, &b);
        let quantized = QuantizedCosine.eval(&quantize(&a), &quantize(&b));
        worst = worst.max((exact - quantized).abs());
        assert!(QuantizedCosine.eval(&quantize(&a), &quantize(&a)) < 0.01, "a vector is near itself");
    }
    assert!(worst < 0.01, "worst difference {worst}");
}
