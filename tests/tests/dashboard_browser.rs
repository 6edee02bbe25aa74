//! The dashboard in a real browser: Debian's `chromium`, headless, driven
//! through `chromedriver` against the real proxy while traffic flows. An
//! operator signs in, watches the hit rate move, finds an entry, reads it,
//! deletes it (the next request misses), asks "what would this hit?" and
//! purges by filter after seeing how many entries would go; a second test
//! finds a near miss in the threshold explorer and moves its slider; a third
//! compares two models and two namespaces over time and reads the semantic
//! quality SLO. A screenshot of each page lands in
//! `target/dashboard-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium`, `chromium-driver`;
//! `.ci/run` installs them). Without them the test fails and says so.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, TestConfig};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `$name` if set, else the first of `candidates` that exists.
fn find_program(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        let direct = PathBuf::from(name);
        if direct.is_absolute() && direct.is_file() {
            return Some(direct);
        }
        if let Some(found) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
            return Some(found);
        }
    }
    None
}

/// A chromedriver we started; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port (it has no `--port=0`: a port seen free
/// may be taken before it binds, so a few ports are tried).
async fn start_driver(program: &Path, dir: &Path) -> Driver {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", dir.join("chromedriver.log").display()))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("could not start {}: {e} (Debian: apt-get install chromium-driver)", program.display())
            });
        let mut driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let status = format!("{}/status", driver.url);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = driver.child.try_wait() {
                break; // exited: most likely the port was taken
            }
            if let Ok(r) = client().get(&status).send().await {
                if r.status().is_success() {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(driver);
    }
    panic!("chromedriver did not come up on any of 5 ports");
}

async fn open_browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromedriver opens a chromium session")
}

/// Runs `script` in the page and returns its value.
async fn js(b: &Client, script: &str) -> Value {
    b.execute(script, vec![]).await.expect("script runs")
}

/// The text of element `#id` (hidden or not).
async fn text_of(b: &Client, id: &str) -> String {
    let v = b
        .execute("const e = document.getElementById(arguments[0]); return e ? e.textContent : null;", vec![json!(id)])
        .await
        .expect("script runs");
    v.as_str().unwrap_or("").to_string()
}

