//! The verifier, sync against async, on a replayed FAQ trace: the paraphrase
//! pairs of `tests/data/support_pairs.heldout.jsonl` and
//! `tests/data/faq_pairs.jsonl`. Each distinct `a` is asked once (seeding the
//! cache), then every `b` three times, in rounds (every `b` once, then every
//! `b` again, then again), so a background verdict has a round to land.
//!
//! The same demo gateway (real MiniLM, threshold 0.94, `verify_from` 0.80)
//! runs once per mode, each with its own simulated upstream, in the same run.
//! The simulated upstream is the judge: it says yes to everything (the trace
//! holds only paraphrases) after `--judge-ms`; the answering model takes
//! `--upstream-ms`.
//!
//! Usage: cargo run --release -p deja-benches --bin verifytrace -- \
//!     --deja target/release/deja --judge-ms 400 --upstream-ms 0 --round-gap-ms 1000

use bytes::Bytes;
use clap::Parser;
use deja_benches::load::{http_client, start_demo, HttpClient};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// How long the judge takes to answer.
    #[arg(long, default_value_t = 400)]
    judge_ms: u64,
    /// How long the answering model (the ladder's first rung) takes.
    #[arg(long, default_value_t = 0)]
    upstream_ms: u64,
    /// Pause between rounds (a paraphrase asked again later in the trace).
    #[arg(long, default_value_t = 1000)]
    round_gap_ms: u64,
    /// Times each paraphrase is asked.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const ADMIN_TOKEN: &str = "verifytrace-admin-token";
const JUDGE: &str = "judge";

/// One answer as the client saw it.
struct Asked {
    latency: Duration,
    status: u16,
    cache: String,
    verified: String,
}

impl Asked {
    fn hit(&self) -> bool {
        self.status == 200 && (self.cache == "semantic" || self.cache == "exact")
    }
}

/// What one mode saw: the seeding round, then each round of paraphrases
/// (in pair order), and the counts read afterwards.
struct ModeRun {
    mode: &'static str,
    seeds: Vec<Asked>,
    rounds: Vec<Vec<Asked>>,
    judge_calls: u64,
    verifications: u64,
    upstream_calls: u64,
}

/// The paraphrase pairs of both files, `b` distinct and never an `a`.
fn pairs(repo: &Path) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for file in ["tests/data/support_pairs.heldout.jsonl", "tests/data/faq_pairs.jsonl"] {
        for line in std::fs::read_to_string(repo.join(file))?.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            let paraphrase = v["same"] == true && v["kind"].as_str().is_none_or(|k| k == "paraphrase");
            if let (true, Some(a), Some(b)) = (paraphrase, v["a"].as_str(), v["b"].as_str()) {
                out.push((a.to_string(), b.to_string()));
            }
        }
    }
    let seeds: HashSet<String> = out.iter().map(|(a, _)| a.clone()).collect();
    let mut seen = HashSet::new();
    out.retain(|(_, b)| !seeds.contains(b) && seen.insert(b.clone()));
    Ok(out)
}

/// `config/demo.toml` with the judge model and the verifier in `mode`.
fn with_verifier(config: String, mode: &str) -> String {
    let judge = format!(
        "[[models]]\nname = \"{JUDGE}\"\nprovider = \"openai\"\ninput_usd_per_mtok = 0.15\n\
         output_usd_per_mtok = 0.60\ncontext_window = 128000\n\n[[ladders]]"
    );
    let verifier = format!(
        "[cache.semantic.verifier]\nmodel = \"{JUDGE}\"\ntimeout = \"2s\"\nmax_candidates = 3\n\
         mode = \"{mode}\"\n\n[cache.semantic.ladder_thresholds]"
    );
    config
        .replacen("\nthreshold = 0.94\n", "\nthreshold = 0.94\nverify_from = 0.80\n", 1)
        .replacen("[cache.semantic.ladder_thresholds]", &verifier, 1)
        .replacen("[[ladders]]", &judge, 1)
}

async fn request(
    client: &HttpClient,
    method: http::Method,
    url: &str,
    body: String,
) -> Result<(http::response::Parts, Bytes), Box<dyn std::error::Error>> {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::from(body)))?;
    let (parts, body) = client.request(req).await?.into_parts();
    Ok((parts, body.collect().await?.to_bytes()))
}

async fn get_json(client: &HttpClient, url: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let (_, body) = request(client, http::Method::GET, url, String::new()).await?;
    Ok(serde_json::from_slice(&body)?)
}

async fn ask(client: &HttpClient, url: &str, text: &str) -> Asked {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]}).to_string();
    let started = Instant::now();
    match request(client, http::Method::POST, url, body).await {
        Ok((parts, _)) => {
            let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            Asked {
                latency: started.elapsed(),
                status: parts.status.as_u16(),
                cache: header("x-deja-cache"),
                verified: header("x-deja-verified"),
            }
        }
        Err(_) => Asked { latency: started.elapsed(), status: 0, cache: String::new(), verified: String::new() },
    }
}

