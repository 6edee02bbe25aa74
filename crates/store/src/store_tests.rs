use super::*;
use crate::entry::{EntryKind, EntryUsage, SemanticMeta};
use serde_json::json;

fn entry(n: u8, created_ms: u64, ttl_ms: u64, ns: &str) -> Entry {
    Entry {
        id: CacheKey([n; 32]),
        kind: EntryKind::Chat,
        namespace: ns.into(),
        requested_model: "auto".into(),
        answered_by: "cheap".into(),
        request: json!([{"role": "user", "content": format!("question {n}")}]),
        response: json!({"id": "x", "choices": []}),
        usage: EntryUsage { prompt_tokens: 10, completion_tokens: 20 },
        cost_usd: 0.001,
        created_ms,
        expires_ms: created_ms + ttl_ms,
        semantic: Some(SemanticMeta {
            fingerprint: CacheKey([7; 32]).to_hex(),
            text: format!("question {n}"),
            conversation: None,
            vector_of: None,
        }),
    }
}

#[test]
fn put_get_replace_remove() {
    let s = Store::temporary().expect("store");
    let e = entry(1, 1_000, 10_000, "a");
    s.put(&e, Some(&[1.0, 2.0])).expect("put");
    assert_eq!(s.get(&e.id).expect("get"), Some(e.clone()));
    assert_eq!(s.len(), 1);
    let mut e2 = e.clone();
    e2.created_ms = 2_000;
    e2.expires_ms = 3_000;
    s.put(&e2, Some(&[1.0, 2.0])).expect("replace");
    assert_eq!(s.len(), 1);
    assert_eq!(s.expired(2_500, 10).expect("expired"), Vec::<CacheKey>::new());
    assert_eq!(s.expired(3_000, 10).expect("expired"), vec![e.id]);
    assert!(s.remove(&e.id).expect("remove"));
    assert!(!s.remove(&e.id).expect("remove again"));
    assert_eq!(s.get(&e.id).expect("get"), None);
    assert_eq!(s.len(), 0);
    assert_eq!(s.vectors().count(), 0);
    assert_eq!(s.expired(u64::MAX, 10).expect("expired").len(), 0);
    assert_eq!(s.least_recently_used(10).expect("lru").len(), 0);
}

#[test]
fn hits_move_entries_to_the_back_of_the_lru_order() {
    let s = Store::temporary().expect("store");
    for n in 1..=3 {
        s.put(&entry(n, 1_000 * n as u64, 1_000_000, "a"), None).expect("put");
    }
    let stats = s.record_hit(&CacheKey([1; 32]), 10_000).expect("hit");
    assert_eq!(stats.hits, 1);
    let lru = s.least_recently_used(3).expect("lru");
    assert_eq!(lru, vec![CacheKey([2; 32]), CacheKey([3; 32]), CacheKey([1; 32])]);
}

#[test]
fn listing_is_newest_first_with_a_cursor_and_filters() {
    let s = Store::temporary().expect("store");
    for n in 1..=5u8 {
        s.put(&entry(n, 1_000 * n as u64, 1_000_000, if n % 2 == 0 { "even" } else { "odd" }), None).expect("put");
    }
    let page = s.list(&ListFilter::default(), None, 2).expect("list");
    let ids: Vec<u8> = page.entries.iter().map(|(e, _)| e.id.0[0]).collect();
    assert_eq!(ids, vec![5, 4]);
    let page2 = s.list(&ListFilter::default(), page.next_cursor.as_deref(), 10).expect("list");
    let ids: Vec<u8> = page2.entries.iter().map(|(e, _)| e.id.0[0]).collect();
    assert_eq!(ids, vec![3, 2, 1]);
    assert!(page2.next_cursor.is_none());
    let odd = ListFilter { namespace: Some("odd".into()), ..Default::default() };
    assert_eq!(s.matching(&odd).expect("matching").len(), 3);
    let old = ListFilter { created_before_ms: Some(2_500), ..Default::default() };
    assert_eq!(s.matching(&old).expect("matching").len(), 2);
}

