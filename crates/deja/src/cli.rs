//! The `deja` command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "deja",
    version,
    about = "Deja: an OpenAI-compatible LLM gateway that answers repeated and paraphrased requests from its cache and routes the rest through a ladder of models, cheapest first."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "DEJA_CONFIG", default_value = "config/deja.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file and print the resolved ladders and prices.
    CheckConfig {
        /// Configuration file.
        #[arg(env = "DEJA_CONFIG", default_value = "config/deja.toml")]
        path: PathBuf,
    },
    /// Measure the semantic cache on labelled question pairs (`--pairs`):
    /// duplicates served and false hits across thresholds, with and without
    /// the guards, per kind of pair, and the three bands (served, verified,
    /// missed) with what the verifier costs; `--judge` replays pairs through
    /// the configured verifier. Or measure a ladder's semantic routes on
    /// labelled questions (`--routes`): accuracy, precision and recall per
    /// route, the confusion, and how many fall to no route.
    Eval(EvalArgs),
    /// Run the simulated OpenAI-compatible upstream used by the demo and tests.
    MockUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9901")]
        listen: String,
    },
    /// Inspect and manage the cache of a running Deja through its admin API.
    Cache(CacheArgs),
    /// Re-embed a stopped Deja's store with the model its configuration
    /// names (after changing `[embedding] model`): answers, expiry and hit
    /// counts stay; every semantic entry's vector is remade.
    Reembed {
        /// Configuration file.
        #[arg(long, short, env = "DEJA_CONFIG", default_value = "config/deja.toml")]
        config: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// JSONL file of {"a": "...", "b": "...", "same": true|false}; .gz is read as gzip.
    #[arg(long, required_unless_present = "routes", conflicts_with = "routes")]
    pub pairs: Option<PathBuf>,
    /// JSONL file of {"text": "...", "route": "<route name>" | "none"}: the
    /// semantic routes of `--ladder` are evaluated instead of the cache.
    #[arg(long)]
    pub routes: Option<PathBuf>,
    /// The ladder whose routes `--routes` evaluates (default: the only ladder with routes).
    #[arg(long, requires = "routes")]
    pub ladder: Option<String>,
    /// Print questions `--routes` sends somewhere other than their label.
    #[arg(long, default_value_t = 0, requires = "routes")]
    pub show_misses: usize,
    /// Pairs to use, spread evenly over the file (0: all).
    #[arg(long, default_value_t = 20000)]
    pub limit: usize,
    /// The false-hit rate to find a threshold for.
    #[arg(long, default_value_t = 0.02)]
    pub target_false_hits: f64,
    /// File to keep the pairs' similarities in: reused when it matches, so
    /// guard settings can be compared without embedding again.
    #[arg(long)]
    pub similarities: Option<PathBuf>,
    /// Print pairs that would be served wrongly at the configured threshold.
    #[arg(long, default_value_t = 0)]
    pub show_false_hits: usize,
    /// Thresholds on the three-band curve (the configured one is added).
    #[arg(long, value_delimiter = ',', default_value = "0.90,0.92,0.94,0.96")]
    pub band_thresholds: Vec<f32>,
    /// verify_from values on the three-band curve (the configured one is added).
    #[arg(long, value_delimiter = ',', default_value = "0.80,0.85,0.88,0.90,0.92")]
    pub band_verify_from: Vec<f32>,
    /// Replay the pairs some setting on the curve would verify through the
    /// configured `[cache.semantic.verifier]`: real upstream calls, billed.
    #[arg(long)]
    pub judge: bool,
    /// Verifier calls in flight at once with --judge.
    #[arg(long, default_value_t = 4)]
    pub judge_concurrency: usize,
    /// File to keep the verifier's verdicts in: answered pairs are not asked again.
    #[arg(long)]
    pub verdicts: Option<PathBuf>,
    /// Another ONNX file of the same model to embed with instead of
    /// `model_dir/minilm/model.onnx` (same tokenizer), to compare the two.
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// Embedding models to evaluate side by side on the same pairs
    /// (`minilm`, `gemma`; default: the configured one). Each is evaluated
    /// at its own default threshold and band unless only the configured
    /// model is.
    #[arg(long, value_delimiter = ',')]
    pub model: Vec<String>,
    /// Replace the verifier by a simulated judge right on this fraction of
    /// the pairs it is asked about (deterministic per pair): measures a
    /// band's outcome for a verifier of known accuracy without calling one.
    #[arg(long, conflicts_with = "judge")]
    pub simulated_judge: Option<f64>,
    /// Configuration whose embedding model, threshold and guards are evaluated.
    #[arg(long, env = "DEJA_CONFIG", default_value = "config/deja.toml")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    // These options are global: they may be typed before the action
    // (`deja cache --json stats`) or after it (`deja cache stats --json`).
    /// Base URL of the running Deja.
    #[arg(long, env = "DEJA_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub url: String,
    /// Admin token (the value of the variable `server.admin_token_env` names).
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "DEJA_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: CacheAction,
}

