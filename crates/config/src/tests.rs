use super::*;

const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:0"
[[providers]]
name = "p"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "a"
provider = "p"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
context_window = 1000
[[ladders]]
name = "auto"
rungs = ["a"]
"#;

fn error_path(text: &str) -> String {
    match Config::parse(text) {
        Err(ConfigError::Invalid { path, .. }) => path,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert_eq!(c.cache.default_ttl, Duration::from_secs(86_400));
    assert_eq!(c.catalog.models[0].upstream_name, "a");
    assert!(c.cache.semantic.guards.numbers);
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let text = MINIMAL.replace("[server]", "[server]\nlisten_port = 1");
    assert!(error_path(&text).starts_with("server"), "{}", error_path(&text));
    let text = format!("{MINIMAL}\n[cache.semantic]\nthreshhold = 0.9\n");
    assert!(error_path(&text).contains("cache.semantic"), "{}", error_path(&text));
}

#[test]
fn bad_values_name_the_field() {
    let text = format!("{MINIMAL}\n[cache.semantic]\nthreshold = 1.5\n");
    assert_eq!(error_path(&text), "cache.semantic.threshold");
    let text = format!("{MINIMAL}\n[cache]\ndefault_ttl = \"ten minutes\"\n");
    assert_eq!(error_path(&text), "cache.default_ttl");
    let text = MINIMAL.replace("rungs = [\"a\"]", "rungs = [\"ghost\"]");
    assert_eq!(error_path(&text), "ladders.auto.rungs");
    let text = MINIMAL.replace("provider = \"p\"", "provider = \"nope\"");
    assert_eq!(error_path(&text), "models[0].provider");
    let text = MINIMAL.replace("input_usd_per_mtok = 1.0", "input_usd_per_mtok = \"cheap\"");
    assert!(error_path(&text).contains("input_usd_per_mtok"));
}

#[test]
fn cache_prices_default_to_the_input_price() {
    let c = Config::parse(MINIMAL).expect("valid");
    let m = &c.catalog.models[0];
    assert_eq!((m.cached_input_usd_per_mtok, m.cache_write_usd_per_mtok), (1.0, 1.0));
    let text = MINIMAL
        .replace("input_usd_per_mtok = 1.0", "input_usd_per_mtok = 3.0\ncached_input_usd_per_mtok = 0.3")
        .replace("output_usd_per_mtok = 2.0", "output_usd_per_mtok = 15.0\ncache_write_usd_per_mtok = 3.75");
    let c = Config::parse(&text).expect("valid");
    let m = &c.catalog.models[0];
    assert_eq!((m.input_usd_per_mtok, m.cached_input_usd_per_mtok, m.cache_write_usd_per_mtok), (3.0, 0.3, 3.75));
    // Free cache reads are a price like any other.
    let text = MINIMAL.replace("input_usd_per_mtok = 1.0", "input_usd_per_mtok = 1.0\ncached_input_usd_per_mtok = 0.0");
    assert_eq!(Config::parse(&text).expect("valid").catalog.models[0].cached_input_usd_per_mtok, 0.0);
}

#[test]
fn bad_cache_prices_name_the_field() {
    for field in ["cached_input_usd_per_mtok", "cache_write_usd_per_mtok"] {
        for bad in ["-0.1", "nan", "inf", "-inf"] {
            let text =
                MINIMAL.replace("input_usd_per_mtok = 1.0", &format!("input_usd_per_mtok = 1.0\n{field} = {bad}"));
            assert_eq!(error_path(&text), format!("models[0].{field}"), "{field} = {bad}");
        }
        let text =
            MINIMAL.replace("input_usd_per_mtok = 1.0", &format!("input_usd_per_mtok = 1.0\n{field} = \"cheap\""));
        assert!(error_path(&text).contains(field), "{}", error_path(&text));
    }
    // An unset cache price inherits the input price, and its checks: the input price is named.
    let text = MINIMAL.replace("input_usd_per_mtok = 1.0", "input_usd_per_mtok = -1.0");
    assert_eq!(error_path(&text), "models[0].input_usd_per_mtok");
}

#[test]
fn shipped_configs_are_valid() {
    for file in ["deja.toml", "demo.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config").join(file);
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(c.catalog.resolve("auto").is_some(), "{file} has the auto ladder");
        assert_eq!(c.catalog.models.len(), 5, "{file} has the five-model price table");
    }
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
    assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("800ms"), Ok(Duration::from_millis(800)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    for bad in ["soon", "", "5 parsecs", "-3s", "1.2.3"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn edge_limits_have_defaults_and_rate_limits_are_off() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert_eq!(c.limits.max_connections, 1024);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.request_timeout, Duration::from_secs(600));
    assert!(c.rate_limit(None).is_unlimited());
    assert!(c.rate_limit(Some("anyone")).is_unlimited());
}

#[test]
fn a_key_override_inherits_what_it_does_not_set() {
    let var = format!("DEJA_CONFIG_TEST_RATE_KEY_{}", std::process::id());
    std::env::set_var(&var, "sk-batch");
    let text = format!(
        "{MINIMAL}\n[limits.rate]\nrequests_per_minute = 60\ntokens_per_minute = 1000\n\
         [[limits.rate.keys]]\nkey_env = \"{var}\"\ntokens_per_minute = 0\n"
    );
    let c = Config::parse(&text).expect("valid");
    let batch = c.rate_limit(Some("sk-batch"));
    assert_eq!(batch.requests_per_minute.map(|n| n.get()), Some(60));
    assert_eq!(batch.tokens_per_minute, None, "0 means unlimited for this key");
    let other = c.rate_limit(Some("sk-other"));
    assert_eq!(other.tokens_per_minute.map(|n| n.get()), Some(1000));
    let text = text.replace(&var, "DEJA_CONFIG_TEST_UNSET_VARIABLE");
    assert_eq!(error_path(&text), "limits.rate.keys[0].key_env");
}

#[test]
fn log_format_defaults_to_text_and_names_its_field_when_wrong() {
    assert_eq!(Config::parse(MINIMAL).expect("valid").server.log_format, LogFormat::Text);
    let json = MINIMAL.replace("[server]", "[server]\nlog_format = \"json\"");
    assert_eq!(Config::parse(&json).expect("valid").server.log_format, LogFormat::Json);
    let wrong = MINIMAL.replace("[server]", "[server]\nlog_format = \"xml\"");
    assert_eq!(error_path(&wrong), "server.log_format");
}

#[test]
fn the_verifier_is_off_by_default_and_verify_from_defaults_below_the_threshold() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert!(c.cache.verifier.is_none());
    assert!((c.cache.semantic.verify_from - 0.80).abs() < 1e-6);
    let text = format!("{MINIMAL}\n[cache.semantic.verifier]\nmodel = \"auto\"\n");
    let v = Config::parse(&text).expect("valid").cache.verifier.expect("verifier on");
    assert_eq!((v.model.as_str(), v.max_candidates, v.timeout), ("auto", 3, Duration::from_secs(2)));
    assert!(v.prompt.contains("none"));
    assert!(c.cache.conversations.is_none(), "conversations are off by default");
    let text = format!("{text}\n[cache.semantic.conversations]\n");
    let on = Config::parse(&text).expect("valid").cache.conversations.expect("conversations on");
    assert!((on.history_min - 0.5).abs() < 1e-6);
}

