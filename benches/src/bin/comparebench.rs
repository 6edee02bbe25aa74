//! What deciding a semantic match on what differs costs: misses and
//! semantic hits, bare and behind a long instruction (the classification
//! template of `tests/data/templates/instructions.json`), one client at a
//! time, for each `deja` binary given (a baseline build and the current one),
//! in the same run.
//!
//! With `--models minilm,gemma` the current binary is measured once per
//! embedding model (Gemma needs `models/fetch.py --gemma`).
//!
//! Usage: cargo run --release -p deja-benches --bin comparebench -- \
//!     --deja target/release/deja --baseline /path/to/older/deja --count 300

use clap::Parser;
use deja_benches::load::{closed_loop, http_client, start_demo, table, Summary};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Parser)]
struct Args {
    /// The deja binary to measure.
    #[arg(long, default_value = "target/release/deja")]
    deja: PathBuf,
    /// Another build to measure in the same run, first.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Requests per scenario.
    #[arg(long, default_value_t = 300)]
    count: usize,
    /// Embedding models to measure the current binary with (`minilm`, `gemma`).
    #[arg(long, value_delimiter = ',', default_value = "minilm")]
    models: Vec<String>,
}

/// A name, whether the question goes behind the instruction, the question
/// for request `i`, and the `x-deja-cache` expected.
type Scenario = (&'static str, bool, fn(usize) -> String, &'static str);

fn ask(text: &str) -> String {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]}).to_string()
}

fn original(k: usize) -> String {
    format!("How do I reset the password of account {k}?")
}

fn paraphrase(k: usize) -> String {
    format!("How can I reset the password for account {k}?")
}

/// One binary: misses then paraphrase hits, bare and templated.
async fn measure(
    label: &str,
    deja: &Path,
    repo: &Path,
    count: usize,
    model: Option<&str>,
) -> Result<Vec<Summary>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // The demo config keeps the older spelling, so a baseline build reads it
    // as it is; the current one is told the model to use.
    let edit = |c: String| match model {
        Some(m) if m != "minilm" => c.replace("backend = \"minilm\"", &format!("model = \"{m}\"")),
        _ => c,
    };
    let (_procs, base, _) = start_demo(deja, dir.path(), edit, &[]).await?;
    let url = format!("{base}/v1/chat/completions");
    let client = http_client();
    let instructions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("tests/data/templates/instructions.json"))?)?;
    let long = instructions["long"].as_str().unwrap_or_default().to_string();
    let mut out = Vec::new();
    let scenarios: [Scenario; 4] = [
        ("misses, bare", false, original, "miss"),
        ("semantic hits, bare", false, paraphrase, "semantic"),
        ("misses, behind a 340-word instruction", true, original, "miss"),
        ("semantic hits, behind a 340-word instruction", true, paraphrase, "semantic"),
    ];
    for (name, templated, text, want) in scenarios {
        let long = long.clone();
        let body = move |i: usize| {
            (i < count).then(|| {
                let t = text(i);
                ask(&if templated { format!("{long}\n\nTicket: {t}") } else { t })
            })
        };
        let run = closed_loop(&client, &[url.as_str()], 1, 120, body).await;
        out.push(run.summary(&format!("{label}: {name}"), want));
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut results = Vec::new();
    if let Some(base) = &args.baseline {
        results.extend(measure("baseline", base, &repo, args.count, None).await?);
    }
    for model in &args.models {
        results.extend(measure(&format!("current, {model}"), &args.deja, &repo, args.count, Some(model)).await?);
    }
    use std::io::Write;
    std::io::stdout().write_all(table(&results).as_bytes())?;
    Ok(())
}
