//! What a client relies on when the request path is under strain: a client
//! that stops reading never holds identical requests hostage; a key at its
//! budget costs nothing more, verifier calls included; concurrent requests
//! near a budget overshoot it by at most one request's worst case; an answer
//! that failed half-way is still billed; and a streaming follower sees the
//! leader's frames as they come, not after the whole stream.

mod common;

use common::*;
use deja_mock_upstream::{long_answer, Fault, JUDGE_MODEL};
use deja_testkit::{env_var, spawn_proxy, Embedding, Harness, TestConfig};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Open gateway client key `key-open`, plus one `[[clients]]` entry for
/// `key` with the given settings, after `extra` (models, verifier).
fn with_client(base: TestConfig, key: &str, client: &str, extra: &str) -> TestConfig {
    let var = env_var("PIPELINE", key);
    TestConfig {
        client_keys: vec!["key-open".into()],
        extra_toml: format!("{extra}\n[[clients]]\nkey_env = \"{var}\"\n{client}\n"),
        ..base
    }
}

async fn ask_as(h: &Harness, key: &str, body: &Value) -> Reply {
    let auth = format!("Bearer {key}");
    chat_with(h, body, &[("authorization", auth.as_str())]).await
}

fn streamed(content: &str) -> Value {
    let mut body = ask(content);
    body["stream"] = json!(true);
    body
}

/// The one `[[clients]]` entry of `/admin/stats`.
async fn client_stats(h: &Harness) -> Value {
    let stats = admin_get(h, "/admin/stats").await;
    let clients = stats.body["clients"].as_array().cloned().unwrap_or_default();
    assert_eq!(clients.len(), 1, "{}", stats.text);
    clients.into_iter().next().unwrap_or_default()
}

