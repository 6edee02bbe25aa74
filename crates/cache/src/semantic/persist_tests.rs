use super::*;
use deja_api::ContextFingerprint;
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

fn key(n: u32) -> CacheKey {
    let mut idb = [0u8; 32];
    idb[..4].copy_from_slice(&n.to_le_bytes());
    CacheKey(idb)
}

/// Writes entry `n` to the store only, as a server does before indexing it.
fn store_only(store: &Store, n: u32, fp: &ContextFingerprint) -> CacheKey {
    let id = key(n);
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
    store.put(&e, Some(&unit(n, 32))).expect("put");
    id
}

fn put(store: &Store, index: &SemanticIndex, n: u32, fp: &ContextFingerprint) -> CacheKey {
    let id = store_only(store, n, fp);
    index.insert(store, id, fp, &unit(n, 32)).expect("index");
    id
}

fn delete(store: &Store, index: &SemanticIndex, id: &CacheKey) {
    store.remove(id).expect("remove");
    index.remove(id);
}

const BIG: ContextFingerprint = ContextFingerprint([1; 32]);
const SMALL: ContextFingerprint = ContextFingerprint([2; 32]);

/// A store with 600 entries in a graph context and 20 in a small one, saved.
fn saved_store(dir: &Path) -> (Store, SemanticIndex) {
    let store = Store::open(dir).expect("open");
    let index = SemanticIndex::new();
    index.rebuild_from(&store).expect("rebuild");
    for n in 0..600 {
        put(&store, &index, n, &BIG);
    }
    for n in 1_000..1_020 {
        put(&store, &index, n, &SMALL);
    }
    let report = index.save(&store, &graphs_dir(&store).expect("dir")).expect("save");
    assert_eq!(report.graphs_written, 1);
    (store, index)
}

fn found(store: &Store, index: &SemanticIndex, fp: &ContextFingerprint, n: u32) -> bool {
    let hits = index.search(store, fp, &unit(n, 32), 3).expect("search");
    hits.first().is_some_and(|c| c.id == key(n) && c.similarity > 0.999)
}

fn reopen(dir: &Path) -> (Store, SemanticIndex, Result<RestoreReport, PersistError>) {
    let store = Store::open(dir).expect("reopen");
    let index = SemanticIndex::new();
    let restored = index.restore(&store, &graphs_dir(&store).expect("dir"));
    (store, index, restored)
}

#[test]
fn a_saved_index_loads_without_a_rebuild_and_finds_what_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    drop((store, index));
    let (store, index, restored) = reopen(dir.path());
    let report = restored.expect("restore");
    assert_eq!(report, RestoreReport { entries: 620, graphs_loaded: 1, contexts_rebuilt: 0, replayed: 0 });
    assert_eq!(index.len(), 620);
    let stats = index.stats();
    assert!(stats.loaded_from_dump);
    assert_eq!((stats.rebuilt, stats.graphs, stats.contexts), (0, 1, 2));
    for n in [0, 17, 599] {
        assert!(found(&store, &index, &BIG, n), "entry {n} in the loaded graph");
    }
    assert!(found(&store, &index, &SMALL, 1_005));
    // The loaded graph takes new points.
    put(&store, &index, 700, &BIG);
    assert!(found(&store, &index, &BIG, 700));
}

#[test]
fn changes_after_the_save_are_replayed_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    for n in 600..650 {
        put(&store, &index, n, &BIG);
    }
    put(&store, &index, 1_020, &SMALL);
    for n in [3, 4, 1_001] {
        delete(&store, &index, &key(n));
    }
    // Written to the store and never indexed (the process died in between).
    store_only(&store, 651, &BIG);
    drop((store, index));
    let (store, index, restored) = reopen(dir.path());
    let report = restored.expect("restore");
    assert_eq!(report.replayed, 55);
    assert_eq!(index.len(), 620 + 52 - 3);
    for n in [600, 649, 651] {
        assert!(found(&store, &index, &BIG, n), "entry {n} added after the save");
    }
    assert!(found(&store, &index, &SMALL, 1_020));
    for (fp, n) in [(BIG, 3), (BIG, 4), (SMALL, 1_001)] {
        assert!(!index.search(&store, &fp, &unit(n, 32), 8).expect("search").iter().any(|c| c.id == key(n)));
    }
    assert_eq!(index.tombstones(), 2, "deleted after the save: tombstones in the loaded graph");
}