#[test]
fn counters_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = Store::open(dir.path()).expect("open");
        s.put(&entry(9, 1, 1_000_000, "a"), Some(&[0.5, -0.5])).expect("put");
        s.add(Counter::ExactHits, 3).expect("add");
        s.add(Counter::ExactHits, 4).expect("add");
        s.add_spent_by_model("cheap", 1_500).expect("spent");
        s.flush().expect("flush");
    }
    let s = Store::open(dir.path()).expect("reopen");
    assert_eq!(s.counter(Counter::ExactHits).expect("counter"), 7);
    assert_eq!(s.counter(Counter::NanoUsdSpent).expect("counter"), 1_500);
    assert_eq!(s.spent_by_model().expect("by model").get("cheap"), Some(&1_500));
    assert_eq!(s.len(), 1);
    let v: Vec<StoredVector> = s.vectors().collect::<Result<_, _>>().expect("vectors");
    assert_eq!(v[0].vector, vec![0.5, -0.5]);
    assert_eq!(v[0].fingerprint, [7; 32]);
}

#[test]
fn an_undecodable_entry_can_be_replaced_and_is_counted_once() {
    let s = Store::temporary().expect("store");
    let e = entry(4, 1_000, 10_000, "a");
    s.put(&e, None).expect("put");
    s.entries.insert(&e.id.0[..], &b"garbage"[..]).expect("damage");
    assert!(matches!(s.get(&e.id), Err(StoreError::Corrupt(_))));
    s.put(&e, None).expect("replace");
    assert_eq!(s.get(&e.id).expect("get"), Some(e.clone()));
    assert_eq!(s.corrupt_entries(), 1);
    assert_eq!(s.len(), 1);
    assert_eq!(s.least_recently_used(10).expect("lru"), vec![e.id]);
}

#[test]
fn hits_and_counters_stay_in_memory_until_a_flush_and_reads_include_them() {
    let s = Store::temporary().expect("store");
    let e = entry(1, 1_000, 1_000_000, "a");
    s.put(&e, None).expect("put");
    for t in 0..3 {
        s.record_hit(&e.id, 5_000 + t).expect("hit");
    }
    s.add(Counter::ExactHits, 3).expect("add");
    s.add_spent_by_model("cheap", 1_500).expect("spent");
    // Nothing reached sled yet...
    let on_disk = |s: &Store| s.hit_stats.get(e.id.0).expect("read").map(|b| HitStats::decode(&b)).unwrap_or_default();
    assert_eq!(on_disk(&s), HitStats { hits: 0, last_access_ms: 1_000 });
    assert!(s.counters.get(Counter::ExactHits.key()).expect("read").is_none());
    // ...but every read sees it.
    assert_eq!(s.hit_stats(&e.id).expect("stats"), HitStats { hits: 3, last_access_ms: 5_002 });
    assert_eq!(s.counter(Counter::ExactHits).expect("counter"), 3);
    assert_eq!(s.counter(Counter::NanoUsdSpent).expect("counter"), 1_500);
    assert_eq!(s.spent_by_model().expect("by model").get("cheap"), Some(&1_500));
    s.flush().expect("flush");
    assert_eq!(on_disk(&s), HitStats { hits: 3, last_access_ms: 5_002 });
    assert_eq!(s.hit_stats(&e.id).expect("stats").hits, 3, "flushed deltas are not counted twice");
    assert_eq!(s.counter(Counter::ExactHits).expect("counter"), 3);
    assert_eq!(s.spent_by_model().expect("by model").get("cheap"), Some(&1_500));
}

#[test]
fn eviction_sees_hits_not_yet_flushed() {
    let s = Store::temporary().expect("store");
    for n in 1..=3 {
        s.put(&entry(n, 1_000 * n as u64, 1_000_000, "a"), None).expect("put");
    }
    s.record_hit(&CacheKey([1; 32]), 10_000).expect("hit");
    assert_eq!(s.evict_least_recently_used(1).expect("evict"), vec![CacheKey([2; 32])]);
    assert_eq!(s.hit_stats(&CacheKey([1; 32])).expect("stats").hits, 1);
}

#[test]
fn pending_hits_of_a_removed_entry_are_dropped_with_it() {
    let s = Store::temporary().expect("store");
    let e = entry(1, 1_000, 1_000_000, "a");
    s.put(&e, None).expect("put");
    s.record_hit(&e.id, 5_000).expect("hit");
    assert!(s.remove(&e.id).expect("remove"));
    s.flush().expect("flush");
    assert_eq!(s.hit_stats(&e.id).expect("stats"), HitStats::default());
    assert!(s.least_recently_used(10).expect("lru").is_empty());
}