#[test]
fn the_threshold_and_band_default_per_embedding_model_and_higher_with_a_verifier() {
    let verifier = "\n[cache.semantic.verifier]\nmodel = \"auto\"\n";
    for (embedding, with_verifier, want) in [
        ("", false, (0.94, 0.80)),
        ("", true, (0.985, 0.75)),
        ("[embedding]\nmodel = \"minilm\"\n", true, (0.985, 0.75)),
        ("[embedding]\nmodel = \"gemma\"\n", false, (0.965, 0.85)),
        ("[embedding]\nmodel = \"EmbeddingGemma-300M\"\n", true, (0.98, 0.85)),
        ("[embedding]\nbackend = \"gemma\"\n", false, (0.965, 0.85)),
    ] {
        let text = format!("{MINIMAL}\n{embedding}{}", if with_verifier { verifier } else { "" });
        let s = Config::parse(&text).expect("valid").cache.semantic;
        assert!((s.threshold - want.0).abs() < 1e-6 && (s.verify_from - want.1).abs() < 1e-6, "{text}: {s:?}");
    }
    // What the configuration sets wins; a band default above it is clipped to it.
    let text = format!("{MINIMAL}\n[cache.semantic]\nthreshold = 0.70\n{verifier}");
    let s = Config::parse(&text).expect("valid").cache.semantic;
    assert_eq!((s.threshold, s.verify_from), (0.70, 0.70));
    assert_eq!(
        error_path(&format!("{MINIMAL}\n[embedding]\nmodel = \"gemma\"\nbackend = \"minilm\"\n")),
        "embedding.backend"
    );
    assert_eq!(error_path(&format!("{MINIMAL}\n[embedding]\nmodel = \"bert\"\n")), "embedding.model");
    assert_eq!(
        error_path(&format!("{MINIMAL}\n[cache.semantic.verifier]\nmodel = \"a\"\nmode = \"later\"\n")),
        "cache.semantic.verifier.mode"
    );
}

