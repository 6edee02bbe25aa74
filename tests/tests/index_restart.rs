//! A restart loads the saved semantic index instead of rebuilding it, with
//! 50,000 entries in one context: the changes made after the last save are
//! replayed, and a damaged save falls back to a rebuild that still serves.

mod common;

use common::*;
use deja::Running;
use deja_api::CacheKey;
use deja_embed::HashEmbedder;
use deja_testkit::{eventually, Embedding, Harness, TestConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const N: u32 = 50_000;
/// Small vectors keep building the first graph quick on two cores; the
/// embedder answers in the same dimension.
const DIM: usize = 32;

fn config() -> TestConfig {
    TestConfig { embedding: Embedding::Hash, threshold: 0.95, max_entries: 1_000_000, ..Default::default() }
}

async fn launch(config_path: &Path) -> Running {
    let config = deja::config::Config::load(config_path).expect("test config is valid");
    deja::start(config, Some(Arc::new(HashEmbedder::new(DIM)))).await.expect("proxy starts")
}

/// A proxy on the store at `store`, configured like the others.
async fn start_on(dir: tempfile::TempDir, store: &Path, mock: deja_mock_upstream::MockUpstream) -> Harness {
    let test_config = config();
    let config_path = dir.path().join("deja.toml");
    std::fs::write(&config_path, test_config.to_toml(&mock.base_url(), store)).expect("write config");
    let proxy = launch(&config_path).await;
    Harness { proxy, mock, config_path, test_config, dir }
}

fn unit(seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut v: Vec<f32> = (0..DIM)
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

/// `N` more entries in the context of the one entry stored so far, with
/// precomputed vectors, written to the store and then indexed in one
/// rebuild (faster than one insertion at a time).
async fn fill(h: &Harness) {
    let state = h.proxy.state.clone();
    tokio::task::spawn_blocking(move || {
        let first = state.store.list(&Default::default(), None, 1).expect("list").entries;
        let (template, _) = first.first().expect("one entry").clone();
        let meta = template.semantic.clone().expect("a semantic entry");
        for i in 0..N {
            let mut e = template.clone();
            e.id = CacheKey(*blake3::hash(&i.to_le_bytes()).as_bytes());
            e.semantic = Some(deja_store::SemanticMeta {
                fingerprint: meta.fingerprint.clone(),
                text: format!("stored {i}"),
                conversation: None,
                vector_of: None,
            });
            let v = unit(i);
            state.store.put(&e, Some(&v)).expect("put");
        }
        state.index.rebuild_from(&state.store).expect("index");
    })
    .await
    .expect("fill");
}

/// Past 20k entries the index is loaded in the background: waits for it.
async fn wait_for_index(h: &Harness) {
    let ready = eventually(Duration::from_secs(600), || async {
        let r = client().get(h.url("/readyz")).send().await.expect("readyz");
        r.json::<serde_json::Value>().await.expect("json")["semantic_index_ready"] == true
    })
    .await;
    assert!(ready, "{}", index_stats(h).await);
}

async fn index_stats(h: &Harness) -> serde_json::Value {
    admin_get(h, "/admin/stats").await.body["index"].clone()
}

/// Copies a store directory as a killed process leaves it: sled flushed (it
/// flushes every 200 ms), the index as of its last save.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_the_saved_index_replays_later_changes_and_survives_a_damaged_save() {
    let mock = deja_mock_upstream::MockUpstream::start().await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let h = start_on(dir, &store, mock).await;
    assert_eq!(chat(&h, &ask("When does the office open?")).await.cache(), "miss");
    fill(&h).await;
    assert_eq!(index_stats(&h).await["entries"], N + 1);

    // A clean stop saves the index; the next start loads it, in the background at this size.
    let Harness { proxy, mock, dir, .. } = h;
    proxy.stop().await;
    assert!(store.join("graphs").join("manifest").exists());
    let h = start_on(dir, &store, mock).await;
    wait_for_index(&h).await;
    let stats = index_stats(&h).await;
    assert_eq!(stats["loaded_from_dump"], true, "{stats}");
    assert_eq!(stats["rebuilt"], 0, "{stats}");
    assert_eq!(stats["entries"], N + 1);
    let para = chat(&h, &ask("when does the office open")).await;
    assert_eq!(para.cache(), "semantic", "{:?}", para.headers);
    assert_eq!(h.mock.control.total_calls(), 1);

    // Changes after the last save: one entry added, one deleted; then the process dies.
    assert_eq!(chat(&h, &ask("How do I reset my password?")).await.cache(), "miss");
    let first = para.header("x-deja-entry").expect("entry id").to_string();
    let deleted =
        admin_send(&h, reqwest::Method::DELETE, &format!("/admin/cache/{first}"), &serde_json::json!({})).await;
    assert!(deleted.status < 300, "{}", deleted.text);
    h.proxy.state.store.flush().expect("flush");
    let crashed = tempfile::tempdir().expect("tempdir");
    let (intact, damaged) = (crashed.path().join("intact"), crashed.path().join("damaged"));
    copy_dir(&store, &intact);
    copy_dir(&store, &damaged);
    let Harness { proxy, mock, dir, .. } = h;
    proxy.stop().await;
    drop(dir);

    let h = start_on(tempfile::tempdir().expect("tempdir"), &intact, mock).await;
    wait_for_index(&h).await;
    let stats = index_stats(&h).await;
    assert_eq!(stats["loaded_from_dump"], true, "{stats}");
    assert_eq!(stats["replayed"], 2, "{stats}");
    assert_eq!(stats["entries"], N + 1, "{stats}");
    assert_eq!(chat(&h, &ask("how do I reset my password")).await.cache(), "semantic");
    assert_eq!(chat(&h, &ask("when does the office open")).await.cache(), "miss", "deleted before the crash");
    let Harness { proxy, mock, .. } = h;
    proxy.stop().await;

    // A record cut short by the kill: refused, the index is rebuilt from sled, answers stay right.
    let record = damaged.join("graphs").join("manifest");
    let bytes = std::fs::read(&record).expect("record");
    std::fs::write(&record, bytes.get(..bytes.len() / 2).expect("half")).expect("truncate");
    let h = start_on(tempfile::tempdir().expect("tempdir"), &damaged, mock).await;
    wait_for_index(&h).await;
    let stats = index_stats(&h).await;
    assert_eq!(stats["loaded_from_dump"], false, "{stats}");
    assert_eq!(stats["rebuilt"], 1, "{stats}");
    assert_eq!(stats["entries"], N + 1, "{stats}");
    assert_eq!(chat(&h, &ask("how do I reset my password")).await.cache(), "semantic");
    assert_eq!(chat(&h, &ask("when does the office open")).await.cache(), "miss");
    h.proxy.stop().await;
}