#[test]
fn counts_survive_closing_without_an_explicit_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = entry(2, 1_000, 1_000_000, "a");
    {
        let s = Store::open(dir.path()).expect("open");
        s.put(&e, None).expect("put");
        s.record_hit(&e.id, 2_000).expect("hit");
        s.add(Counter::Requests, 2).expect("add");
    }
    let s = Store::open(dir.path()).expect("reopen");
    assert_eq!(s.counter(Counter::Requests).expect("counter"), 2);
    assert_eq!(s.hit_stats(&e.id).expect("stats").hits, 1);
}

#[test]
fn aliases_die_with_their_entry_on_sweep_and_replacement() {
    let s = Store::temporary().expect("store");
    let (a, b) = (entry(1, 10, 100, "default"), entry(2, 10, 10_000, "default"));
    s.put(&a, None).expect("put");
    s.put(&b, None).expect("put");
    let (x, y, z) = (CacheKey([7; 32]), CacheKey([8; 32]), CacheKey([9; 32]));
    assert!(s.add_alias(&x, &a.id, 0.9).expect("alias"));
    assert!(s.add_alias(&y, &a.id, 0.9).expect("alias"));
    assert!(s.add_alias(&z, &b.id, 0.87).expect("alias"));
    assert!(!s.add_alias(&x, &CacheKey([3; 32]), 0.9).expect("alias of nothing"), "no alias of a missing entry");
    assert_eq!(s.aliases_of(&a.id).expect("aliases"), vec![x, y]);
    let swept = s.sweep_expired(1_000, 10).expect("sweep");
    assert_eq!(swept.removed, vec![a.id]);
    assert_eq!((s.alias(&x).expect("x"), s.alias(&y).expect("y")), (None, None));
    assert_eq!(s.alias(&z).expect("z"), Some(b.id));
    assert_eq!(s.alias_learned(&z).expect("z"), Some((b.id, 0.87)), "the similarity it was learned at");
    s.put(&b, None).expect("replace");
    assert_eq!(s.alias(&z).expect("z"), None, "a new answer under the key drops what was verified");
}

#[test]
fn verifications_are_counted_per_namespace_across_a_flush() {
    let s = Store::temporary().expect("store");
    s.add_verification("default", 1_500);
    s.flush().expect("flush");
    s.add_verification("default", 500);
    s.add_verification("key-abc", 0);
    let by_ns = s.verifications_by_namespace().expect("read");
    assert_eq!(by_ns.get("default"), Some(&crate::Verifications { calls: 2, nano_usd: 2_000 }));
    assert_eq!(by_ns.get("key-abc"), Some(&crate::Verifications { calls: 1, nano_usd: 0 }));
}

#[test]
fn every_vector_change_is_logged_with_a_stable_number() {
    let s = Store::temporary().expect("store");
    let before = s.vector_seq();
    let with_vector = entry(1, 1_000, 10, "a");
    s.put(&with_vector, Some(&[1.0, 0.0])).expect("put");
    s.put(&entry(2, 1_000, 1_000_000, "a"), None).expect("put without a vector");
    s.remove(&CacheKey([2; 32])).expect("remove without a vector");
    s.put(&entry(3, 1_000, 1_000_000, "a"), Some(&[0.0, 1.0])).expect("put");
    s.remove(&CacheKey([3; 32])).expect("remove");
    s.sweep_expired(5_000, 10).expect("sweep");
    let logged: Vec<CacheKey> = s.vector_changes_after(before).map(|c| c.expect("change").1).collect();
    assert_eq!(logged, vec![CacheKey([1; 32]), CacheKey([3; 32]), CacheKey([3; 32]), CacheKey([1; 32])]);
    let seq = s.vector_seq();
    assert!(s.vector_changes_after(before).all(|c| c.expect("change").0 <= seq));
    assert_eq!(s.forget_vector_changes(seq).expect("forget"), 4);
    assert_eq!(s.vector_changes_forgotten().expect("forgotten"), seq);
    assert_eq!(s.vector_changes_after(0).count(), 0);
}