#[test]
fn verifier_settings_are_checked_with_their_path() {
    for (table, path) in [
        ("[cache.semantic]\nverify_from = 1.5\n", "cache.semantic.verify_from"),
        ("[cache.semantic]\nthreshold = 0.9\nverify_from = 0.95\n", "cache.semantic.verify_from"),
        ("[cache.semantic.verifier]\nmodel = \"nope\"\n", "cache.semantic.verifier.model"),
        ("[cache.semantic.verifier]\nmodel = \"a\"\nmax_candidates = 0\n", "cache.semantic.verifier.max_candidates"),
        ("[cache.semantic.verifier]\nmodel = \"a\"\ntimeout = \"soon\"\n", "cache.semantic.verifier.timeout"),
        ("[cache.semantic.conversations]\nhistory_min = 1.5\n", "cache.semantic.conversations.history_min"),
    ] {
        assert_eq!(error_path(&format!("{MINIMAL}\n{table}")), path, "{table}");
    }
}

#[test]
fn the_slo_is_off_by_default_and_its_bounds_are_checked() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert!(!c.cache.slo.enabled());
    assert_eq!(c.cache.slo.min_samples, 30);
    let on = format!("{MINIMAL}\n[cache.semantic.slo]\nsample_rate = 0.01\nmax_false_hit_rate = 0.05\nstep = 0.02\n");
    let c = Config::parse(&on).expect("valid");
    assert!(c.cache.slo.enabled() && (c.cache.slo.step - 0.02).abs() < 1e-6);
    for (field, value) in [("sample_rate", "1.5"), ("max_threshold", "2.0"), ("step", "0.0"), ("min_samples", "0")] {
        let text = format!("{MINIMAL}\n[cache.semantic.slo]\n{field} = {value}\n");
        assert_eq!(error_path(&text), format!("cache.semantic.slo.{field}"));
    }
    let text = format!("{MINIMAL}\n[cache.semantic.slo]\nsample_rat = 0.1\n");
    assert!(error_path(&text).contains("cache.semantic.slo"), "{}", error_path(&text));
}

#[test]
fn routes_are_validated_and_their_errors_name_the_field() {
    let ok = format!("{MINIMAL}[[ladders.routes]]\nexamples = [\"refund my order\"]\nstart_at = \"a\"\n");
    let c = Config::parse(&ok).expect("valid");
    let routes = c.routes.get("auto").expect("routes of auto");
    assert_eq!(routes[0].threshold, DEFAULT_ROUTE_THRESHOLD);
    assert_eq!(routes[0].start_at, "a");
    assert_eq!(routes[0].name, "a", "an unnamed route is called by its rung");
    let second = |table: &str| format!("{ok}[[ladders.routes]]\n{table}\n");
    assert_eq!(error_path(&second("examples = [\"x\"]\nstart_at = \"zzz\"")), "ladders[0].routes[1].start_at");
    assert_eq!(error_path(&second("examples = []\nstart_at = \"a\"")), "ladders[0].routes[1].examples");
    assert_eq!(error_path(&second("examples = [\" \"]\nstart_at = \"a\"")), "ladders[0].routes[1].examples[0]");
    for bad in ["0.0", "1.5", "-0.2", "nan"] {
        let text = second(&format!("examples = [\"x\"]\nstart_at = \"a\"\nthreshold = {bad}"));
        assert_eq!(error_path(&text), "ladders[0].routes[1].threshold", "{bad}");
    }
    assert!(error_path(&second("examples = [\"x\"]\nstart_at = \"a\"\nstart = 1")).contains("ladders"));
    let named = Config::parse(&second("name = \"refunds\"\nexamples = [\"x\"]\nstart_at = \"a\"")).expect("valid");
    assert_eq!(named.routes.get("auto").map(|r| r[1].name.as_str()), Some("refunds"));
    for bad in ["\"\"", "\"none\""] {
        let text = second(&format!("name = {bad}\nexamples = [\"x\"]\nstart_at = \"a\""));
        assert_eq!(error_path(&text), "ladders[0].routes[1].name", "{bad}");
    }
}

const TWO_RUNGS: &str = r#"
[server]
listen = "127.0.0.1:0"
[routing]
first_byte_timeout = "10s"
[[providers]]
name = "p"
base_url = "http://127.0.0.1:1/v1"
[[models]]
name = "a"
provider = "p"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
context_window = 1000
[[models]]
name = "b"
provider = "p"
input_usd_per_mtok = 2.0
output_usd_per_mtok = 4.0
context_window = 1000
[[ladders]]
name = "auto"
rungs = ["a", "b"]
"#;

