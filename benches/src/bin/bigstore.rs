//! The whole gateway on a large store: start-up to serving semantic hits,
//! memory, disk, and exact- and semantic-hit throughput over real sockets,
//! at each size in the same run.
//!
//! `cargo run --release -p deja-benches --bin bigstore -- \
//!     --pairs ../shared/data/qqp_pairs.jsonl.gz --sizes 10000,1000000`
//!
//! For each size a store is written directly (the entries a `deja serve`
//! would have written for `{"model": "auto", "messages": [system, question]}`
//! requests under `config/demo.toml`: the same exact keys, context
//! fingerprints, question texts and vectors), its index built and saved
//! as a running gateway saves it, and the release `deja` binary started on
//! it. Stored first are the `a` questions of the labelled duplicate pairs
//! whose `b` is within the semantic threshold; the `b`s are the paraphrase
//! queries and are never stored. Then every other distinct question, then
//! (past their number) noisy copies of their vectors under numbered texts.

use clap::Parser;
use deja_api::key::chat_keys;
use deja_api::{ChatRequest, Namespace};
use deja_benches::load::{closed_loop, free_port, http_client, send, table, HttpClient, Procs, Summary};
use deja_benches::{dir_mib, questions, rss_mib_of, unit_vector};
use deja_cache::{graphs_dir, SemanticIndex};
use deja_embed::cosine;
use deja_store::{Entry, EntryKind, EntryUsage, SemanticMeta, Store};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEM: &str = "You are the support assistant of Acme Inc.";
/// `config/demo.toml`'s semantic threshold.
const THRESHOLD: f32 = 0.94;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Labelled question pairs, JSON lines with `a`, `b` and `same`.
    #[arg(long)]
    pairs: PathBuf,
    /// Where the questions' vectors are cached between runs.
    #[arg(long, default_value = "target/scale-vectors.f32")]
    vectors: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    sizes: Vec<usize>,
    /// Seconds per throughput scenario.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

fn ask(question: &str) -> String {
    json!({"model": "auto", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]})
        .to_string()
}

/// The stored questions with their vectors, and the paraphrase queries.
struct Fixture {
    stored: Vec<(String, Vec<f32>)>,
    /// Paraphrases whose stored question is at or above the threshold.
    paraphrases: Vec<String>,
    /// How many of the stored questions have a paraphrase query.
    with_paraphrase: usize,
}