#[test]
fn bytes_follow_every_write_and_match_a_fresh_count_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = vec![0.5f32; 384];
    let (a, b) = (entry(1, 1_000, 1_000, "a"), entry(2, 1_000, 8_000, "a"));
    let tracked = {
        let s = Store::open(dir.path()).expect("open");
        assert_eq!(s.bytes(), 0);
        s.put(&a, Some(&vector)).expect("put");
        let one = s.bytes();
        assert!(one > 384 * 4, "the vector counts: {one}");
        s.put(&a, Some(&vector)).expect("replace");
        assert_eq!(s.bytes(), one, "a replaced entry is not counted twice");
        s.put(&a, None).expect("replace without a vector");
        assert!(s.bytes() < one - 384 * 4 + 64, "its vector went with it");
        s.put(&a, Some(&vector)).expect("put");
        s.put(&b, Some(&vector)).expect("put");
        assert_eq!(s.bytes(), 2 * one);
        assert_eq!(s.sweep_expired(5_000, 10).expect("sweep").removed, vec![a.id]);
        assert_eq!(s.bytes(), one);
        s.bytes()
    };
    let s = Store::open(dir.path()).expect("reopen");
    assert_eq!(s.bytes(), tracked);
    assert!(s.remove(&b.id).expect("remove"));
    assert_eq!(s.bytes(), 0);
}

#[test]
fn a_clean_close_saves_the_counts_and_a_crash_falls_back_to_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vector = vec![0.5f32; 384];
    let (len, bytes) = {
        let s = Store::open(dir.path()).expect("open");
        for n in 1..=5 {
            s.put(&entry(n, 1_000, 1_000_000, "a"), Some(&vector)).expect("put");
        }
        (s.len(), s.bytes())
    };
    {
        let s = Store::open(dir.path()).expect("reopen");
        assert_eq!((s.len(), s.bytes()), (len, bytes));
        // The saved counts were taken at open: a crash from here on (this
        // store is leaked, never closed) must not leave them behind.
        assert!(s.meta(CLEAN_SIZES_KEY).expect("meta").is_none());
        s.put(&entry(6, 1_000, 1_000_000, "a"), Some(&vector)).expect("put");
        s.flush().expect("flush");
        let crashed = (s.len(), s.bytes());
        std::mem::forget(s);
        // sled lets go of the directory only when its last handle is
        // dropped: reopening needs another copy of the files, as a new
        // process after a kill would find them.
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(dir.path(), copy.path());
        let s = Store::open(copy.path()).expect("open after a crash");
        assert_eq!((s.len(), s.bytes()), crashed, "counted again, with the entry written after the open");
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn ids_with_prefix_finds_entries_by_the_start_of_their_hex_id() {
    let s = Store::temporary().expect("store");
    let with_id = |bytes: [u8; 32]| Entry { id: CacheKey(bytes), ..entry(0, 1_000, 1_000_000, "a") };
    let mut a = [0xab; 32];
    a[4] = 0x10;
    let mut b = [0xab; 32];
    b[4] = 0x1f;
    let c = [0xcd; 32];
    for bytes in [a, b, c] {
        s.put(&with_id(bytes), None).expect("put");
    }
    let (a, b, c) = (CacheKey(a), CacheKey(b), CacheKey(c));
    assert_eq!(s.ids_with_prefix("abababab", 10).expect("scan"), vec![a, b], "shared by two");
    assert_eq!(s.ids_with_prefix("abababab1", 10).expect("scan"), vec![a, b], "odd length");
    assert_eq!(s.ids_with_prefix("ABABABAB10", 10).expect("scan"), vec![a], "either case");
    assert_eq!(s.ids_with_prefix("abababab1f", 10).expect("scan"), vec![b]);
    assert_eq!(s.ids_with_prefix("abababab", 1).expect("scan"), vec![a], "at most limit");
    assert_eq!(s.ids_with_prefix(&c.to_hex(), 10).expect("scan"), vec![c], "a whole id");
    assert!(s.ids_with_prefix("abababac", 10).expect("scan").is_empty());
    assert!(s.ids_with_prefix("not hex!", 10).expect("scan").is_empty());
    assert!(s.ids_with_prefix(&format!("{}0", c.to_hex()), 10).expect("scan").is_empty(), "too long");
}