fn with_ladder_options(options: &str) -> String {
    TWO_RUNGS.replace("rungs = [\"a\", \"b\"]", &format!("rungs = [\"a\", \"b\"]\n{options}"))
}

#[test]
fn ladder_latency_options_default_to_off() {
    let c = Config::parse(TWO_RUNGS).expect("valid");
    assert_eq!(c.catalog.ladders[0].latency, deja_router::LatencyPolicy::default());
    let c = Config::parse(&with_ladder_options("strategy = \"latency\"\nmax_ttfb = \"1.5s\"\nhedge_after = \"800ms\""))
        .expect("valid");
    let latency = c.catalog.ladders[0].latency;
    assert_eq!(latency.strategy, deja_router::Strategy::Latency);
    assert_eq!(latency.max_ttfb, Some(Duration::from_millis(1500)));
    assert_eq!(latency.hedge_after, Some(Duration::from_millis(800)));
}

#[test]
fn bad_ladder_latency_options_name_the_field() {
    for (options, path) in [
        ("strategy = \"fastest\"", "ladders[0].strategy"),
        ("max_ttfb = \"soon\"", "ladders[0].max_ttfb"),
        ("max_ttfb = \"0s\"", "ladders[0].max_ttfb"),
        ("hedge_after = \"0ms\"", "ladders[0].hedge_after"),
        // Never reached: the first attempt times out first.
        ("hedge_after = \"10s\"", "ladders[0].hedge_after"),
        ("hedge = \"1s\"", "ladders[0]"),
    ] {
        let text = with_ladder_options(options);
        assert!(error_path(&text).starts_with(path), "{options}: {}", error_path(&text));
    }
    let one_rung = with_ladder_options("hedge_after = \"1s\"").replace("rungs = [\"a\", \"b\"]", "rungs = [\"a\"]");
    assert_eq!(error_path(&one_rung), "ladders[0].hedge_after");
}

#[test]
fn store_max_bytes_takes_units_or_a_number_and_names_the_field_when_wrong() {
    let with = |v: &str| Config::parse(&format!("{MINIMAL}[store]\nmax_bytes = {v}\n"));
    assert_eq!(with("\"2GiB\"").expect("valid").cache.max_bytes, Some(2 << 30));
    assert_eq!(with("\"500 MB\"").expect("valid").cache.max_bytes, Some(500_000_000));
    assert_eq!(with("4194304").expect("valid").cache.max_bytes, Some(4 << 20));
    assert_eq!(Config::parse(MINIMAL).expect("valid").cache.max_bytes, None);
    for bad in ["\"lots\"", "\"10KB\"", "12"] {
        assert_eq!(error_path(&format!("{MINIMAL}[store]\nmax_bytes = {bad}\n")), "store.max_bytes", "{bad}");
    }
}

#[test]
fn search_breadth_defaults_to_the_index_default_and_is_bounded() {
    assert_eq!(Config::parse(MINIMAL).expect("valid").cache.search_breadth, deja_cache::DEFAULT_SEARCH_BREADTH);
    let with = |v: &str| format!("{MINIMAL}[cache.semantic]\nsearch_breadth = {v}\n");
    assert_eq!(Config::parse(&with("128")).expect("valid").cache.search_breadth, 128);
    assert_eq!(error_path(&with("0")), "cache.semantic.search_breadth");
    assert_eq!(error_path(&with("100000")), "cache.semantic.search_breadth");
}

#[test]
fn durations_past_their_bound_are_errors_not_panics() {
    // All digits past u64::MAX seconds: `Duration::from_secs_f64` would panic.
    for huge in ["18446744073709551616", "99999999999999999999999", "1e400", &"9".repeat(400)] {
        assert!(parse_duration(huge).is_err(), "{huge}");
    }
    assert!(parse_duration("500000000y").is_err(), "would overflow `Instant + Duration` on the request path");
    assert!(parse_duration("11y").is_err());
    assert_eq!(parse_duration("10y"), Ok(MAX_DURATION));
    assert_eq!(parse_duration("315576000"), Ok(MAX_DURATION));
    assert!(parse_duration("315576000.5").is_err());
    assert_eq!(parse_duration_at_most("1d", MAX_TIMEOUT), Ok(MAX_TIMEOUT));
    assert!(parse_duration_at_most("25h", MAX_TIMEOUT).is_err());
}