#[test]
fn a_save_claims_no_change_the_index_had_not_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    // In the store, not yet in the index, when the next save copies it.
    store_only(&store, 800, &BIG);
    put(&store, &index, 801, &BIG);
    let report = index.save(&store, &graphs_dir(&store).expect("dir")).expect("save");
    assert!(report.seq < store.vector_seq());
    drop((store, index));
    let (store, index, restored) = reopen(dir.path());
    restored.expect("restore");
    assert!(found(&store, &index, &BIG, 800));
    assert!(found(&store, &index, &BIG, 801));
}

#[test]
fn unchanged_graphs_are_kept_and_the_change_log_is_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    assert_eq!(store.vector_changes_len(), 0);
    put(&store, &index, 1_021, &SMALL);
    delete(&store, &index, &key(10));
    let report = index.save(&store, &graphs_dir(&store).expect("dir")).expect("save");
    assert_eq!((report.graphs_written, report.graphs_kept), (0, 1));
    assert_eq!(store.vector_changes_len(), 0);
    put(&store, &index, 900, &BIG);
    let report = index.save(&store, &graphs_dir(&store).expect("dir")).expect("save");
    assert_eq!((report.graphs_written, report.graphs_kept), (1, 0));
    let files = std::fs::read_dir(graphs_dir(&store).expect("dir")).expect("dir").count();
    assert_eq!(files, 3, "one graph's two files and the record: older files are removed");
    drop((store, index));
    let (store, index, restored) = reopen(dir.path());
    restored.expect("restore");
    assert_eq!(index.len(), 620 + 2 - 1);
    assert!(found(&store, &index, &BIG, 900));
}

#[test]
fn a_damaged_graph_file_rebuilds_its_context_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    let graphs = graphs_dir(&store).expect("dir");
    drop((store, index));
    let data = std::fs::read_dir(&graphs)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.to_string_lossy().ends_with(".hnsw.data"))
        .expect("a data file");
    let len = std::fs::metadata(&data).expect("meta").len();
    // Half-written, as a kill in the middle of a write leaves it.
    std::fs::OpenOptions::new().write(true).open(&data).expect("open").set_len(len / 2).expect("truncate");
    let (store, index, restored) = reopen(dir.path());
    let report = restored.expect("restore");
    assert_eq!((report.graphs_loaded, report.contexts_rebuilt, report.entries), (0, 1, 620));
    assert!(found(&store, &index, &BIG, 42));
    assert!(found(&store, &index, &SMALL, 1_000));
}

#[test]
fn a_missing_or_damaged_record_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    let graphs = graphs_dir(&store).expect("dir");
    drop((store, index));
    let record = graphs.join(super::super::manifest::FILE);
    let bytes = std::fs::read(&record).expect("record");
    std::fs::write(&record, bytes.get(..bytes.len() - 7).expect("shorter")).expect("write");
    let (store, index, restored) = reopen(dir.path());
    assert!(matches!(restored, Err(PersistError::Io(_))), "{restored:?}");
    assert!(index.is_empty(), "a refused restore leaves the index alone");
    drop((store, index));
    std::fs::remove_file(&record).expect("remove");
    let (_store, _index, restored) = reopen(dir.path());
    assert!(matches!(restored, Err(PersistError::NoRecord)), "{restored:?}");
}

#[test]
fn a_record_saved_for_another_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    let graphs = graphs_dir(&store).expect("dir");
    drop((store, index));
    let other = tempfile::tempdir().expect("tempdir");
    let store = Store::open(other.path()).expect("open");
    let restored = SemanticIndex::new().restore(&store, &graphs);
    assert!(matches!(restored, Err(PersistError::Invalid(_))), "{restored:?}");
}

#[test]
fn inserts_while_a_graph_is_frozen_are_searched_and_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    let group = index.group_for_tests(&BIG);
    let frozen = write(&group).freeze();
    assert!(frozen.is_some());
    put(&store, &index, 950, &BIG);
    assert!(found(&store, &index, &BIG, 950), "waiting beside the frozen graph, searched exactly");
    delete(&store, &index, &key(950));
    put(&store, &index, 951, &BIG);
    write(&group).thaw(&store).expect("thaw");
    assert!(found(&store, &index, &BIG, 951));
    assert!(!index.search(&store, &BIG, &unit(950, 32), 8).expect("search").iter().any(|c| c.id == key(950)));
    assert_eq!(index.len(), 621);
}

#[test]
fn a_rebuild_asks_for_a_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, index) = saved_store(dir.path());
    assert!(!index.has_unsaved());
    index.rebuild_from(&store).expect("rebuild");
    assert!(index.has_unsaved() && index.should_save(), "rebuilt graphs are not saved yet");
}