/// Calls the simulated upstream counted per model.
async fn mock_calls(client: &HttpClient, mock: &str) -> Result<BTreeMap<String, u64>, Box<dyn std::error::Error>> {
    let v = get_json(client, &format!("{mock}/_mock/calls")).await?;
    let by_model = v["by_model"].as_object().cloned().unwrap_or_default();
    Ok(by_model.into_iter().map(|(k, n)| (k, n.as_u64().unwrap_or(0))).collect())
}

fn upstream_total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.iter().filter(|(m, _)| m.as_str() != JUDGE).map(|(_, n)| n).sum()
}

async fn replay(
    args: &Args,
    mode: &'static str,
    trace: &[(String, String)],
) -> Result<ModeRun, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let edit = move |c: String| with_verifier(c, mode);
    let (_procs, base, _) = start_demo(&args.deja, dir.path(), edit, &[("DEJA_ADMIN_TOKEN", ADMIN_TOKEN)]).await?;
    let written = std::fs::read_to_string(dir.path().join("deja.toml"))?;
    if !written.contains("verify_from = 0.80") || !written.contains(&format!("mode = \"{mode}\"")) {
        return Err("config/demo.toml changed: the verifier could not be added".into());
    }
    // The simulated upstream's address, from the providers' base URL.
    let mock = written
        .lines()
        .find_map(|l| l.trim().strip_prefix("base_url = \"").and_then(|u| u.strip_suffix("/v1\"")))
        .ok_or("no provider base_url in the demo config")?
        .to_string();
    let client = http_client();
    let url = format!("{base}/v1/chat/completions");
    let faults = |model: &str, ms: u64| json!({"model": model, "sticky": {"kind": "delay", "ms": ms}}).to_string();
    let (_, set) =
        request(&client, http::Method::POST, &format!("{mock}/_mock/judge"), json!({"verdict": "1"}).to_string())
            .await?;
    if !String::from_utf8_lossy(&set).contains("ok") {
        return Err("the simulated upstream refused the judge's verdict".into());
    }
    if args.judge_ms > 0 {
        request(&client, http::Method::POST, &format!("{mock}/_mock/faults"), faults(JUDGE, args.judge_ms)).await?;
    }
    if args.upstream_ms > 0 {
        request(&client, http::Method::POST, &format!("{mock}/_mock/faults"), faults("glm-4-plus", args.upstream_ms))
            .await?;
    }
    let before = mock_calls(&client, &mock).await?;
    let stats_before = get_json(&client, &format!("{base}/admin/stats")).await?;

    let mut seeded = HashSet::new();
    let mut seeds = Vec::new();
    for (a, _) in trace {
        if seeded.insert(a.as_str()) {
            seeds.push(ask(&client, &url, a).await);
        }
    }
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        tokio::time::sleep(Duration::from_millis(args.round_gap_ms)).await;
        let mut round = Vec::new();
        for (_, b) in trace {
            round.push(ask(&client, &url, b).await);
        }
        rounds.push(round);
    }
    // Background verdicts still in flight land before counting.
    tokio::time::sleep(Duration::from_millis(args.judge_ms + 500)).await;
    let after = mock_calls(&client, &mock).await?;
    let stats = get_json(&client, &format!("{base}/admin/stats")).await?;
    let count = |s: &Value| s["verifier"]["verifications"].as_u64().unwrap_or(0);
    Ok(ModeRun {
        mode,
        seeds,
        rounds,
        judge_calls: after.get(JUDGE).copied().unwrap_or(0).saturating_sub(before.get(JUDGE).copied().unwrap_or(0)),
        verifications: count(&stats).saturating_sub(count(&stats_before)),
        upstream_calls: upstream_total(&after).saturating_sub(upstream_total(&before)),
    })
}

