//! Semantic hits that cannot be fooled, with the real model, the default
//! threshold (0.94) and the mock upstream, whose answer quotes the question
//! it was asked: a wrong hit shows as an answer quoting another input.
//!
//! The traffic is the kind users send: one user message made of a fixed
//! instruction and a variable ticket (instruction before or after, long,
//! medium or short), a pasted policy followed by different questions,
//! Chinese, Japanese, Korean, Spanish and German questions, and prompts
//! longer than the model reads. The sets are in `tests/data/templates/` and
//! `tests/data/multilingual/`.

mod common;

use common::*;
use deja_testkit::{spawn_proxy, Embedding, Harness, TestConfig};
use serde_json::{json, Value};

/// The shipped defaults: `config/deja.toml`'s threshold and guards.
fn defaults() -> TestConfig {
    TestConfig { embedding: Embedding::Real, threshold: 0.94, ..Default::default() }
}

fn data(path: &str) -> String {
    let full = format!("{}/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn jsonl(path: &str) -> Vec<Value> {
    data(path).lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("json line")).collect()
}

fn instruction(name: &str) -> String {
    let all: Value = serde_json::from_str(&data("templates/instructions.json")).expect("instructions");
    all[name].as_str().unwrap_or_else(|| panic!("no instruction {name}")).to_string()
}

struct Ticket {
    ticket: String,
    paraphrase: String,
}

fn tickets() -> Vec<Ticket> {
    jsonl("templates/tickets.jsonl")
        .into_iter()
        .map(|t| Ticket {
            ticket: t["ticket"].as_str().expect("ticket").into(),
            paraphrase: t["paraphrase"].as_str().expect("paraphrase").into(),
        })
        .collect()
}

