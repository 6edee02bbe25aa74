//! The `deja` binary. See `deja --help`.

// A panic on the request path drops the client's connection: these crates
// may not index, slice strings, `expect` or `panic!` outside tests.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic, clippy::string_slice))]

use clap::Parser;
use deja::cli::{CacheAction, CacheArgs, Cli, Command, EvalArgs};
use deja::config::{Config, LogFormat};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

mod admin_client;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` takes its log format from the config file, so it is read
    // before logging starts; its errors are reported below like any other.
    let loaded = match &cli.command {
        Command::Serve { config } => Some(Config::load(config)),
        _ => None,
    };
    let format = match &loaded {
        Some(Ok(config)) => config.server.log_format,
        _ => LogFormat::Text,
    };
    init_logging(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("deja: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => match loaded {
                Some(Ok(loaded)) => serve(&config, loaded).await,
                Some(Err(e)) => Err(e.into()),
                None => Err("the configuration was not read".into()),
            },
            Command::CheckConfig { path } => check_config(&path),
            Command::Eval(args) => eval(args).await,
            Command::MockUpstream { listen } => mock_upstream(&listen).await,
            Command::Cache(args) => cache(args).await,
            Command::Reembed { config } => reembed(&config),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deja: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Log lines go to stderr, at the level `RUST_LOG` sets (default info).
/// Colour only when stderr is a terminal and `NO_COLOR` is unset, so files
/// and log shippers never see escape codes.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder.with_ansi(colour).init();
        }
        LogFormat::Json => {
            builder.json().flatten_event(true).with_current_span(false).with_span_list(false).with_ansi(false).init()
        }
    }
}

async fn serve(path: &std::path::Path, config: Config) -> Result<(), AnyError> {
    if config.admin_token().is_none() {
        tracing::info!(variable = ?config.server.admin_token_env, "admin API disabled: its token variable is unset");
    }
    for m in config.missing_keys() {
        tracing::warn!(
            provider = %m.provider,
            variable = %m.variable,
            models = %m.models.join(", "),
            "NO API KEY: the variable is unset or empty; requests for these models fall through to other rungs or fail"
        );
    }
    let mut running = deja::start(config, None).await?;
    tracing::info!(addr = %running.addr, admin = ?running.admin_addr, config = %path.display(), "deja listening");
    let state = running.state.clone();
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                // Reading the file and embedding route examples: off the workers.
                let st = state.clone();
                let _ = tokio::task::spawn_blocking(move || deja::reload(&st)).await;
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    running.trigger_shutdown();
    running.wait().await;
    Ok(())
}

/// Re-embeds the configured store, reporting progress on stderr.
fn reembed(path: &std::path::Path) -> Result<(), AnyError> {
    let config = Config::load(path)?;
    let mut last_report = std::time::Instant::now();
    let done = deja::reembed::reembed(&config, |done, total| {
        if last_report.elapsed() >= std::time::Duration::from_secs(5) || done == total {
            eprintln!("re-embedded {done} of {total} entries");
            last_report = std::time::Instant::now();
        }
    })?;
    write_stdout(&format!(
        "re-embedded {} entries ({} conversation histories) with {} (was {}){}\n",
        done.entries,
        done.histories,
        done.to,
        done.from.as_deref().unwrap_or("unrecorded"),
        if done.skipped > 0 { format!("; {} unreadable entries left alone", done.skipped) } else { String::new() }
    ));
    Ok(())
}

/// Prints what `path` configures; fails if it is invalid or a provider's key
/// variable is unset (see [`missing_keys_error`]).
fn check_config(path: &std::path::Path) -> Result<(), AnyError> {
    let c = Config::load(path)?;
    let missing = c.missing_keys();
    let verdict = if missing.is_empty() { "valid" } else { "valid, but providers lack their API keys" };
    let mut out = format!("{}: {verdict}\n\nmodels (USD per million tokens):\n", path.display());
    out.push_str(&format!(
        "  {:<20} {:<10} {:>8} {:>8} {:>9}  {}\n",
        "name", "provider", "input", "output", "context", "key"
    ));
    for m in &c.catalog.models {
        let key = match c.providers.get(&m.provider).and_then(|p| p.api_key_env.clone()) {
            Some(var) if c.api_key(&m.provider).is_some() => format!("${var} set"),
            Some(var) => format!("${var} UNSET"),
            None => "none needed".into(),
        };
        out.push_str(&format!(
            "  {:<20} {:<10} {:>8.2} {:>8.2} {:>9}  {}\n",
            m.name, m.provider, m.input_usd_per_mtok, m.output_usd_per_mtok, m.context_window, key
        ));
    }
    out.push_str("\nladders:\n");
    for l in &c.catalog.ladders {
        out.push_str(&format!("  {}: {}\n", l.name, l.rungs.join(" -> ")));
        for r in &l.start_rules {
            out.push_str(&format!("    prompts of {}+ tokens start at {}\n", r.min_prompt_tokens, r.rung));
        }
        let mut tasks: Vec<_> = l.tasks.iter().collect();
        tasks.sort();
        for (task, rung) in tasks {
            out.push_str(&format!("    task `{task}` starts at {rung}\n"));
        }
        let latency = &l.latency;
        if latency.strategy == deja_router::Strategy::Latency {
            out.push_str("    strategy = \"latency\": unknown rungs first, then fastest recent p90 first\n");
        }
        if let Some(d) = latency.max_ttfb {
            out.push_str(&format!("    rungs whose recent p90 time to first byte is over {d:?} are skipped\n"));
        }
        if let Some(d) = latency.hedge_after {
            out.push_str(&format!("    an attempt silent for {d:?} is hedged with the next rung\n"));
        }
        for r in c.routes.get(&l.name).into_iter().flatten() {
            let examples: Vec<String> = r.examples.iter().map(|e| format!("{e:?}")).collect();
            out.push_str(&format!(
                "    route `{}` to {} (similarity >= {}): {}\n",
                r.name,
                r.start_at,
                r.threshold,
                examples.join(", ")
            ));
        }
    }
    out.push_str(&format!(
        "\ncache: ttl {:?}, max {} entries; semantic {} (cosine similarity >= {}), guards {:?}\n",
        c.cache.default_ttl,
        c.cache.max_entries,
        if c.cache.semantic_enabled { "on" } else { "off" },
        c.cache.semantic.threshold,
        c.cache.semantic.guards
    ));
    if let Some(max) = c.cache.max_bytes {
        out.push_str(&format!("store: at most {max} bytes of entries and vectors\n"));
    }
    let need = deja::capacity::needs(&c);
    out.push_str(&format!(
        "at these caps: about {:.1} GiB of RAM and {:.1} GiB of disk\n",
        need.ram as f64 / (1u64 << 30) as f64,
        need.disk as f64 / (1u64 << 30) as f64
    ));
    write_stdout(&out);
    for w in deja::capacity::warnings(&c) {
        eprintln!("warning: {w}");
    }
    match missing_keys_error(&missing) {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// One line per provider whose `api_key_env` names an unset or empty
/// variable, with the models it leaves without a key. A provider with no
/// `api_key_env` (a local server) is not listed.
fn missing_keys_error(missing: &[deja::config::MissingKey]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let lines: Vec<String> = missing
        .iter()
        .map(|m| {
            format!(
                "provider `{}` has no API key (${} is unset or empty); models affected: {}",
                m.provider,
                m.variable,
                m.models.join(", ")
            )
        })
        .collect();
    Some(lines.join("\ndeja: "))
}

fn write_stdout(s: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(s.as_bytes());
}

async fn eval(args: EvalArgs) -> Result<(), AnyError> {
    let config = Config::load(&args.config)?;
    let Some(pairs_path) = &args.pairs else {
        return eval_routes(config, &args);
    };
    let labelled = deja::eval::read_labelled(pairs_path, args.limit)?;
    let kinds: Vec<Option<String>> = labelled.iter().map(|p| p.kind.clone()).collect();
    let pairs: Vec<(String, String, bool)> = labelled.into_iter().map(|p| (p.a, p.b, p.same)).collect();
    let mut models = Vec::new();
    for name in &args.model {
        let model = deja::config::parse_embedding_model(name)
            .ok_or_else(|| format!("--model: `{name}` is not one of minilm, gemma"))?;
        models.push((model.label().to_string(), config.clone().with_embedding_model(model)));
    }
    if models.is_empty() {
        models.push(("configured".to_string(), config));
    }
    let side_by_side = models.len() > 1;
    let mut summary = String::from(
        "
side by side (same pairs; each model at its own defaults):
",
    );
    summary.push_str(
        "  model                 AUC    threshold  served   false hits | at most target false hits: threshold  served",
    );
    if args.simulated_judge.is_some() {
        summary.push_str(" | band + simulated judge: served  false hits  calls/1k");
    }
    summary.push('\n');
    for (label, config) in &models {
        let similarities = args.similarities.as_ref().map(|p| {
            if side_by_side {
                p.with_extension(format!("{}.txt", label.to_ascii_lowercase()))
            } else {
                p.clone()
            }
        });
        if side_by_side {
            write_stdout(&format!("\n==== {label} ====\n"));
        }
        let (report, line) = eval_one(config, &args, &pairs, &kinds, similarities.as_deref()).await?;
        write_stdout(&report);
        summary.push_str(&format!("  {label:<20} {line}\n"));
    }
    if side_by_side {
        write_stdout(&summary);
    }
    Ok(())
}

/// One model's evaluation: its report, and its line of the side-by-side summary.
async fn eval_one(
    config: &Config,
    args: &EvalArgs,
    pairs: &[(String, String, bool)],
    kinds: &[Option<String>],
    similarities: Option<&Path>,
) -> Result<(String, String), AnyError> {
    use deja::eval::{self, bands, judge};
    let cached = similarities.and_then(|p| eval::load_similarities(p, pairs.len()));
    let sims = match cached {
        Some(s) => s,
        None => {
            let embedder = eval_embedder(config, args.model_file.as_deref())?;
            eprintln!("embedding {} pairs with {}...", pairs.len(), embedder.name());
            let started = std::time::Instant::now();
            let s = eval::similarities(embedder.as_ref(), pairs, 64)?;
            eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
            if let Some(p) = similarities {
                eval::save_similarities(p, &s)?;
            }
            s
        }
    };
    let scored = eval::score(pairs, &sims);
    let guards = config.guard_settings();
    let threshold = config.cache.semantic.threshold;
    let verify_from = config.cache.semantic.verify_from;
    let mask = eval::mask_of(&guards);
    let settings = bands::grid(&args.band_thresholds, &args.band_verify_from, (threshold, verify_from));
    let verdicts = if args.judge {
        let known = args.verdicts.as_deref().and_then(|p| judge::load_verdicts(p, pairs.len())).unwrap_or_default();
        let which = judge::needing(&scored, mask, bands::grey_range(&settings));
        eprintln!("asking the verifier about up to {} pairs...", which.len());
        let v = judge::judge(config.clone(), pairs, &which, known, args.judge_concurrency).await?;
        if let Some(p) = &args.verdicts {
            judge::save_verdicts(p, &v)?;
        }
        Some(v)
    } else {
        args.simulated_judge.map(|accuracy| judge::simulated(&scored, accuracy))
    };
    let mut report = eval::report(&scored, &guards, threshold, args.target_false_hits);
    report.push_str(&eval::by_kind(&scored, kinds, threshold, mask));
    if let Some(accuracy) = args.simulated_judge {
        report.push_str(&format!("\n(judged columns: a simulated judge right on {:.1}% of pairs)", accuracy * 100.0));
    }
    report.push_str(&bands::report(&scored, mask, &settings, verdicts.as_deref()));
    if let Some(v) = verdicts.as_deref().filter(|_| args.judge) {
        report.push_str(&judge::summary(&scored, v));
    }
    let wrong = pairs.iter().zip(&scored).filter(|(_, s)| !s.same && s.similarity >= threshold && s.passes(mask));
    for ((a, b, _), s) in wrong.take(args.show_false_hits) {
        report.push_str(&format!("  false hit {:.3}: {a} | {b}\n", s.similarity));
    }
    let (served, false_hits) = eval::rates(&scored, threshold, mask);
    let (t_target, served_target, _) = eval::threshold_for(&scored, args.target_false_hits, mask);
    let mut line = format!(
        "{:.3}  {threshold:<9.3}  {:>5.1}%  {:>8.2}%  | {:>38.3}  {:>5.1}%",
        eval::auc(&scored),
        served * 100.0,
        false_hits * 100.0,
        t_target,
        served_target * 100.0
    );
    if let Some(v) = verdicts.as_deref().filter(|_| args.simulated_judge.is_some()) {
        let o = bands::outcome(&scored, mask, threshold, verify_from, Some(v));
        let (d, f) = o.served_judged();
        line.push_str(&format!(" | {:>30.1}%  {:>9.2}%  {:>8.1}", d * 100.0, f * 100.0, o.calls_per_1000()));
    }
    Ok((report, line))
}

/// `deja eval --routes`: the ladder's routes on labelled questions, at the
/// configured thresholds, then at one threshold for every route.
fn eval_routes(config: Config, args: &EvalArgs) -> Result<(), AnyError> {
    use deja::eval_routes::{predict, read_labelled, RouteReport};
    let path = args.routes.as_deref().ok_or("--routes names no file")?;
    let ladder = match &args.ladder {
        Some(l) if config.routes.contains_key(l) => l.clone(),
        Some(l) => return Err(format!("ladder `{l}` has no [[ladders.routes]] in {}", args.config.display()).into()),
        None => {
            let mut with: Vec<&String> = config.routes.keys().collect();
            with.sort();
            match with.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(format!("no ladder in {} has [[ladders.routes]]", args.config.display()).into()),
                many => {
                    let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                    return Err(
                        format!("several ladders have routes ({}): pick one with --ladder", names.join(", ")).into()
                    );
                }
            }
        }
    };
    let names: Vec<String> = config.routes.get(&ladder).into_iter().flatten().map(|r| r.name.clone()).collect();
    let labelled = read_labelled(path, &names)?;
    let embedder: Arc<dyn deja_embed::Embedder> = deja::state::load_embedder(&config)?;
    eprintln!("embedding {} questions and the routes of `{ladder}` with {}...", labelled.len(), embedder.name());
    let routes = deja_gateway::routes::embed_routes(&config, embedder.as_ref())?.remove(&ladder).unwrap_or_default();
    let texts: Vec<String> = labelled.iter().map(|(t, _)| t.clone()).collect();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        vectors.extend(embedder.embed_batch(chunk)?);
    }
    let expected: Vec<Option<String>> = labelled.iter().map(|(_, r)| r.clone()).collect();
    let predicted = predict(&routes, &names, &vectors, None);
    let mut out = format!("ladder `{ladder}`, {} routes, configured thresholds:\n", names.len());
    out.push_str(&RouteReport::new(&names, &expected, &predicted).render());
    out.push_str("\none threshold for every route:\n  threshold  accuracy  no route  wrong route\n");
    for step in 0..=10 {
        let t = 0.30 + step as f32 * 0.05;
        let r = RouteReport::new(&names, &expected, &predict(&routes, &names, &vectors, Some(t)));
        out.push_str(&format!(
            "  {t:>9.2}  {:>7.1}%  {:>8}  {:>11}\n",
            r.accuracy() * 100.0,
            r.unrouted(),
            r.misrouted()
        ));
    }
    let misses = labelled.iter().zip(&predicted).filter(|((_, e), p)| e != *p).take(args.show_misses);
    for ((text, e), p) in misses {
        let name = |r: &Option<String>| r.clone().unwrap_or_else(|| deja::config::NO_ROUTE.to_string());
        out.push_str(&format!("  labelled {}, chosen {}: {text}\n", name(e), name(p)));
    }
    write_stdout(&out);
    Ok(())
}

/// The configured embedder, or the same model from another ONNX file.
fn eval_embedder(config: &Config, model_file: Option<&Path>) -> Result<Arc<dyn deja_embed::Embedder>, AnyError> {
    let Some(file) = model_file else {
        return Ok(deja::state::load_embedder(config)?);
    };
    let e = &config.embedding;
    let model = match e.backend {
        deja::config::EmbeddingBackend::Model(m) => m,
        deja::config::EmbeddingBackend::Hash => return Err("--model-file needs a sentence model, not `hash`".into()),
    };
    let mut paths = deja_embed::ModelPaths::of(model, &e.model_dir).with_onnx_file(file.to_path_buf());
    if let Some(lib) = &e.ort_library {
        paths.ort_library = Some(lib.clone());
    }
    Ok(Arc::new(deja_embed::FastEmbedder::load(&paths, e.threads)?))
}

async fn mock_upstream(listen: &str) -> Result<(), AnyError> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "SIMULATED upstream listening (canned answers, not a language model)");
    deja_mock_upstream::serve(listener, deja_mock_upstream::MockControl::default()).await;
    Ok(())
}

async fn cache(args: CacheArgs) -> Result<(), AnyError> {
    let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err("no admin token: set DEJA_ADMIN_TOKEN (or pass --token)".into());
    };
    let client = admin_client::AdminClient::new(&args.url, token);
    let json = args.json;
    let value = match &args.action {
        CacheAction::Stats => client.get("/admin/stats").await?,
        CacheAction::Ls { limit, namespace, model, cursor } => {
            let mut q = vec![format!("limit={limit}")];
            q.extend(namespace.as_ref().map(|n| format!("namespace={}", admin_client::encode(n))));
            q.extend(model.as_ref().map(|m| format!("model={}", admin_client::encode(m))));
            q.extend(cursor.as_ref().map(|c| format!("cursor={c}")));
            client.get(&format!("/admin/cache?{}", q.join("&"))).await?
        }
        CacheAction::Show { id } => client.get(&format!("/admin/cache/{}", admin_client::encode(id))).await?,
        CacheAction::Rm { id } => {
            client.delete(&format!("/admin/cache/{}", admin_client::encode(id))).await?;
            serde_json::json!({"deleted": id})
        }
        CacheAction::Purge { namespace, model, older_than_s, all, dry_run } => {
            // A dry run lists the first entries that would go, as `ls` does.
            let list = if *dry_run { admin_client::DRY_RUN_LISTED } else { 0 };
            let body = serde_json::json!({
                "namespace": namespace, "model": model, "older_than_s": older_than_s, "all": all,
                "dry_run": dry_run, "list": list,
            });
            client.post("/admin/cache/purge", &body).await?
        }
        CacheAction::Search { prompt, namespace, model, k } => {
            let body = serde_json::json!({"prompt": prompt, "namespace": namespace, "model": model, "k": k});
            client.post("/admin/cache/search", &body).await?
        }
        CacheAction::Reload => client.post("/admin/reload", &serde_json::json!({})).await?,
    };
    let text = if json {
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    } else {
        admin_client::render(&args.action, &value)
    };
    write_stdout(&text);
    Ok(())
}
