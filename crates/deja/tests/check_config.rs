//! `deja check-config`: the RAM and disk the configured caps allow, and a
//! warning when this machine cannot hold them.

use std::process::Command;

fn check(extra: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deja.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{store}\"\n{extra}\n[[providers]]\nname = \"p\"\n\
         base_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"p\"\ninput_usd_per_mtok = 1.0\n\
         output_usd_per_mtok = 1.0\ncontext_window = 1000\n[[ladders]]\nname = \"auto\"\nrungs = [\"m\"]\n",
        store = dir.path().join("store").display()
    );
    std::fs::write(&path, text).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_deja")).arg("check-config").arg(&path).output().expect("deja runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn caps_this_machine_cannot_hold_are_a_warning_naming_the_field() {
    let (ok, out, err) = check("max_bytes = \"1PiB\"\n[cache]\nmax_entries = 100000000000");
    assert!(ok, "a warning is not an invalid file: {err}");
    assert!(out.contains("at these caps: about"), "{out}");
    assert!(err.contains("warning: cache.max_entries = 100000000000"), "{err}");
    assert!(err.contains("store.max_bytes"), "{err}");
}

#[test]
fn a_byte_cap_that_fits_gives_no_warning() {
    let (ok, out, err) = check("max_bytes = \"64MiB\"");
    assert!(ok, "{err}");
    assert!(out.contains("store: at most 67108864 bytes"), "{out}");
    assert!(!err.contains("warning"), "{err}");
}
