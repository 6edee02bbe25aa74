//! What a front door costs over the chat path: exact hits, misses and
//! streamed answers through `/v1/chat/completions`, `/v1/responses` and
//! `/v1/messages`, one client at a time, against one `deja` (the demo
//! config, the simulated upstream answering at once), in the same run.
//!
//! Every door asks the same chat request (`model`, `max_tokens`, one user
//! message), so the hits of all three read one cache entry, stored by the
//! chat door's first (missed) request; each miss is a question of its own.
//! The doors take turns, round after round, so whatever else the machine
//! does falls on all three alike.
//!
//! Usage: cargo run --release -p deja-benches --bin doorbench -- \
//!     --deja target/release/deja --hits 3000 --misses 300

use bytes::Bytes;
use clap::Parser;
use deja_benches::load::{closed_loop, http_client, start_demo, table, HttpClient, Run, Summary};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Exact hits per door (and streamed exact hits per door, a third of it).
    #[arg(long, default_value_t = 3000)]
    hits: usize,
    /// Misses per door, unary and streamed each.
    #[arg(long, default_value_t = 300)]
    misses: usize,
    /// Rounds the doors take turns in.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// The question every door's hits ask.
const HIT: &str = "What are your opening hours on public holidays?";
const MAX_TOKENS: u64 = 64;

#[derive(Clone, Copy, PartialEq)]
enum Door {
    Chat,
    Responses,
    Messages,
}

const DOORS: [Door; 3] = [Door::Chat, Door::Responses, Door::Messages];

impl Door {
    fn name(self) -> &'static str {
        match self {
            Door::Chat => "chat",
            Door::Responses => "responses",
            Door::Messages => "messages",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Door::Chat => "/v1/chat/completions",
            Door::Responses => "/v1/responses",
            Door::Messages => "/v1/messages",
        }
    }

    /// The door's request for `question`: the same chat request through each.
    fn body(self, question: &str, stream: bool) -> String {
        let mut body = match self {
            Door::Chat => json!({"model": "auto", "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": question}]}),
            Door::Responses => json!({"model": "auto", "max_output_tokens": MAX_TOKENS, "input": question}),
            Door::Messages => json!({"model": "auto", "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": question}]}),
        };
        if stream {
            body["stream"] = json!(true);
            // What the doors ask of the chat path when they stream.
            if self == Door::Chat {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        body.to_string()
    }

    /// The event that ends a complete stream.
    fn last_event(self) -> &'static str {
        match self {
            Door::Chat => "data: [DONE]",
            Door::Responses => "event: response.completed",
            Door::Messages => "event: message_stop",
        }
    }

    /// Whether a whole answer is in the door's shape.
    fn shaped(self, v: &Value) -> bool {
        match self {
            Door::Chat => v["object"] == "chat.completion",
            Door::Responses => v["object"] == "response" && v["status"] == "completed",
            Door::Messages => v["type"] == "message" && v["stop_reason"].is_string(),
        }
    }
}

/// A distinct question for miss `i` of `door` in scenario `scenario`. The
/// doors' numbers interleave, all of seven digits, so every door's questions
/// have the same shape (and cost the same to embed and compare).
fn miss_question(door: Door, scenario: usize, i: usize) -> String {
    let d = DOORS.iter().position(|x| *x == door).unwrap_or(0);
    let n = 1_000_000 + scenario * 100_000 + i * DOORS.len() + d;
    format!("How do I reset the password of account {n}?")
}

/// One streamed request: (time to the first event, total, `x-deja-cache`,
/// whether the stream ended with the door's closing event).
async fn stream_once(
    client: &HttpClient,
    door: Door,
    url: &str,
    body: String,
) -> Option<(Duration, Duration, String, bool)> {
    let req = http::Request::post(url).header("content-type", "application/json").body(Full::new(Bytes::from(body)));
    let start = Instant::now();
    let resp = client.request(req.ok()?).await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let cache = resp.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut body = resp.into_body();
    let (mut first, mut all) = (None, Vec::new());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else { continue };
        if !data.is_empty() {
            first.get_or_insert_with(|| start.elapsed());
            all.extend_from_slice(&data);
        }
    }
    let total = start.elapsed();
    let complete = String::from_utf8_lossy(&all).contains(door.last_event());
    Some((first?, total, cache, complete))
}

/// Streamed requests' timings, per door.
#[derive(Default)]
struct Streamed {
    first: Vec<Duration>,
    total: Vec<Duration>,
    kinds: Vec<String>,
    complete: usize,
    sent: usize,
}