#[test]
fn overlong_durations_in_the_file_name_their_field() {
    let cases = [
        ("[cache]\ndefault_ttl = \"500000000y\"", "cache.default_ttl"),
        ("[cache]\ndefault_ttl = \"18446744073709551616\"", "cache.default_ttl"),
        ("[cache]\nsweep_interval = \"100y\"", "cache.sweep_interval"),
        ("[routing]\ncooldown = \"500000000y\"", "routing.cooldown"),
        ("[routing]\nfirst_byte_timeout = \"2d\"", "routing.first_byte_timeout"),
        ("[routing]\nattempt_timeout = \"99999999999999999999\"", "routing.attempt_timeout"),
        ("[routing]\nretry_after_cap = \"2h\"", "routing.retry_after_cap"),
        ("[limits]\nrequest_timeout = \"500000000y\"", "limits.request_timeout"),
        ("[limits]\nheader_read_timeout = \"2d\"", "limits.header_read_timeout"),
        ("[limits]\nbody_read_timeout = \"2d\"", "limits.body_read_timeout"),
        ("[cache.semantic.verifier]\nmodel = \"a\"\ntimeout = \"2d\"", "cache.semantic.verifier.timeout"),
    ];
    for (table, path) in cases {
        assert_eq!(error_path(&format!("{MINIMAL}\n{table}\n")), path, "{table}");
    }
    let text = MINIMAL.replace("rungs = [\"a\"]", "rungs = [\"a\"]\nmax_ttfb = \"500000000y\"");
    assert_eq!(error_path(&text), "ladders[0].max_ttfb");
    // The bounds themselves are accepted.
    let text = format!(
        "{MINIMAL}\n[cache]\ndefault_ttl = \"10y\"\n[routing]\nattempt_timeout = \"24h\"\nretry_after_cap = \"1h\"\n"
    );
    let c = Config::parse(&text).expect("valid");
    assert_eq!(c.cache.default_ttl, MAX_DURATION);
    assert_eq!(c.routing.retry_after_cap, deja_upstream::MAX_RETRY_AFTER);
}

#[test]
fn missing_keys_name_the_provider_and_its_models_but_not_a_keyless_provider() {
    let set = format!("DEJA_CONFIG_TEST_SET_KEY_{}", std::process::id());
    std::env::set_var(&set, "sk-present");
    let text = format!(
        "{MINIMAL}\n[[providers]]\nname = \"keyed\"\nbase_url = \"http://127.0.0.1:2/v1\"\napi_key_env = \"{set}\"\n\
         [[providers]]\nname = \"unset\"\nbase_url = \"http://127.0.0.1:3/v1\"\n\
         api_key_env = \"DEJA_CONFIG_TEST_UNSET_PROVIDER_KEY\"\n\
         [[providers]]\nname = \"idle\"\nbase_url = \"http://127.0.0.1:4/v1\"\n\
         api_key_env = \"DEJA_CONFIG_TEST_UNSET_PROVIDER_KEY\"\n\
         [[models]]\nname = \"b\"\nprovider = \"unset\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 1.0\n\
         context_window = 1000\n\
         [[models]]\nname = \"c\"\nprovider = \"keyed\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 1.0\n\
         context_window = 1000\n\
         [[models]]\nname = \"d\"\nprovider = \"unset\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 1.0\n\
         context_window = 1000\n"
    );
    let c = Config::parse(&text).expect("an unset key is not an invalid file");
    let missing = c.missing_keys();
    assert_eq!(
        missing,
        vec![MissingKey {
            provider: "unset".into(),
            variable: "DEJA_CONFIG_TEST_UNSET_PROVIDER_KEY".into(),
            models: vec!["b".into(), "d".into()],
        }],
        "`p` has no api_key_env (a local server), `keyed` has its key, `idle` serves no model"
    );
    assert!(Config::parse(MINIMAL).expect("valid").missing_keys().is_empty());
}

#[test]
fn metrics_can_need_a_token_and_bound_their_namespaces() {
    let c = Config::parse(MINIMAL).expect("valid");
    assert_eq!((c.server.metrics_namespaces, c.metrics_token()), (100, None));
    let var = "DEJA_CONFIG_TEST_METRICS_TOKEN";
    std::env::set_var(var, "scrape-me");
    let text = MINIMAL.replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:0\"\nmetrics_token_env = \"{var}\"\nmetrics_namespaces = 5"),
    );
    let c = Config::parse(&text).expect("valid");
    assert_eq!((c.server.metrics_namespaces, c.metrics_token()), (5, Some("scrape-me")));
    let text = MINIMAL.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nmetrics_namespaces = 1000000");
    assert_eq!(error_path(&text), "server.metrics_namespaces");
}