async fn metrics(h: &Harness) -> String {
    client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

/// The value of one sample line, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

/// Deja's prompt estimate for a one-message request: (characters + 8) / 4, rounded up.
fn estimated_prompt_tokens(content: &str) -> u64 {
    (content.len() as u64 + 8).div_ceil(4)
}

// ---------------------------------------------------------------------------
// (1) A client that stops reading.

/// A raw HTTP/1.1 client with a 4 KiB receive buffer: it sends `body` and
/// reads the response head, then nothing more until told to.
async fn open_and_stall(h: &Harness, body: &Value) -> (TcpStream, Vec<u8>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stream = socket.connect(h.proxy.addr).await.expect("connect to the proxy");
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        h.proxy.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream.write_all(body.as_bytes()).await.expect("send body");
    let mut read = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("the response head arrives")
            .expect("read");
        assert!(n > 0, "closed before the response head: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    (stream, read)
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_hold_identical_requests() {
    // About 6.5 MB of events: under the 16 MiB stream cap, more than the
    // buffers between Deja and a client that stops reading can hold (the
    // relay's channel, hyper's buffer, Deja's socket send buffer: at most
    // about 4.7 MB with Linux's default 4 MiB `tcp_wmem` maximum; about 3 MB
    // measured here).
    const CHUNKS: usize = 1500;
    const BYTES: usize = 4096;
    let h = spawn_proxy(TestConfig { attempt_timeout: "60s".into(), ..exact_only() }).await;
    h.mock.control.set_sticky("cheap", Some(Fault::LongStream { chunks: CHUNKS, chunk_bytes: BYTES, cut_after: None }));
    let question = "tell me a very long story";
    let expected = long_answer(question, CHUNKS, BYTES);
    let body = streamed(question);

    let (mut slow, head) = open_and_stall(&h, &body).await;
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Let the stream fill every buffer on the way to the stalled client.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut others = tokio::task::JoinSet::new();
    for i in 0..10 {
        let mut body = body.clone();
        body["stream"] = json!(i % 3 == 0);
        let url = h.url("/v1/chat/completions");
        others.spawn(async move {
            let resp = client().post(url).json(&body).send().await.expect("proxy answers");
            let status = resp.status().as_u16();
            let cache = resp.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let text = resp.text().await.expect("whole body");
            (i % 3 == 0, status, cache, text)
        });
    }
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        let mut done = Vec::new();
        while let Some(r) = others.join_next().await {
            done.push(r.expect("request task"));
        }
        done
    })
    .await;
    let Ok(finished) = finished else {
        panic!(
            "identical requests were still waiting after 20 s: a client that stopped reading holds them \
             (upstream calls: {})",
            h.mock.control.total_calls()
        );
    };
    for (stream, status, cache, text) in &finished {
        assert_eq!(*status, 200, "stream={stream} cache={cache}: {}", text.get(..300).unwrap_or(text));
        if *stream {
            let content = streamed_content(text);
            assert_eq!(
                content.len(),
                CHUNKS * BYTES,
                "stream={stream} cache={cache}: {} ... {}",
                text.get(..300).unwrap_or(text),
                text.get(text.len().saturating_sub(300)..).unwrap_or(text)
            );
            assert!(content == expected, "stream={stream} cache={cache}: not the upstream's answer");
            assert_eq!(events(text).last().map(String::as_str), Some("[DONE]"), "cache={cache}");
        } else {
            let body: Value = serde_json::from_str(text).expect("a JSON completion");
            let content = body["choices"][0]["message"]["content"].as_str().unwrap_or("");
            assert_eq!(content.len(), CHUNKS * BYTES, "stream={stream} cache={cache}");
            assert!(content == expected, "stream={stream} cache={cache}: not the upstream's answer");
        }
    }
    eprintln!("the 10 identical requests took {:?}", started.elapsed());
    assert_eq!(h.mock.control.total_calls(), 1, "coalesced or served from the cache: one upstream call");

    // The stalled client is cut off once it has left a frame untaken for
    // `feed::SLOW_CLIENT` (5 s): what it can still read ends, without [DONE].
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stalled client's connection never ended ({} bytes read)", rest.len());
    let rest = String::from_utf8_lossy(&rest);
    assert!(!rest.contains("data: [DONE]"), "the stalled client was not cut off: it got the whole stream");
}

// ---------------------------------------------------------------------------
// (2) A key at its budget and the verifier.

/// The hash embedder puts these at a cosine of about 0.83: between
/// `verify_from` (0.80) and the threshold (0.95) (see verifier.rs).
const ORIGINAL: &str = "How do I reset my password?";
const PARAPHRASE: &str = "How can I reset my password?";

#[tokio::test]
async fn a_key_at_its_budget_gets_no_verifier_call_for_grey_band_paraphrases() {
    let base =
        TestConfig { embedding: Embedding::Hash, threshold: 0.95, verify_from: Some(0.80), ..Default::default() };
    let h = spawn_proxy(with_client(base, "key-tiny", "daily_usd = 0.0000001", &judge_as_verifier())).await;
    h.mock.control.set_judge_verdict("1");

    let first = ask_as(&h, "key-tiny", &ask(ORIGINAL)).await;
    assert_eq!((first.status, first.cache()), (200, "miss"), "{}", first.text);
    let spent = client_stats(&h).await["spent_today_usd"].as_f64().unwrap_or(0.0);
    assert!(spent >= 0.0000001, "the first answer spent the whole budget: {spent}");

    for body in [ask(PARAPHRASE), streamed(PARAPHRASE)] {
        let r = ask_as(&h, "key-tiny", &body).await;
        assert_eq!(r.status, 429, "a grey-band paraphrase past the budget is refused: {:?} {}", r.headers, r.text);
        assert_eq!(r.body["error"]["type"], "insufficient_quota", "{}", r.text);
        assert_eq!(h.mock.control.calls(JUDGE_MODEL), 0, "no verifier call is made for a key past its budget");
    }
    assert_eq!(h.mock.control.calls("cheap"), 1);

    // Hits cost nothing: the exact question is still served.
    let hit = ask_as(&h, "key-tiny", &ask(ORIGINAL)).await;
    assert_eq!((hit.status, hit.cache()), (200, "exact"), "{}", hit.text);
    assert_eq!(h.mock.control.calls(JUDGE_MODEL), 0);
}

// ---------------------------------------------------------------------------
// (3) Concurrent requests near a budget.

/// $1,000 per million tokens either way: $0.001 a token.
const METERED: &str = r#"
[[models]]
name = "metered"
provider = "mock"
input_usd_per_mtok = 1000.0
output_usd_per_mtok = 1000.0
context_window = 128000
"#;
const USD_PER_TOKEN: f64 = 0.001;

/// What the mock bills for a one-message request to `metered` whose content
/// is one word of ASCII letters, digits and dashes: prompt tokens are the
/// JSON of `messages` (30 characters around the content) / 4, rounded up;
/// completion tokens are the words of `[metered] Simulated answer to: <content>`: 5.
fn mock_cost(content: &str) -> f64 {
    ((content.len() as u64 + 30).div_ceil(4) + 5) as f64 * USD_PER_TOKEN
}

fn metered(content: &str, max_tokens: u64) -> Value {
    json!({"model": "metered", "max_tokens": max_tokens, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn concurrent_requests_at_95_percent_of_a_budget_overshoot_at_most_one_reservation() {
    const BUDGET: f64 = 1.0;
    const MAX_TOKENS: u64 = 64;
    let h = spawn_proxy(with_client(exact_only(), "key-near", &format!("daily_usd = {BUDGET:.1}"), METERED)).await;

    // 96% of the budget, in two answers of $0.48 each (475 prompt + 5 completion tokens).
    let mut expected = 0.0;
    for i in 1..=2 {
        let content = format!("{}-warmup-{i}", "p".repeat(1861));
        let r = ask_as(&h, "key-near", &metered(&content, 8)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        expected += mock_cost(&content);
    }
    let spent = client_stats(&h).await["spent_today_usd"].as_f64().unwrap_or(0.0);
    assert!((spent - expected).abs() < 1e-9 && (spent - 0.96).abs() < 1e-9, "{spent} vs {expected}");

    // Twenty distinct requests, all in flight at once (the mock waits 500 ms before answering).
    h.mock.control.set_sticky("metered", Some(Fault::Delay { ms: 500 }));
    let contents: Vec<String> = (0..20).map(|i| format!("concurrent-question-{i:02}")).collect();
    // The worst case of one of them: input price x estimated prompt + output price x max_tokens.
    let reservation = (estimated_prompt_tokens(&contents[0]) + MAX_TOKENS) as f64 * USD_PER_TOKEN;
    let answer = mock_cost(&contents[0]);
    assert!((reservation - 0.072).abs() < 1e-12 && (answer - 0.018).abs() < 1e-12, "{reservation} {answer}");
    let mut all = tokio::task::JoinSet::new();
    for content in contents {
        let url = h.url("/v1/chat/completions");
        all.spawn(async move {
            let resp = client()
                .post(url)
                .bearer_auth("key-near")
                .json(&metered(&content, MAX_TOKENS))
                .send()
                .await
                .expect("proxy answers");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        });
    }
    let mut refused = 0;
    while let Some(r) = all.join_next().await {
        let (status, text) = r.expect("request task");
        match status {
            200 => {}
            429 => {
                let body: Value = serde_json::from_str(&text).unwrap_or_default();
                assert_eq!(body["error"]["type"], "insufficient_quota", "{text}");
                refused += 1;
            }
            other => panic!("{other}: {text}"),
        }
    }
    let spent = client_stats(&h).await["spent_today_usd"].as_f64().unwrap_or(0.0);
    let bound = BUDGET + reservation + 1e-9;
    assert!(
        spent <= bound,
        "spent ${spent:.3} of a ${BUDGET} budget: more than one reservation (${reservation}) over it; \
         {refused} of 20 refused, {} upstream calls to `metered`",
        h.mock.control.calls("metered")
    );
    assert!(refused >= 1, "at 96% of the budget, twenty concurrent requests cannot all be let through");
}

// ---------------------------------------------------------------------------
// (4) Answers that failed half-way are billed.

#[tokio::test]
async fn a_stream_reset_after_100_chunks_is_billed() {
    let h = spawn_proxy(with_client(exact_only(), "key-billed", "daily_usd = 100.0", "")).await;
    h.mock.control.push_faults("cheap", [Fault::LongStream { chunks: 1000, chunk_bytes: 64, cut_after: Some(100) }]);
    let question = "a long answer that is cut short";
    let mut body = streamed(question);
    body["model"] = json!("cheap");
    let r = ask_as(&h, "key-billed", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(streamed_content(&r.text).len(), 100 * 64, "the 100 chunks sent reached the client");
    assert!(!r.text.contains("data: [DONE]"), "an interrupted stream never ends with [DONE]");
    assert_eq!(h.mock.control.calls("cheap"), 1);

    // The provider bills what it generated: at the least the prompt, at cheap's $0.20 per million.
    let floor = estimated_prompt_tokens(question) as f64 * 0.20 / 1e6;
    let spent = client_stats(&h).await["spent_today_usd"].as_f64().unwrap_or(0.0);
    assert!(spent > 0.0 && spent >= floor * 0.999, "the key's spend after a cut stream: {spent} (floor {floor})");
    let m = metrics(&h).await;
    let by_model = sample(&m, r#"deja_spent_usd_total{model="cheap"}"#);
    assert!(by_model > 0.0 && by_model >= floor * 0.999, "deja_spent_usd_total{{model=\"cheap\"}} = {by_model}");
}

#[tokio::test]
async fn a_2xx_body_that_fails_to_parse_is_billed() {
    let h = spawn_proxy(with_client(exact_only(), "key-billed", "daily_usd = 100.0", "")).await;
    h.mock.control.set_sticky("cheap", Some(Fault::Malformed));
    let question = "an answer that cannot be read";
    let mut body = ask(question);
    body["model"] = json!("cheap");
    let r = ask_as(&h, "key-billed", &body).await;
    assert!(r.status >= 500, "no answer could be read: {} {}", r.status, r.text);
    assert!(h.mock.control.calls("cheap") >= 1);
    assert_eq!(h.mock.control.total_calls(), h.mock.control.calls("cheap"), "a single-model target: no fallback");

    // A 200 is billed by the provider: at the least the prompt at the input price.
    let floor = estimated_prompt_tokens(question) as f64 * 0.20 / 1e6;
    let spent = client_stats(&h).await["spent_today_usd"].as_f64().unwrap_or(0.0);
    assert!(spent > 0.0 && spent >= floor * 0.999, "the key's spend after an unreadable 200: {spent} (floor {floor})");
    let m = metrics(&h).await;
    let by_model = sample(&m, r#"deja_spent_usd_total{model="cheap"}"#);
    assert!(by_model > 0.0 && by_model >= floor * 0.999, "deja_spent_usd_total{{model=\"cheap\"}} = {by_model}");
}

// ---------------------------------------------------------------------------
// (5) A streaming follower.

/// Reads a streamed response; `first` is told when its first `data:` frame arrived.
async fn read_stream(resp: reqwest::Response, first: Option<tokio::sync::oneshot::Sender<()>>) -> String {
    let mut first = first;
    let mut text = String::new();
    let mut resp = resp;
    while let Some(chunk) = resp.chunk().await.expect("stream reads") {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if text.contains("data: ") {
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
        }
    }
    text
}

#[tokio::test]
async fn a_streaming_followers_first_byte_arrives_with_the_leaders_first_frame() {
    const CHUNKS: usize = 30;
    const BYTES: usize = 64;
    let h = spawn_proxy(TestConfig { attempt_timeout: "60s".into(), ..exact_only() }).await;
    // 32 events, 150 ms apart: the whole stream takes about 4.8 s.
    h.mock.control.set_chunk_delay(Duration::from_millis(150));
    h.mock.control.set_sticky("cheap", Some(Fault::LongStream { chunks: CHUNKS, chunk_bytes: BYTES, cut_after: None }));
    let question = "stream this slowly to everyone";
    let body = streamed(question);

    let leader_started = Instant::now();
    let leader = client().post(h.url("/v1/chat/completions")).json(&body).send().await.expect("leader");
    assert_eq!(leader.status(), 200);
    let leader_cache = leader.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let leader = tokio::spawn(async move {
        let text = read_stream(leader, Some(first_tx)).await;
        (text, Instant::now())
    });
    first_rx.await.expect("the leader's first frame");
    let leader_first = leader_started.elapsed();

    let follower_started = Instant::now();
    let follower = client().post(h.url("/v1/chat/completions")).json(&body).send().await.expect("follower");
    assert_eq!(follower.status(), 200);
    let follower_cache = follower.headers().get("x-deja-cache").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (ftx, frx) = tokio::sync::oneshot::channel();
    let follower = tokio::spawn(read_stream(follower, Some(ftx)));
    let first_frame = tokio::time::timeout(Duration::from_secs(10), frx).await;
    let waited = follower_started.elapsed();
    let (leader_text, leader_done) = leader.await.expect("leader task");
    let follower_text = follower.await.expect("follower task");
    let leader_took = leader_done.duration_since(leader_started);
    assert!(first_frame.is_ok(), "the follower got no data frame within 10 s");
    assert!(
        waited < Duration::from_secs(1),
        "the follower's first frame came {waited:?} after it asked (the leader's first after {leader_first:?}, \
         its stream took {leader_took:?})"
    );
    assert!(leader_took > Duration::from_secs(3), "the leader's stream was long: {leader_took:?}");

    assert_eq!(leader_cache, "miss");
    assert_eq!(follower_cache, "coalesced", "the follower is marked as coalesced");
    let expected = long_answer(question, CHUNKS, BYTES);
    assert_eq!(streamed_content(&leader_text), expected);
    assert_eq!(streamed_content(&follower_text), expected, "the follower's assembled content is the leader's");
    assert_eq!(events(&follower_text).last().map(String::as_str), Some("[DONE]"));
    assert_eq!(h.mock.control.total_calls(), 1);
}
