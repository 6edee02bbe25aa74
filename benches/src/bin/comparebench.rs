//! What deciding a semantic match on what differs costs: misses and
//! semantic hits, bare and behind a long instruction (the classification
//! template of `tests/data/templates/instructions.json`), one client at a
//! time, for each `deja` binary given (a baseline build and the current one),
//! in the same run.
//!
//! Usage: cargo run --release -p deja-benches --bin comparebench -- \
//!     --deja target/release/deja --baseline /path/to/older/deja --count 300

use clap::Parser;
use deja_benches::load::{closed_loop, free_port, http_client, send, table, Procs, Summary};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// Starts the simulated upstream and the gateway from `deja`; they stop when dropped.
async fn start(deja: &Path, repo: &Path, dir: &Path) -> Result<(Procs, String), Box<dyn std::error::Error>> {
    let (mock_port, proxy_port) = (free_port(), free_port());
    let config = std::fs::read_to_string(repo.join("config/demo.toml"))?
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{mock_port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{proxy_port}"))
        .replace("data/demo.sled", &dir.join("store").display().to_string())
        .replace("model_dir = \"models\"", &format!("model_dir = \"{}\"", repo.join("models").display()));
    let config_path = dir.join("deja.toml");
    std::fs::write(&config_path, config)?;
    let mut procs = Procs(Vec::new());
    let mut mock = Command::new(deja);
    mock.args(["mock-upstream", "--listen", &format!("127.0.0.1:{mock_port}")]).stderr(Stdio::null());
    procs.0.push(mock.spawn()?);
    let mut serve = Command::new(deja);
    serve.args(["serve", "--config"]).arg(&config_path).env("RUST_LOG", "warn").stderr(Stdio::null());
    procs.0.push(serve.spawn()?);
    let url = format!("http://127.0.0.1:{proxy_port}/v1/chat/completions");
    let client = http_client();
    for _ in 0..300 {
        let up = send(&client, &url, ask("warm-up"), &[("cache-control", "no-store")]).await;
        if up.is_some_and(|(s, _)| s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((procs, url))
}

/// One binary: misses then paraphrase hits, bare and templated.
async fn measure(
    label: &str,
    deja: &Path,
    repo: &Path,
    count: usize,
) -> Result<Vec<Summary>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (_procs, url) = start(deja, repo, dir.path()).await?;
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
        results.extend(measure("baseline", base, &repo, args.count).await?);
    }
    results.extend(measure("current", &args.deja, &repo, args.count).await?);
    use std::io::Write;
    std::io::stdout().write_all(table(&results).as_bytes())?;
    Ok(())
}
