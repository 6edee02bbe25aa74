//! `deja check-config` fails when a provider's `api_key_env` names an unset
//! variable, naming the provider and the models it leaves without a key; a
//! provider with no `api_key_env` (a local server) needs none.

use std::process::Command;

fn check(providers: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deja.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{store}\"\n{providers}\n\
         [[models]]\nname = \"local-model\"\nprovider = \"local\"\ninput_usd_per_mtok = 1.0\n\
         output_usd_per_mtok = 1.0\ncontext_window = 1000\n[[ladders]]\nname = \"auto\"\nrungs = [\"local-model\"]\n",
        store = dir.path().join("store").display()
    );
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_deja"))
        .arg("check-config")
        .arg(&path)
        .env_remove("DEJA_CHECK_CONFIG_TEST_UNSET_KEY")
        .output()
        .expect("deja runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

const LOCAL: &str = "[[providers]]\nname = \"local\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";

#[test]
fn a_provider_without_api_key_env_passes() {
    let (ok, out, err) = check(LOCAL);
    assert!(ok, "{err}");
    assert!(out.contains(": valid\n"), "{out}");
}

#[test]
fn an_unset_key_variable_fails_naming_the_provider_and_its_models() {
    let remote = "[[providers]]\nname = \"remote\"\nbase_url = \"https://api.example.com/v1\"\n\
                  api_key_env = \"DEJA_CHECK_CONFIG_TEST_UNSET_KEY\"\n\
                  [[models]]\nname = \"remote-big\"\nprovider = \"remote\"\ninput_usd_per_mtok = 1.0\n\
                  output_usd_per_mtok = 1.0\ncontext_window = 1000\n\
                  [[models]]\nname = \"remote-small\"\nprovider = \"remote\"\ninput_usd_per_mtok = 1.0\n\
                  output_usd_per_mtok = 1.0\ncontext_window = 1000\n";
    let (ok, out, err) = check(&format!("{LOCAL}{remote}"));
    assert!(!ok, "an unset key must fail the check:\n{out}\n{err}");
    assert!(err.contains("provider `remote`"), "{err}");
    assert!(err.contains("$DEJA_CHECK_CONFIG_TEST_UNSET_KEY"), "{err}");
    assert!(err.contains("models affected: remote-big, remote-small"), "{err}");
    assert!(!err.contains("`local`"), "a provider without api_key_env needs no key: {err}");
    assert!(out.contains("UNSET"), "the report is still printed: {out}");
}