fn percentile(lat: &[Duration], p: f64) -> f64 {
    let mut lat = lat.to_vec();
    lat.sort();
    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn p50_p99(asked: &[&Asked]) -> (f64, f64) {
    let lat: Vec<Duration> = asked.iter().map(|a| a.latency).collect();
    (percentile(&lat, 0.50), percentile(&lat, 0.99))
}

/// Milliseconds to one decimal, with a sign when `signed`; a dash for none.
fn ms(v: f64, signed: bool) -> String {
    match (v.is_nan(), signed) {
        (true, _) => "—".into(),
        (false, true) => format!("{v:+.1}"),
        (false, false) => format!("{v:.1}"),
    }
}

/// One row per ask: how it was answered and what it cost.
fn round_row(mode: &str, name: &str, asked: &[&Asked]) -> String {
    let n = |f: &dyn Fn(&Asked) -> bool| asked.iter().filter(|a| f(a)).count();
    let (p50, p99) = p50_p99(asked);
    format!(
        "| {mode} | {name} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        asked.len(),
        n(&|a| a.hit()),
        n(&|a| a.cache == "exact"),
        n(&|a| a.cache == "semantic" && a.verified.is_empty()),
        n(&|a| a.verified == "llm"),
        n(&|a| a.verified == "alias"),
        ms(p50, false),
        ms(p99, false),
    )
}

fn first_round(r: &ModeRun) -> Vec<&Asked> {
    r.rounds.first().map(|round| round.iter().collect()).unwrap_or_default()
}

fn report(runs: &[ModeRun], pairs: usize) -> String {
    let mut out = String::from(
        "| mode | ask | requests | hits | exact | semantic, above threshold | verified by the judge now | \
         learned alias | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        out.push_str(&round_row(r.mode, "seed (each `a`)", &r.seeds.iter().collect::<Vec<_>>()));
        for (i, round) in r.rounds.iter().enumerate() {
            out.push_str(&round_row(r.mode, &format!("paraphrase, ask {}", i + 1), &round.iter().collect::<Vec<_>>()));
        }
        let all: Vec<&Asked> = r.rounds.iter().flatten().collect();
        out.push_str(&round_row(r.mode, "paraphrases, all asks", &all));
        let everything: Vec<&Asked> = r.seeds.iter().chain(r.rounds.iter().flatten()).collect();
        out.push_str(&round_row(r.mode, "whole trace", &everything));
    }
    out.push_str(
        "\n| mode | lookups | hits | verifier calls (judge / stats) | per paraphrase | per 1,000 lookups | \
         upstream calls | errors |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let lookups = r.seeds.len() + r.rounds.iter().map(Vec::len).sum::<usize>();
        let hits = r.seeds.iter().chain(r.rounds.iter().flatten()).filter(|a| a.hit()).count();
        let errors = r.seeds.iter().chain(r.rounds.iter().flatten()).filter(|a| a.status != 200).count();
        out.push_str(&format!(
            "| {} | {lookups} | {hits} | {} / {} | {:.2} | {:.0} | {} | {errors} |\n",
            r.mode,
            r.judge_calls,
            r.verifications,
            r.judge_calls as f64 / pairs.max(1) as f64,
            r.judge_calls as f64 * 1000.0 / lookups.max(1) as f64,
            r.upstream_calls,
        ));
    }
    // The paraphrases sync served on the judge's word at their first ask,
    // against the same paraphrases' first ask in async mode.
    if let [sync, asynch] = runs {
        let (s, a) = (first_round(sync), first_round(asynch));
        let grey: Vec<usize> = (0..s.len()).filter(|&i| s[i].verified == "llm").collect();
        let verified: Vec<&Asked> = grey.iter().map(|&i| s[i]).collect();
        let missed: Vec<&Asked> =
            grey.iter().filter_map(|&i| a.get(i).copied()).filter(|x| x.cache == "miss").collect();
        let plain: Vec<&Asked> = s.iter().copied().filter(|x| x.cache == "semantic" && x.verified.is_empty()).collect();
        let (vp50, vp99) = p50_p99(&verified);
        let (mp50, mp99) = p50_p99(&missed);
        let (hp50, hp99) = p50_p99(&plain);
        out.push_str(&format!(
            "\n| first ask of a grey-band paraphrase | n | p50 ms | p99 ms |\n|---|---|---|---|\n\
             | sync: verified hit (judge on the path) | {} | {} | {} |\n\
             | async: miss, answered upstream | {} | {} | {} |\n\
             | sync minus async | | {} | {} |\n\
             | for scale: semantic hit above the threshold (sync, ask 1) | {} | {} | {} |\n",
            verified.len(),
            ms(vp50, false),
            ms(vp99, false),
            missed.len(),
            ms(mp50, false),
            ms(mp99, false),
            ms(vp50 - mp50, true),
            ms(vp99 - mp99, true),
            plain.len(),
            ms(hp50, false),
            ms(hp99, false),
        ));
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let trace = pairs(&repo)?;
    let seeds = trace.iter().map(|(a, _)| a.as_str()).collect::<HashSet<_>>().len();
    eprintln!("{} paraphrase pairs, {seeds} distinct questions seeded", trace.len());
    let mut runs = Vec::new();
    for mode in ["sync", "async"] {
        runs.push(replay(&args, mode, &trace).await?);
    }
    use std::io::Write;
    std::io::stdout().write_all(
        format!(
            "judge {} ms, upstream {} ms, {} ms between rounds\n\n{}",
            args.judge_ms,
            args.upstream_ms,
            args.round_gap_ms,
            report(&runs, trace.len())
        )
        .as_bytes(),
    )?;
    Ok(())
}