/// How a template wraps an input.
#[derive(Clone, Copy)]
enum Layout {
    Before(&'static str),
    After(&'static str),
    Bare,
}

impl Layout {
    fn wrap(self, input: &str) -> String {
        match self {
            Layout::Before(name) => format!("{}\n\nTicket: {input}", instruction(name)),
            Layout::After(name) => format!("Customer message:\n{input}\n\n{}", instruction(name)),
            Layout::Bare => input.to_string(),
        }
    }
}

async fn ask_in(h: &Harness, namespace: &str, text: &str) -> Reply {
    chat_with(h, &ask(text), &[("x-deja-namespace", namespace)]).await
}

/// What sending every ticket, then every paraphrase, through `layout` gave.
#[derive(Debug, Default)]
struct Outcome {
    /// Distinct tickets served from the cache (each is a different problem).
    tickets_served: Vec<String>,
    /// Paraphrases served another ticket's answer.
    wrong: Vec<String>,
    /// Paraphrases served their own ticket's answer.
    right: usize,
}

/// The question the mock's answer quotes.
fn quoted(r: &Reply) -> &str {
    r.content().split_once("Simulated answer to: ").map_or("", |(_, q)| q)
}

async fn run(h: &Harness, namespace: &str, layout: Layout, set: &[Ticket]) -> Outcome {
    let mut out = Outcome::default();
    for t in set {
        let asked = layout.wrap(&t.ticket);
        let r = ask_in(h, namespace, &asked).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.cache() != "miss" || quoted(&r) != asked {
            out.tickets_served.push(format!("{} ({} {:?})", t.ticket, r.cache(), r.header("x-deja-similarity")));
        }
    }
    for t in set {
        let r = ask_in(h, namespace, &layout.wrap(&t.paraphrase)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.cache() == "miss" {
            continue;
        }
        // The answer quotes the question it was given: its own ticket's, or another's.
        if quoted(&r) == layout.wrap(&t.ticket) {
            out.right += 1;
        } else {
            out.wrong.push(format!("{} -> {}", t.paraphrase, quoted(&r)));
        }
    }
    eprintln!("{namespace}: {} paraphrases of {} served their own ticket's answer", out.right, set.len());
    out
}

#[tokio::test]
async fn templated_tickets_are_never_served_another_tickets_answer_and_lose_no_recall() {
    templated_tickets(defaults()).await;
}

/// At a lower threshold more paraphrases hit, bare or behind a template alike.
#[tokio::test]
async fn templated_tickets_at_a_lower_threshold() {
    templated_tickets(TestConfig { threshold: 0.85, ..defaults() }).await;
}

/// The same traffic embedded by EmbeddingGemma (when fetched), at its default threshold.
#[tokio::test]
async fn templated_tickets_with_gemma() {
    if !deja_testkit::gemma_available() {
        return;
    }
    templated_tickets(TestConfig { embedding: Embedding::Gemma, threshold: 0.965, ..defaults() }).await;
}

async fn templated_tickets(config: TestConfig) {
    let h = spawn_proxy(config).await;
    let set = tickets();
    assert!(set.len() >= 40);
    let bare = run(&h, "bare", Layout::Bare, &set).await;
    assert!(bare.tickets_served.is_empty(), "distinct bare tickets served: {:?}", bare.tickets_served);
    assert!(bare.wrong.is_empty(), "bare: {:?}", bare.wrong);
    for layout in [
        Layout::Before("long"),
        Layout::Before("medium"),
        Layout::Before("short"),
        Layout::After("after"),
        Layout::Before("translate"),
    ] {
        let name = match layout {
            Layout::Before(n) | Layout::After(n) => n,
            Layout::Bare => "bare",
        };
        let got = run(&h, name, layout, &set).await;
        assert!(got.tickets_served.is_empty(), "{name}: distinct tickets served: {:?}", got.tickets_served);
        assert!(got.wrong.is_empty(), "{name}: wrong answers: {:?}", got.wrong);
        // A template costs no recall: the inputs are compared as if sent bare.
        assert!(
            got.right >= bare.right,
            "{name}: {} paraphrases served behind the template, {} bare",
            got.right,
            bare.right
        );
    }
}

#[tokio::test]
async fn a_pasted_document_followed_by_different_questions_is_judged_on_the_questions() {
    let h = spawn_proxy(defaults()).await;
    let policy = instruction("policy");
    let questions = jsonl("templates/policy_questions.jsonl");
    let wrap = |q: &str| format!("{policy}\n\nQuestion: {q}");
    for q in &questions {
        let q = q["question"].as_str().expect("question");
        let r = chat(&h, &ask(&wrap(q))).await;
        assert_eq!(r.cache(), "miss", "`{q}` was served {:?}", r.content());
        assert_eq!(quoted(&r), wrap(q));
    }
    for q in &questions {
        let (question, para) = (q["question"].as_str().expect("q"), q["paraphrase"].as_str().expect("p"));
        let r = chat(&h, &ask(&wrap(para))).await;
        if r.cache() != "miss" {
            assert_eq!(quoted(&r), wrap(question), "`{para}` was served another question's answer");
        }
    }
    // The search says what was compared: the questions, not the policy.
    let first = questions[0]["question"].as_str().expect("q");
    let found = admin_send(
        &h,
        reqwest::Method::POST,
        "/admin/cache/search",
        &json!({"prompt": wrap("Do you price match other stores?"), "model": "auto"}),
    )
    .await
    .body;
    let best = &found["results"][0];
    assert_eq!(best["compared"]["query"], "Do you price match other stores?", "{found}");
    // The first question stored was indexed by its whole text, which the
    // model reads only as far as the policy: identical vectors, told apart
    // by what differs.
    let results = found["results"].as_array().cloned().unwrap_or_default();
    assert!(
        results.iter().any(|x| x["whole_similarity"].as_f64() > Some(0.999) && x["similarity"].as_f64() < Some(0.9)),
        "{found}"
    );
    assert_eq!(found["cannot_match"], Value::Null, "{found}");
    assert!(found["results"].as_array().is_some_and(|r| r.iter().any(|x| x["compared"]["entry"] == first)), "{found}");
}

#[tokio::test]
async fn distinct_questions_in_other_scripts_are_never_served_each_others_answers() {
    let h = spawn_proxy(defaults()).await;
    let questions = jsonl("multilingual/distinct.jsonl");
    assert!(questions.iter().filter(|q| q["lang"] == "zh").count() >= 30);
    let mut served = Vec::new();
    for q in &questions {
        let text = q["text"].as_str().expect("text");
        let r = chat(&h, &ask(text)).await;
        if r.cache() != "miss" || quoted(&r) != text {
            served.push(format!("{} {text} -> {} ({})", q["lang"], r.content(), r.cache()));
        }
    }
    assert!(served.is_empty(), "{served:#?}");
    // An identical repeat is still an exact hit.
    assert_eq!(chat(&h, &ask("如何联系客服？")).await.cache(), "exact");
    // The operator sees why: counted per reason, and said by the search.
    let stats = admin_get(&h, "/admin/stats").await.body;
    assert!(stats["semantic_unmatchable"]["unknown_tokens"].as_u64() >= Some(30), "{stats}");
    let metrics = client().get(h.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("deja_semantic_unmatchable_total{reason=\"unknown_tokens\"}"), "{metrics}");
    let found = admin_send(
        &h,
        reqwest::Method::POST,
        "/admin/cache/search",
        &json!({"prompt": "可以开发票吗？", "model": "auto"}),
    )
    .await
    .body;
    assert_eq!(found["cannot_match"], "unknown_tokens", "{found}");
    let lookups = admin_get(&h, "/admin/lookups?limit=2000").await.body;
    let chinese =
        lookups["lookups"].as_array().and_then(|l| l.iter().find(|l| l["question"] == "可以开发票吗？").cloned());
    let chinese = chinese.unwrap_or_default();
    assert_eq!(
        (&chinese["verdict"], &chinese["reason"]),
        (&json!("cannot_match"), &json!("unknown_tokens")),
        "{lookups}"
    );
}

#[tokio::test]
async fn a_question_longer_than_the_model_reads_is_served_by_its_exact_key_only() {
    let h = spawn_proxy(defaults()).await;
    let policy = instruction("policy");
    let long_a = format!("{policy} {policy}");
    // The same opening, past the model's window, then another ending: no
    // shared closing segment to set aside, and the difference lies beyond
    // what the model reads.
    let long_b = format!("{policy} {policy} Also, is gift wrapping free?");
    assert_eq!(chat(&h, &ask(&long_a)).await.cache(), "miss");
    let b = chat(&h, &ask(&long_b)).await;
    assert_eq!(b.cache(), "miss", "{:?}", b.headers);
    assert!(b.content().ends_with("Also, is gift wrapping free?"));
    assert_eq!(chat(&h, &ask(&long_a)).await.cache(), "exact");
    let stats = admin_get(&h, "/admin/stats").await.body;
    let unmatchable = &stats["semantic_unmatchable"];
    assert!(unmatchable["too_long"].as_u64() >= Some(1) || stats["hits"]["semantic"] == 0, "{stats}");
    let other = "x ".repeat(400) + "When do you open?";
    let found =
        admin_send(&h, reqwest::Method::POST, "/admin/cache/search", &json!({"prompt": other, "model": "auto"}))
            .await
            .body;
    assert_eq!(found["cannot_match"], "too_long", "{found}");
}

#[tokio::test]
async fn a_floor_of_one_serves_the_identical_text_only() {
    let h = spawn_proxy(defaults()).await;
    let wrap = |t: &str| format!("{}\n\nTicket: {t}", instruction("long"));
    let original = wrap("my parcel never arrived");
    assert_eq!(chat(&h, &ask(&original)).await.cache(), "miss");
    let floor = [("x-deja-threshold", "1.0")];
    // Behind the same instruction, another ticket: the whole texts' vectors
    // are identical (the model reads only the instruction), the tickets are not.
    let other = chat_with(&h, &ask(&wrap("I was charged twice")), &floor).await;
    assert_eq!(other.cache(), "miss", "{:?}", other.headers);
    let para = chat_with(&h, &ask(&wrap("my parcel never got here")), &floor).await;
    assert_eq!(para.cache(), "miss", "a paraphrase is not the identical text: {:?}", para.headers);
    // The same text with other white space has another exact key, and is the identical text.
    let spaced = chat_with(&h, &ask(&format!("{original}  ")), &floor).await;
    assert_eq!(spaced.cache(), "semantic", "{:?}", spaced.headers);
    assert_eq!(spaced.header("x-deja-similarity"), Some("1.0000"));
}

/// The pairs the README shows, with the default configuration.
#[tokio::test]
async fn the_readme_examples_behave_as_shown() {
    let h = spawn_proxy(defaults()).await;
    for (i, (cached, asked, expected)) in README_PAIRS.iter().enumerate() {
        let ns = format!("readme-{i}");
        assert_eq!(ask_in(&h, &ns, cached).await.cache(), "miss");
        let r = ask_in(&h, &ns, asked).await;
        assert_eq!(&r.cache(), expected, "`{cached}` then `{asked}`: similarity {:?}", r.header("x-deja-similarity"));
    }
}

/// (cached question, new question, `x-deja-cache` of the new one).
const README_PAIRS: &[(&str, &str, &str)] = &[
    ("How do I reset my password?", "How can I reset my password?", "semantic"),
    ("What is your refund policy?", "What's your refund policy?", "semantic"),
    ("Can I pay with PayPal?", "Can I pay using PayPal?", "semantic"),
    ("When do you open?", "What time do you open?", "miss"),
    ("cancel my order", "cancel my subscription", "miss"),
    ("Classify this ticket: my parcel never arrived", "Classify this ticket: I was charged twice", "miss"),
    ("如何联系客服？", "可以开发票吗？", "miss"),
];