impl Streamed {
    fn p(&mut self, p: f64) -> (f64, f64) {
        (pct(&mut self.first, p), pct(&mut self.total, p))
    }
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort();
    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The order the doors go in for round `r`: rotated each round.
fn order(r: usize) -> impl Iterator<Item = (usize, Door)> {
    (0..DOORS.len()).map(move |k| (k + r) % DOORS.len()).map(|d| (d, DOORS[d]))
}

/// `count` requests per door, split over `rounds`, unary, through `closed_loop`.
async fn unary(
    client: &HttpClient,
    base: &str,
    count: usize,
    rounds: usize,
    question: impl Fn(Door, usize) -> String + Copy + Send + Sync + 'static,
) -> Vec<Run> {
    let mut runs: Vec<Run> =
        DOORS.iter().map(|_| Run { lat: Vec::new(), sent: 0, elapsed: Duration::ZERO, kinds: Vec::new() }).collect();
    let per = count.div_ceil(rounds.max(1));
    for r in 0..rounds.max(1) {
        for (d, door) in order(r) {
            let url = format!("{base}{}", door.path());
            let offset = r * per;
            let body =
                move |i: usize| (i < per && offset + i < count).then(|| door.body(&question(door, offset + i), false));
            let run = closed_loop(client, &[url.as_str()], 1, 300, body).await;
            let into = &mut runs[d];
            into.lat.extend(run.lat);
            into.kinds.extend(run.kinds);
            into.sent += run.sent;
            into.elapsed += run.elapsed;
        }
    }
    runs
}

/// `count` streamed requests per door, split over `rounds`, one at a time.
async fn streamed(
    client: &HttpClient,
    base: &str,
    count: usize,
    rounds: usize,
    question: impl Fn(Door, usize) -> String,
) -> Vec<Streamed> {
    let mut out: Vec<Streamed> = DOORS.iter().map(|_| Streamed::default()).collect();
    let per = count.div_ceil(rounds.max(1));
    for r in 0..rounds.max(1) {
        for (d, door) in order(r) {
            let url = format!("{base}{}", door.path());
            for i in (r * per..(r + 1) * per).take_while(|i| *i < count) {
                let into = &mut out[d];
                into.sent += 1;
                if let Some((first, total, kind, complete)) =
                    stream_once(client, door, &url, door.body(&question(door, i), true)).await
                {
                    into.first.push(first);
                    into.total.push(total);
                    into.kinds.push(kind);
                    into.complete += usize::from(complete);
                }
            }
        }
    }
    out
}

/// One request per door for the hit question, twice, read whole: the
/// answer's shape, what each was answered, and whether the id repeats.
async fn check(client: &HttpClient, base: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut notes = Vec::new();
    for door in DOORS {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let req = http::Request::post(format!("{base}{}", door.path()))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(door.body(HIT, false))))?;
            let resp = client.request(req).await?;
            let cache = resp.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let status = resp.status().as_u16();
            let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
            if status != 200 || !door.shaped(&v) {
                return Err(format!("{}: unexpected answer {status}: {v}", door.name()).into());
            }
            seen.push((cache, v["id"].as_str().unwrap_or_default().to_string()));
        }
        let same = seen.first().map(|s| &s.1) == seen.get(1).map(|s| &s.1);
        let kinds: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
        notes.push(format!("{}: first two requests answered {kinds:?}, same id: {same}", door.name()));
    }
    Ok(notes)
}

fn answered(kinds: &[String], want: &str) -> String {
    format!("{}/{} `{want}`", kinds.iter().filter(|k| *k == want).count(), kinds.len())
}

fn delta(door: f64, chat: f64) -> String {
    format!("{:+.3} ms ({:.2}x)", door - chat, door / chat.max(1e-9))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (_procs, base, _) = start_demo(&args.deja, dir.path(), |c| c, &[]).await?;
    let client = http_client();
    let notes = check(&client, &base).await?;

    // Warm every door's path before measuring.
    unary(&client, &base, 300, 1, |_, _| HIT.to_string()).await;

    let hits = unary(&client, &base, args.hits, args.rounds, |_, _| HIT.to_string()).await;
    let misses = unary(&client, &base, args.misses, args.rounds, |d, i| miss_question(d, 0, i)).await;
    let mut s_hits = streamed(&client, &base, (args.hits / 3).max(1), args.rounds, |_, _| HIT.to_string()).await;
    let mut s_misses = streamed(&client, &base, args.misses, args.rounds, |d, i| miss_question(d, 1, i)).await;

    let mut rows: Vec<Summary> = Vec::new();
    for (runs, what, want) in [(hits, "exact hits", "exact"), (misses, "misses", "miss")] {
        for (door, run) in DOORS.iter().zip(runs) {
            rows.push(run.summary(&format!("{}: {what}, 1 client", door.name()), want));
        }
    }
    let mut out = String::new();
    out.push_str(&table(&rows));

    out.push_str("\n| scenario | sent | ok | first event p50 ms | p99 ms | total p50 ms | p99 ms | note |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut stream_p50 = Vec::new();
    for (set, what, want) in [(&mut s_hits, "streamed exact hits", "exact"), (&mut s_misses, "streamed misses", "miss")]
    {
        let mut row = Vec::new();
        for (door, s) in DOORS.iter().zip(set.iter_mut()) {
            let (f50, t50) = s.p(0.50);
            let (f99, t99) = s.p(0.99);
            out.push_str(&format!(
                "| {}: {what} | {} | {} | {f50:.3} | {f99:.3} | {t50:.3} | {t99:.3} | {}, {} complete |\n",
                door.name(),
                s.sent,
                s.first.len(),
                answered(&s.kinds, want),
                s.complete
            ));
            row.push((f50, t50));
        }
        stream_p50.push(row);
    }

    out.push_str("\n| door | hit p50 | hit p99 | miss p50 | miss p99 | streamed hit: first event p50 | total p50 | streamed miss: first event p50 | total p50 | hit p50 within 0.1 ms of chat |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let (hit_rows, miss_rows) = rows.split_at(DOORS.len());
    for d in 1..DOORS.len() {
        let (h, m) = (&hit_rows[d], &miss_rows[d]);
        let (hc, mc) = (&hit_rows[0], &miss_rows[0]);
        let (sh, sm) = (&stream_p50[0], &stream_p50[1]);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            DOORS[d].name(),
            delta(h.p50_ms, hc.p50_ms),
            delta(h.p99_ms, hc.p99_ms),
            delta(m.p50_ms, mc.p50_ms),
            delta(m.p99_ms, mc.p99_ms),
            delta(sh[d].0, sh[0].0),
            delta(sh[d].1, sh[0].1),
            delta(sm[d].0, sm[0].0),
            delta(sm[d].1, sm[0].1),
            if h.p50_ms - hc.p50_ms <= 0.1 { "yes" } else { "no" },
        ));
    }
    out.push('\n');
    for n in notes {
        out.push_str(&format!("- {n}\n"));
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}
