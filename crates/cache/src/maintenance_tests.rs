use super::*;
use deja_api::CacheKey;
use deja_store::{Entry, EntryKind, EntryUsage};
use std::sync::mpsc;
use std::time::Duration;

fn index_key(ms: u64, id: &[u8; 32]) -> Vec<u8> {
    let mut k = ms.to_be_bytes().to_vec();
    k.extend_from_slice(id);
    k
}

fn id(n: u32, tag: u8) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b
}

fn live_entry(n: u32) -> Entry {
    Entry {
        id: CacheKey(id(n, 0xaa)),
        kind: EntryKind::Chat,
        namespace: "default".into(),
        requested_model: "m".into(),
        answered_by: "m".into(),
        request: serde_json::json!([]),
        response: serde_json::json!({}),
        usage: EntryUsage::default(),
        cost_usd: 0.0,
        created_ms: 5,
        expires_ms: u64::MAX,
        semantic: None,
    }
}

/// Writes what a damaged store can hold, straight into sled: entries that
/// cannot be decoded, with every index key an entry has, and expiry keys
/// whose entry is gone altogether.
fn plant_damage(dir: &std::path::Path, corrupt: u32, orphaned: u32) {
    // No background flusher: it could hold the file lock past `drop` and make
    // the reopen below fail.
    // The store closed just before may still be letting go of the file
    // lock (its flusher thread): wait for it, as `Store::open` does.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Ok(db) => break db,
            Err(e) if tries < 200 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err(e) => panic!("raw open: {e:?}"),
        }
    };
    // A cleanly closed store saved its counts for the next open; entries
    // written behind its back must be counted, as after a crash.
    db.open_tree("meta").expect("tree").remove(deja_store::CLEAN_SIZES_KEY).expect("remove");
    let entries = db.open_tree("entries").expect("tree");
    let by_created = db.open_tree("by_created").expect("tree");
    let by_expiry = db.open_tree("by_expiry").expect("tree");
    let by_access = db.open_tree("by_access").expect("tree");
    let hit_stats = db.open_tree("hit_stats").expect("tree");
    for n in 0..corrupt {
        let id = id(n, 1);
        entries.insert(id, &b"{\"not an entry"[..]).expect("insert");
        by_created.insert(index_key(5, &id), &[]).expect("insert");
        by_expiry.insert(index_key(10, &id), &[]).expect("insert");
        by_access.insert(index_key(3, &id), &[]).expect("insert");
        let mut stats = [0u8; 16];
        stats[8..].copy_from_slice(&3u64.to_be_bytes());
        hit_stats.insert(id, &stats[..]).expect("insert");
    }
    for n in 0..orphaned {
        by_expiry.insert(index_key(10, &id(n, 2)), &[]).expect("insert");
    }
    db.flush().expect("flush");
}

#[test]
fn sweeps_finish_and_clear_undecodable_and_missing_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        for n in 0..3 {
            store.put(&live_entry(n), None).expect("put");
        }
        store.flush().expect("flush");
    }
    plant_damage(dir.path(), 1_500, 700);
    let store = std::sync::Arc::new(Store::open(dir.path()).expect("reopen"));
    let (tx, rx) = mpsc::channel();
    let s = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(sweep(&s, None, 1_000, Bounds::entries(u64::MAX)));
    });
    let report = rx.recv_timeout(Duration::from_secs(30)).expect("the sweep finishes").expect("sweep");
    assert_eq!(report.expired, 1_500);
    assert_eq!(store.len(), 3);
    assert_eq!(store.corrupt_entries(), 1_500);
    assert!(store.expired(u64::MAX - 1, 10).expect("expired").is_empty(), "every planted expiry key is gone");
    let lru = store.least_recently_used(10).expect("lru");
    assert_eq!(lru.len(), 3, "access keys of the dropped entries are gone: {lru:?}");
    let page = store.list(&deja_store::ListFilter::default(), None, 10).expect("list");
    assert_eq!(page.entries.len(), 3);
    // A second pass has nothing left to do.
    assert_eq!(sweep(&store, None, 1_000, Bounds::entries(u64::MAX)).expect("sweep"), SweepReport::default());
}

#[test]
fn eviction_gets_past_undecodable_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path()).expect("open");
        for n in 0..3 {
            store.put(&live_entry(n), None).expect("put");
        }
        store.flush().expect("flush");
    }
    plant_damage(dir.path(), 1_200, 0);
    let store = Store::open(dir.path()).expect("reopen");
    // Nothing has expired yet: only eviction can bring the store down to
    // size, and the undecodable entries were used least recently.
    let report = sweep(&store, None, 1, Bounds::entries(2)).expect("sweep");
    assert_eq!(store.len(), 2);
    assert_eq!(report.evicted, 1_201);
    assert_eq!(store.corrupt_entries(), 1_200);
}

#[test]
fn past_max_bytes_the_least_recently_used_go_with_their_vectors() {
    let store = Store::temporary().expect("store");
    let vector = vec![0.25f32; 384];
    let mut ids = Vec::new();
    for n in 0..10 {
        let mut e = live_entry(n);
        e.created_ms = 10 + u64::from(n);
        e.semantic = Some(deja_store::SemanticMeta {
            fingerprint: CacheKey([7; 32]).to_hex(),
            text: format!("question {n}"),
            conversation: None,
            vector_of: None,
        });
        store.put(&e, Some(&vector)).expect("put");
        ids.push(e.id);
    }
    let per_entry = store.bytes() / 10;
    // The oldest entry was read since: it is the most recently used now.
    store.record_hit(&ids[0], 1_000).expect("hit");
    let bounds = Bounds { max_entries: u64::MAX, max_bytes: Some(per_entry * 4 + per_entry / 2) };
    let report = sweep(&store, None, 1, bounds).expect("sweep");
    assert_eq!(report.evicted, 6);
    assert_eq!(store.len(), 4);
    assert!(store.bytes() <= per_entry * 4 + per_entry / 2, "{} bytes left", store.bytes());
    assert!(store.get(&ids[0]).expect("get").is_some(), "a recent hit keeps its entry");
    for gone in &ids[1..7] {
        assert!(store.get(gone).expect("get").is_none());
        assert!(store.vector(gone).expect("vector").is_none(), "the vector goes with its entry");
    }
    assert!(!bounds.exceeded_by(&store));
}

#[test]
fn an_undecodable_entry_is_a_miss_and_the_next_answer_replaces_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("db");
    drop(Store::open(&path).expect("open"));
    plant_damage(&path, 1, 0);
    let store = Store::open(&path).expect("reopen");
    let key = CacheKey(id(0, 1));
    let raw = store.get(&key);
    assert!(matches!(raw, Err(deja_store::StoreError::Corrupt(_))), "the planted entry is undecodable: {raw:?}");
    assert!(crate::exact::lookup(&store, &key, 10).expect("lookup").is_none(), "a miss, not an error");
    let mut answer = live_entry(0);
    answer.id = key;
    store.put(&answer, None).expect("put");
    assert_eq!(store.get(&key).expect("get").map(|e| e.id), Some(key), "the miss's answer replaced it");
}