fn fixture(args: &Args) -> Fixture {
    let pairs = questions::read_pairs(&args.pairs);
    let distinct = questions::distinct(&pairs);
    let vectors = questions::vectors_of(&distinct, &args.vectors, Path::new("models"));
    let index: std::collections::HashMap<&str, usize> =
        distinct.iter().enumerate().map(|(i, q)| (q.as_str(), i)).collect();
    let (mut first, mut queries, mut taken) = (Vec::new(), Vec::new(), HashSet::new());
    for p in pairs.iter().filter(|p| p.same) {
        let (Some(&a), Some(&b)) = (index.get(p.a.as_str()), index.get(p.b.as_str())) else { continue };
        if a == b || taken.contains(&a) || taken.contains(&b) || cosine(&vectors[a], &vectors[b]) < THRESHOLD {
            continue;
        }
        taken.insert(a);
        taken.insert(b);
        first.push(a);
        queries.push(p.b.clone());
    }
    // `taken` holds every stored `a` and every query `b`: the rest follow the `a`s.
    let order: Vec<usize> = first.iter().copied().chain((0..distinct.len()).filter(|i| !taken.contains(i))).collect();
    Fixture {
        with_paraphrase: first.len(),
        stored: order.into_iter().map(|i| (distinct[i].clone(), vectors[i].clone())).collect(),
        paraphrases: queries,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let fx = fixture(&args);
    eprintln!(
        "{} real questions to store, {} paraphrase queries at cosine >= {THRESHOLD}",
        fx.stored.len(),
        fx.paraphrases.len()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    let mut lines = Vec::new();
    for &n in &args.sizes {
        let dir = tempfile::tempdir()?;
        let store_path = dir.path().join("store");
        let t = Instant::now();
        fill(&store_path, &fx, n);
        let fill_s = t.elapsed().as_secs_f64();
        let (mut r, line) = rt.block_on(measure(&args, &fx, dir.path(), &store_path, n))?;
        lines.push(format!("n={n}: written and indexed in {fill_s:.0}s; {line}"));
        results.append(&mut r);
    }
    println!("{}", table(&results));
    for l in &lines {
        println!("{l}");
    }
    Ok(())
}

/// Writes `n` entries and saves their index where `deja serve` looks for it.
fn fill(path: &Path, fx: &Fixture, n: usize) {
    let store = Store::open(path).unwrap_or_else(|e| panic!("open: {e}"));
    let ns = Namespace::new(None, None);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(deja_benches::SEED);
    let now = deja_cache::now_ms();
    for i in 0..n {
        let (base, base_vector) = &fx.stored[i % fx.stored.len()];
        let (question, vector) = if i < fx.stored.len() {
            (base.clone(), base_vector.clone())
        } else {
            let noise = unit_vector(&mut rng, base_vector.len());
            let scale = rng.gen_range(0.25f32..0.4);
            let mut v: Vec<f32> = base_vector.iter().zip(&noise).map(|(a, b)| a + scale * b).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            (format!("{base} (variant {i})"), v)
        };
        let req = ChatRequest::parse(ask(&question).as_bytes()).unwrap_or_else(|e| panic!("request: {e}"));
        let (key, fp) = chat_keys(&ns, &req);
        let entry = Entry {
            id: key,
            kind: EntryKind::Chat,
            namespace: ns.as_str().to_string(),
            requested_model: "auto".into(),
            answered_by: "glm-4-plus".into(),
            request: serde_json::Value::Array(req.messages.clone()),
            response: json!({"id": format!("chatcmpl-{i}"), "object": "chat.completion", "created": 1, "model": "glm-4-plus",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer of typical FAQ length, a sentence or two long, politely worded."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}}),
            usage: EntryUsage { prompt_tokens: 40, completion_tokens: 20 },
            cost_usd: 0.00002,
            created_ms: now,
            expires_ms: now + 86_400_000,
            semantic: Some(SemanticMeta {
                fingerprint: fp.to_hex(),
                text: question,
                conversation: None,
                vector_of: None,
            }),
        };
        store.put(&entry, Some(&vector)).unwrap_or_else(|e| panic!("put: {e}"));
    }
    let index = SemanticIndex::new();
    index.rebuild_from(&store).unwrap_or_else(|e| panic!("rebuild: {e}"));
    let graphs = graphs_dir(&store).unwrap_or_else(|| panic!("a store on disk"));
    index.save(&store, &graphs).unwrap_or_else(|e| panic!("save: {e}"));
    store.flush().unwrap_or_else(|e| panic!("flush: {e}"));
}

async fn measure(
    args: &Args,
    fx: &Fixture,
    dir: &Path,
    store_path: &Path,
    n: usize,
) -> Result<(Vec<Summary>, String), Box<dyn std::error::Error>> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (mock_port, proxy_port) = (free_port(), free_port());
    let config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
        .replace("data/demo.sled", &store_path.display().to_string())
        .replace("max_entries = 1000000", "max_entries = 2000000")
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    let config_path = dir.join("deja.toml");
    std::fs::write(&config_path, config)?;
    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&args.deja)
            .args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")])
            .stderr(Stdio::null())
            .spawn()?,
    );
    let client = http_client();
    let url = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    // Start-up, from spawning the gateway: until `/readyz` answers (the
    // listener and exact hits), then until it reports the semantic index
    // ready, then the first paraphrase served `semantic`.
    let started = Instant::now();
    let log = std::fs::File::create(format!("target/bigstore-{n}.log"))?;
    procs.0.push(
        Command::new(&args.deja)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()?,
    );
    let pid = procs.0.last().map(|c| c.id()).unwrap_or(0);
    let readyz = format!("http://127.0.0.1:{proxy_port}/readyz");
    let (mut listening, mut indexed) = (None, None);
    while indexed.is_none() {
        if started.elapsed() > Duration::from_secs(900) {
            return Err("the semantic index was not ready within 15 minutes".into());
        }
        if let Some(ready) = semantic_index_ready(&client, &readyz).await {
            listening.get_or_insert(started.elapsed());
            if ready {
                indexed = Some(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut probe = 0;
    let startup = loop {
        let q = &fx.paraphrases[probe % fx.paraphrases.len()];
        probe += 1;
        if let Some((200, cache)) = send(&client, &url, ask(q), &[]).await {
            if cache == "semantic" {
                break started.elapsed();
            }
        }
        if probe > 100 {
            return Err("100 paraphrases missed after the index was ready".into());
        }
    };
    let first_answer = listening;
    let rss_start = rss_mib_of(&pid.to_string());
    let mut results = Vec::new();
    let stored_queries = fx.with_paraphrase.min(n);
    let questions: Vec<String> = fx.stored.iter().take(n).map(|(q, _)| q.clone()).collect();
    let exact = closed_loop(&client, &[url.as_str()], args.concurrency, args.seconds, move |i| {
        questions.get(i % questions.len().max(1)).map(|q| ask(q))
    })
    .await;
    results.push(exact.summary(&format!("n={n}: exact hits, {} clients", args.concurrency), "exact"));
    // Each paraphrase once (a miss is stored, and would be an exact hit the second time).
    let paraphrases: Vec<String> = fx.paraphrases.iter().skip(probe).take(stored_queries).cloned().collect();
    let semantic = closed_loop(&client, &[url.as_str()], args.concurrency, args.seconds, move |i| {
        paraphrases.get(i).map(|q| ask(q))
    })
    .await;
    results.push(semantic.summary(&format!("n={n}: paraphrases, {} clients", args.concurrency), "semantic"));
    let rss_end = rss_mib_of(&pid.to_string());
    let line = format!(
        "listening after {:.2}s, semantic index ready after {:.2}s, first semantic hit after {:.2}s ({probe} \
         probes); RSS {rss_start:.0} MiB at start, {rss_end:.0} MiB after the load; disk {:.0} MiB",
        first_answer.map_or(0.0, |d| d.as_secs_f64()),
        indexed.map_or(0.0, |d| d.as_secs_f64()),
        startup.as_secs_f64(),
        dir_mib(store_path),
    );
    Ok((results, line))
}

/// `/readyz`'s `semantic_index_ready`, once the gateway answers.
async fn semantic_index_ready(client: &HttpClient, url: &str) -> Option<bool> {
    let req = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new())).ok()?;
    let resp = client.request(req).await.ok()?;
    let body = http_body_util::BodyExt::collect(resp.into_body()).await.ok()?.to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).ok()?.get("semantic_index_ready")?.as_bool()
}