const NAMESPACE_FILTER_HELP: &str = "Only entries in this namespace. Either the name a client sends in \
`x-deja-namespace` (`team`), which matches it under every root (`default/team`, and `key-<hash>/team` for each client \
key), or a stored namespace as `ls` shows it (`default`, `default/team`, `key-<hash>/team`), matched exactly.";

const ID_HELP: &str = "The entry's id: its 64 hex characters, or a prefix of at least 8 that no other entry's id \
starts with (`ls` shows 16).";

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// Hit rate, savings, spend, entries.
    Stats,
    /// List entries, newest first: the first 16 hex characters of each id
    /// (enough for `show` and `rm`), the namespace as clients send it and as
    /// it is stored, and a preview of the question on one line (for a long
    /// question of several lines, its last lines: prompts built from one
    /// template differ at the end).
    Ls {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, help = NAMESPACE_FILTER_HELP)]
        namespace: Option<String>,
        /// Only entries asked for or answered by this model or ladder.
        #[arg(long)]
        model: Option<String>,
        /// Continue a listing where the previous page ended.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one entry in full.
    Show {
        #[arg(help = ID_HELP)]
        id: String,
    },
    /// Delete one entry: it is never served again.
    Rm {
        #[arg(help = ID_HELP)]
        id: String,
    },
    /// Delete entries matching a filter (`--all` for everything).
    Purge {
        #[arg(long, help = NAMESPACE_FILTER_HELP)]
        namespace: Option<String>,
        /// Only entries asked for or answered by this model or ladder.
        #[arg(long)]
        model: Option<String>,
        /// Only entries older than this many seconds.
        #[arg(long)]
        older_than_s: Option<u64>,
        /// Every entry: required when no other filter is given.
        #[arg(long)]
        all: bool,
        /// Remove nothing: print how many entries would go, and the first 100 of them.
        #[arg(long)]
        dry_run: bool,
    },
    /// What would this prompt hit? Nearest entries and whether each would be served.
    Search {
        prompt: String,
        /// The stored namespace to search (`default/team`, or `key-<hash>/team`
        /// for a client key: see `deja cache ls`). Default: `default`.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long, default_value_t = 5)]
        k: usize,
    },
    /// Re-read the configuration file of the running Deja.
    Reload,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_args(argv: &[&str]) -> CacheArgs {
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Cache(args)) => args,
            other => panic!("{argv:?} did not parse as `deja cache`: {other:?}"),
        }
    }

    #[test]
    fn cache_options_parse_before_and_after_the_action() {
        let url = "http://10.0.0.1:9000";
        let before = cache_args(&["deja", "cache", "--json", "--url", url, "--token", "t1", "stats"]);
        let after = cache_args(&["deja", "cache", "stats", "--json", "--url", url, "--token", "t1"]);
        let mixed = cache_args(&["deja", "cache", "--url", url, "stats", "--token", "t1", "--json"]);
        for args in [before, after, mixed] {
            assert!(args.json);
            assert_eq!(args.url, url);
            assert_eq!(args.token.as_deref(), Some("t1"));
            assert!(matches!(args.action, CacheAction::Stats));
        }
    }

    #[test]
    fn every_cache_action_takes_the_cache_options_after_it() {
        let actions: [&[&str]; 7] = [
            &["stats"],
            &["ls", "--limit", "3"],
            &["show", "abc"],
            &["rm", "abc"],
            &["purge", "--all", "--dry-run"],
            &["search", "what is rust", "--k", "2"],
            &["reload"],
        ];
        for action in actions {
            let mut argv = vec!["deja", "cache"];
            argv.extend_from_slice(action);
            argv.extend_from_slice(&["--json", "--url", "http://h:1", "--token", "t2"]);
            let args = cache_args(&argv);
            assert!(args.json, "{argv:?}");
            assert_eq!(args.url, "http://h:1", "{argv:?}");
            assert_eq!(args.token.as_deref(), Some("t2"), "{argv:?}");
        }
    }

    #[test]
    fn action_options_still_belong_to_their_action() {
        let args = cache_args(&["deja", "cache", "--url", "http://h:1", "ls", "--limit", "3", "--model", "m"]);
        match args.action {
            CacheAction::Ls { limit, model, .. } => {
                assert_eq!(limit, 3);
                assert_eq!(model.as_deref(), Some("m"));
            }
            other => panic!("expected ls, got {other:?}"),
        }
        assert!(Cli::try_parse_from(["deja", "cache", "--limit", "3", "ls"]).is_err());
    }

    #[test]
    fn purge_takes_dry_run() {
        let args = cache_args(&["deja", "cache", "purge", "--namespace", "team", "--dry-run"]);
        match args.action {
            CacheAction::Purge { namespace, dry_run, all, .. } => {
                assert_eq!(namespace.as_deref(), Some("team"));
                assert!(dry_run);
                assert!(!all);
            }
            other => panic!("expected purge, got {other:?}"),
        }
    }

    #[test]
    fn the_command_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