/// Waits until `#id`'s text satisfies `ok`, or fails saying what it saw.
async fn wait_text(b: &Client, id: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let t = text_of(b, id).await;
        if ok(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "#{id}: waited for {what}, it reads {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_js(b: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while js(b, script).await != json!(true) {
        assert!(Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(b: &Client, id: &str) {
    b.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}")).click().await.expect("click");
}

async fn type_into(b: &Client, id: &str, text: &str) {
    let e = b.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

fn screenshot_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/dashboard-screenshots"))
}

async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

#[tokio::test]
async fn an_operator_tunes_the_cache_from_the_dashboard_in_chromium() {
    let missing = "the dashboard test needs chromium and chromedriver: on Debian \
        `apt-get install chromium chromium-driver` (or set CHROMIUM and CHROMEDRIVER)";
    let chromium = find_program("CHROMIUM", &["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("{missing}"));
    let chromedriver =
        find_program("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]).unwrap_or_else(|| panic!("{missing}"));

    // The deterministic hashed embedder: the semantic stage is on, its verdicts stable.
    let h = spawn_proxy(TestConfig::default()).await;
    let sunday = ask("When do you open on Sunday?");
    assert_eq!(chat(&h, &sunday).await.cache(), "miss");
    assert_eq!(chat(&h, &ask("Do you ship to Norway?")).await.cache(), "miss");

    let dir = tempfile::tempdir().expect("temp dir");
    let driver = start_driver(&chromedriver, dir.path()).await;
    let b = open_browser(&driver, &chromium, &dir.path().join("profile")).await;
    // Drive in a task so that a failed check still closes the browser and
    // stops chromedriver before the failure is reported.
    let outcome = tokio::spawn({
        let b = b.clone();
        async move { drive(&b, &h, &sunday).await }
    })
    .await;
    let _ = b.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn drive(b: &Client, h: &deja_testkit::Harness, sunday: &Value) {
    b.set_window_size(1280, 1000).await.expect("window size");
    b.goto(&h.url("/admin/ui")).await.expect("the dashboard loads");

    // A wrong token is refused and leaves nothing behind.
    type_into(b, "token", "not-the-token").await;
    screenshot(b, "login").await;
    b.find(Locator::Css("#login button[type=submit]")).await.expect("sign-in button").click().await.expect("click");
    wait_text(b, "login-error", "a refusal", |t| t.contains("refused")).await;
    assert_eq!(js(b, "return sessionStorage.length").await, json!(0));

    // The right one opens the overview; it is kept in sessionStorage only.
    type_into(b, "token", "test-admin-token").await;
    b.find(Locator::Css("#login button[type=submit]")).await.expect("sign-in button").click().await.expect("click");
    wait_text(b, "requests", "two requests", |t| t == "2").await;
    assert_eq!(text_of(b, "hit-rate").await, "0.0%");
    assert_eq!(js(b, "return localStorage.length").await, json!(0));
    assert_eq!(js(b, "return sessionStorage.getItem('deja-admin-token')").await, json!("test-admin-token"));

    // Traffic flows: three exact hits move the hit rate to 3 of 5.
    for _ in 0..3 {
        assert_eq!(chat(h, sunday).await.cache(), "exact");
    }
    click(b, "tab-overview").await;
    wait_text(b, "hit-rate", "60% hit rate", |t| t == "60.0%").await;
    assert_eq!(text_of(b, "exact").await, "3 (60.0%)");
    wait_js(
        b,
        "the lookups chart to draw bars",
        "return document.querySelectorAll('#chart-lookups rect.exact').length > 0",
    )
    .await;
    wait_js(b, "ladder health for every model", "return document.querySelectorAll('#health tr').length === 4").await;
    let health = text_of(b, "health").await;
    assert!(health.contains("cheap") && health.contains("ok"), "{health}");
    wait_js(
        b,
        "a TTFB figure per model, measured for the rung that answered",
        "const rows = [...document.querySelectorAll('#health tr')]; \
         return rows.every((r) => r.querySelector('td.ttfb')) \
           && rows.some((r) => /^cheap/.test(r.textContent) && /\\d+ ms/.test(r.querySelector('td.ttfb').textContent))",
    )
    .await;
    // The same figures drawn: a TTFB bar for the rung that answered, none for the others.
    wait_js(
        b,
        "a health row per model in the chart",
        "return document.querySelectorAll('#chart-health g.health-row').length === 4",
    )
    .await;
    let bars = js(
        b,
        "return [...document.querySelectorAll('#chart-health rect.ttfb')].map((r) => r.parentNode.dataset.model)",
    )
    .await;
    assert_eq!(bars, json!(["cheap"]));
    assert!(text_of(b, "window-totals").await.contains("5 requests"));
    screenshot(b, "overview").await;

    // Entries: find one by search and read its request and answer.
    click(b, "tab-entries").await;
    wait_js(b, "two entries listed", "return document.querySelectorAll('#entries tr').length === 2").await;
    type_into(b, "search", "sunday").await;
    wait_js(b, "the search to narrow to one", "return document.querySelectorAll('#entries tr').length === 1").await;
    b.find(Locator::Css("#entries tr")).await.expect("a row").click().await.expect("open the entry");
    wait_text(b, "entry-request", "the stored request", |t| t.contains("When do you open on Sunday?")).await;
    let answer = text_of(b, "entry-answer").await;
    assert!(answer.contains("chat.completion"), "{answer}");
    assert!(text_of(b, "entry-facts").await.contains("cheap"));
    screenshot(b, "entry").await;

    // Delete it (two clicks): the next identical request misses.
    click(b, "entry-delete").await;
    click(b, "entry-delete-confirm").await;
    wait_text(b, "entries-flash", "the deletion", |t| t.starts_with("Deleted entry")).await;
    wait_js(b, "one entry left", "return document.querySelectorAll('#entries tr').length === 0").await;
    assert_eq!(chat(h, sunday).await.cache(), "miss");

    // What would this hit? The stored question is served, another is not.
    click(b, "tab-probe").await;
    wait_js(b, "the model list", "return document.getElementById('probe-model').value === 'auto'").await;
    type_into(b, "probe-prompt", "Do you ship to Norway?").await;
    b.find(Locator::Css("#probe button[type=submit]")).await.expect("search button").click().await.expect("click");
    wait_text(b, "probe-summary", "a verdict", |t| t.contains("would")).await;
    screenshot(b, "probe").await;
    let summary = text_of(b, "probe-summary").await;
    assert!(summary.contains("would be served"), "{summary}");
    let first = js(b, "const r = document.querySelector('#probe-results tr'); return r ? r.textContent : ''").await;
    let first = first.as_str().unwrap_or("");
    assert!(first.starts_with("1.0000yes") && first.contains("Norway"), "{first}");
    type_into(b, "probe-prompt", "Which payment methods do you accept?").await;
    b.find(Locator::Css("#probe button[type=submit]")).await.expect("search button").click().await.expect("click");
    wait_text(b, "probe-summary", "a miss", |t| t.ends_with("would miss")).await;

    // Purge by filter: the count is shown first, then the purge happens.
    click(b, "tab-entries").await;
    type_into(b, "search", "").await;
    type_into(b, "model", "auto").await;
    click(b, "purge-preview").await;
    wait_text(b, "purge-message", "the count", |t| t.starts_with("2 entries will be removed")).await;
    screenshot(b, "purge").await;
    assert_eq!(admin_get(h, "/admin/stats").await.body["entries"], 2, "a preview removes nothing");
    click(b, "purge-go").await;
    wait_text(b, "entries-flash", "the purge", |t| t == "Purged 2 entries.").await;
    assert_eq!(admin_get(h, "/admin/stats").await.body["entries"], 0);
}

/// How similar the test embedder finds `stored` and `asked`, as "what would this hit?" reports it.
async fn similarity(stored: &str, asked: &str) -> f64 {
    let h = spawn_proxy(TestConfig::default()).await;
    chat(&h, &ask(stored)).await;
    let r = admin_send(&h, reqwest::Method::POST, "/admin/cache/search", &json!({"prompt": asked})).await;
    r.body["results"][0]["similarity"].as_f64().expect("a candidate")
}

#[tokio::test]
async fn an_operator_explores_the_threshold_in_chromium() {
    let missing = "the dashboard test needs chromium and chromedriver: on Debian \
        `apt-get install chromium chromium-driver` (or set CHROMIUM and CHROMEDRIVER)";
    let chromium = find_program("CHROMIUM", &["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("{missing}"));
    let chromedriver =
        find_program("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]).unwrap_or_else(|| panic!("{missing}"));

    // A threshold just above the paraphrase's similarity: it nearly hits.
    let (original, paraphrase) = ("How do I reset my password?", "How can I reset my password?");
    let sim = similarity(original, paraphrase).await;
    let threshold = ((sim + 0.01) * 100.0).ceil() / 100.0;
    let config = TestConfig { threshold: threshold as f32, verify_from: Some(threshold as f32), ..Default::default() };
    let h = spawn_proxy(config).await;
    assert_eq!(chat(&h, &ask(original)).await.cache(), "miss");
    assert_eq!(chat(&h, &ask("Do you ship to Norway?")).await.cache(), "miss");
    assert_eq!(chat(&h, &ask(paraphrase)).await.cache(), "miss");

    let dir = tempfile::tempdir().expect("temp dir");
    let driver = start_driver(&chromedriver, dir.path()).await;
    let b = open_browser(&driver, &chromium, &dir.path().join("profile")).await;
    let outcome = tokio::spawn({
        let b = b.clone();
        async move { explore(&b, &h, sim, threshold).await }
    })
    .await;
    let _ = b.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn explore(b: &Client, h: &deja_testkit::Harness, sim: f64, threshold: f64) {
    b.set_window_size(1280, 1000).await.expect("window size");
    b.goto(&h.url("/admin/ui")).await.expect("the dashboard loads");
    type_into(b, "token", "test-admin-token").await;
    b.find(Locator::Css("#login button[type=submit]")).await.expect("sign-in button").click().await.expect("click");
    wait_text(b, "requests", "three requests", |t| t == "3").await;
    // The overview narrowed per namespace.
    select(b, "by-dim", "namespace").await;
    wait_keys(b, "the namespace legend", LEGEND_KEYS, &["default"]).await;
    assert!(text_of(b, "by-legend").await.starts_with("default 3 requests · hit 0.0%"));

    click(b, "tab-thresholds").await;
    wait_text(b, "thr-summary", "the lookups", |t| t.starts_with("3 recent semantic lookups")).await;
    wait_js(b, "the histogram", "return document.querySelectorAll('#thr-histogram rect.nohit').length > 0").await;
    let near = wait_text(b, "near-misses", "the paraphrase as a near miss", |t| t.contains("How can I reset")).await;
    assert!(near.contains("How do I reset my password?"), "next to the entry it nearly hit: {near}");
    assert!(near.contains("miss"), "{near}");
    let config = text_of(b, "thr-config").await;
    assert!(config.contains(&format!("threshold = {threshold:.2}")), "{config}");
    assert!(config.contains("deja cache reload") && config.contains("kill -HUP"), "{config}");

    // Lower the slider below the paraphrase: it would have been served; nothing is written.
    let lower = (sim * 100.0).floor() / 100.0;
    js(
        b,
        &format!(
            "const s = document.getElementById('thr-slider'); s.value = '{lower:.2}'; \
             s.dispatchEvent(new Event('input')); return true"
        ),
    )
    .await;
    wait_text(b, "thr-value", "the slider's value", |t| t == format!("{lower:.2}")).await;
    let whatif = text_of(b, "thr-whatif").await;
    assert!(whatif.contains("1 of 3 recent lookups would have been served (+1 not served now)"), "{whatif}");
    assert!(text_of(b, "near-misses").await.contains("would be served"));
    assert!(text_of(b, "thr-gained").await.contains("How can I reset my password?"));
    wait_text(b, "thr-config", "the new config line", |t| t.contains(&format!("threshold = {lower:.2}"))).await;
    screenshot(b, "threshold").await;
    let stats = admin_get(h, "/admin/lookups").await.body;
    assert_eq!(stats["threshold"].as_f64().map(|t| (t * 100.0).round()), Some((threshold * 100.0).round()));
}

/// Asks `content` of `model` in namespace `namespace`.
async fn ask_in(h: &deja_testkit::Harness, model: &str, namespace: &str, content: &str) -> String {
    let body = json!({"model": model, "messages": [{"role": "user", "content": content}]});
    let r = chat_with(h, &body, &[("x-deja-namespace", namespace)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.cache().to_string()
}

#[tokio::test]
async fn an_operator_compares_models_and_namespaces_and_reads_the_slo_in_chromium() {
    let missing = "the dashboard test needs chromium and chromedriver: on Debian \
        `apt-get install chromium chromium-driver` (or set CHROMIUM and CHROMEDRIVER)";
    let chromium = find_program("CHROMIUM", &["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"])
        .unwrap_or_else(|| panic!("{missing}"));
    let chromedriver =
        find_program("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]).unwrap_or_else(|| panic!("{missing}"));

    // Every semantic hit is checked: the hash embedder puts the paraphrase at
    // a cosine of about 0.83 (above this threshold), and the mock's fresh
    // answer names the paraphrase, so the check disagrees (as in tests/slo.rs).
    let config = TestConfig {
        threshold: 0.80,
        extra_toml: "\n[cache.semantic.slo]\nsample_rate = 1.0\nmax_false_hit_rate = 0.02\n\
                     answer_similarity = 0.95\nmax_threshold = 0.99\nstep = 0.1\nmin_samples = 3\n"
            .into(),
        ..Default::default()
    };
    let h = spawn_proxy(config).await;
    let (original, paraphrase) = ("How do I reset my password?", "How can I reset my password?");
    // Namespace "support", ladder "auto" (answered by cheap): a miss, a semantic hit, an exact hit.
    assert_eq!(ask_in(&h, "auto", "support", original).await, "miss");
    assert_eq!(ask_in(&h, "auto", "support", paraphrase).await, "semantic");
    assert_eq!(ask_in(&h, "auto", "support", original).await, "exact");
    // Namespace "billing", model "mid" by name: a miss, then an exact hit.
    assert_eq!(ask_in(&h, "mid", "billing", "Do you ship to Norway?").await, "miss");
    assert_eq!(ask_in(&h, "mid", "billing", "Do you ship to Norway?").await, "exact");
    let sampled = deja_testkit::eventually(Duration::from_secs(5), || async {
        admin_get(&h, "/admin/slo").await.body["by_namespace"]["default/support"]["samples_total"] == 1
    })
    .await;
    assert!(sampled, "the semantic hit was never checked: {}", admin_get(&h, "/admin/slo").await.body);

    let dir = tempfile::tempdir().expect("temp dir");
    let driver = start_driver(&chromedriver, dir.path()).await;
    let b = open_browser(&driver, &chromium, &dir.path().join("profile")).await;
    let outcome = tokio::spawn({
        let b = b.clone();
        async move { compare(&b, &h, paraphrase).await }
    })
    .await;
    let _ = b.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The keys of the per-model (per-namespace) legend, in the page's order.
const LEGEND_KEYS: &str = "return [...document.querySelectorAll('#by-legend li')].map((li) => li.dataset.key)";
/// The keys of the lines drawn in the requests chart.
const LINE_KEYS: &str =
    "return [...document.querySelectorAll('#chart-by-requests path.series')].map((p) => p.dataset.key).sort()";

async fn wait_keys(b: &Client, what: &str, script: &str, keys: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = js(b, script).await;
        if seen == json!(keys) {
            return;
        }
        assert!(Instant::now() < deadline, "waited for {what} {keys:?}, the page shows {seen}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn select(b: &Client, id: &str, value: &str) {
    js(
        b,
        &format!(
            "const s = document.getElementById('{id}'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change')); return true"
        ),
    )
    .await;
}

async fn compare(b: &Client, h: &deja_testkit::Harness, paraphrase: &str) {
    b.set_window_size(1280, 1000).await.expect("window size");
    b.goto(&h.url("/admin/ui")).await.expect("the dashboard loads");
    type_into(b, "token", "test-admin-token").await;
    b.find(Locator::Css("#login button[type=submit]")).await.expect("sign-in button").click().await.expect("click");
    wait_text(b, "requests", "five requests", |t| t == "5").await;

    // Per model: one legend entry and one line each, busiest first.
    wait_keys(b, "the legend", LEGEND_KEYS, &["cheap", "mid"]).await;
    wait_keys(b, "a line per model", LINE_KEYS, &["cheap", "mid"]).await;
    let legend = text_of(b, "by-legend").await;
    assert!(legend.contains("cheap 3 requests · hit 66.7%"), "{legend}");
    assert!(legend.contains("mid 2 requests · hit 50.0%"), "{legend}");
    let bars = js(b, "return document.querySelectorAll('#chart-by-usd g[data-key] rect.bar.spent').length").await;
    assert_eq!(bars, json!(2), "saved and spent bars for each model");
    js(b, "document.getElementById('by-dim').scrollIntoView(); return true").await;
    screenshot(b, "per-model").await;

    // Per namespace: the same traffic split by who asked.
    select(b, "by-dim", "namespace").await;
    wait_keys(b, "the legend", LEGEND_KEYS, &["default/support", "default/billing"]).await;
    wait_keys(b, "a line per namespace", LINE_KEYS, &["default/billing", "default/support"]).await;
    assert!(text_of(b, "by-legend").await.contains("default/support 3 requests"));
    // One namespace alone: its exact, semantic and miss bars.
    b.find(Locator::Css("#by-legend li[data-key='default/support']"))
        .await
        .expect("legend entry")
        .click()
        .await
        .expect("click");
    wait_text(b, "by-requests-caption", "the namespace's own chart", |t| t.starts_with("default/support:")).await;
    for kind in ["exact", "semantic", "miss"] {
        let n = js(b, &format!("return document.querySelectorAll('#chart-by-requests rect.{kind}').length")).await;
        assert_eq!(n, json!(1), "{kind}: one bar in the interval it happened in");
    }
    assert_eq!(js(b, "return document.getElementById('by-key').value").await, json!("default/support"));
    screenshot(b, "per-namespace").await;

    // The semantic quality SLO: the checked hit disagreed.
    let row = "#chart-slo g.slo-row[data-namespace='default/support']";
    wait_js(b, "the namespace's SLO row", &format!("return document.querySelector(\"{row}\") !== null")).await;
    let figures = js(b, &format!("return document.querySelector(\"{row}\").textContent")).await;
    let figures = figures.as_str().unwrap_or("");
    assert!(figures.contains("1 of 1 samples") && figures.contains("threshold 0.80"), "{figures}");
    assert!(text_of(b, "slo-summary").await.starts_with("sampling 100.0% of semantic hits"));
    assert_eq!(text_of(b, "slo-shadow-calls").await, "1");
    assert_eq!(text_of(b, "verifications").await, "0");
    let disagreements = text_of(b, "slo-disagreements").await;
    assert!(disagreements.contains(paraphrase) && disagreements.contains("default/support"), "{disagreements}");
    let visible =
        "const r = document.getElementById('slo').getBoundingClientRect(); return r.height > 0 && r.width > 0";
    wait_js(b, "the SLO panel to be shown", visible).await;
    js(b, "document.getElementById('slo').scrollIntoView(); return true").await;
    screenshot(b, "slo").await;
}
