//! `deja check-config`'s warning when the configured caps cannot fit the
//! machine: the semantic index lives in RAM, the store on disk, and both
//! grow to what `max_entries` and `max_bytes` allow.

use deja_gateway::config::Config;
use std::path::Path;

/// Memory of one indexed entry: its `i8` vector, graph links and ids, as
/// `SemanticIndex::stats` estimates it.
const INDEX_BYTES_PER_ENTRY: u64 = 384 + 2 * 16 * 24 + 96 + 88;
/// Memory the store takes per entry: sled's page table and cache grow with
/// its files (measured with `bigstore`: 3.7 GB of RSS at 1M entries, of
/// which about 1.2 GB was the index).
const STORE_RAM_PER_ENTRY: u64 = 2_400;
/// The embedding model and the runtime's own memory (265 MiB at 10k entries).
const FIXED_RAM: u64 = 256 << 20;
/// A typical FAQ entry as stored: the request, the answer and the vector.
const STORED_BYTES_PER_ENTRY: u64 = 2_400;
/// sled's files hold about three times the data they store (measured:
/// 661 MiB of files for 100k entries of 2.3 KB), and the saved graphs
/// about 2.2 KiB per entry more.
const DISK_FACTOR: u64 = 3;
const GRAPH_BYTES_PER_ENTRY: u64 = 2_300;

/// What the caps need, against what the machine has.
pub struct Needs {
    pub ram: u64,
    pub disk: u64,
}

pub fn needs(config: &Config) -> Needs {
    let cache = &config.cache;
    let stored = cache.max_bytes.unwrap_or(u64::MAX).min(cache.max_entries.saturating_mul(STORED_BYTES_PER_ENTRY));
    let entries = cache.max_entries.min(stored / STORED_BYTES_PER_ENTRY.max(1));
    let indexed = if cache.semantic_enabled { entries } else { 0 };
    Needs {
        ram: FIXED_RAM
            .saturating_add(entries.saturating_mul(STORE_RAM_PER_ENTRY))
            .saturating_add(indexed.saturating_mul(INDEX_BYTES_PER_ENTRY)),
        disk: stored.saturating_mul(DISK_FACTOR).saturating_add(indexed.saturating_mul(GRAPH_BYTES_PER_ENTRY)),
    }
}

/// Warnings for caps this machine cannot hold, each naming the fields to change.
pub fn warnings(config: &Config) -> Vec<String> {
    let need = needs(config);
    let mut out = Vec::new();
    if let Some(total) = total_ram() {
        if need.ram > total / 10 * 8 {
            out.push(format!(
                "cache.max_entries = {} may need about {} of RAM (the store's cache and the semantic index), over \
                 80% of this machine's {}: lower cache.max_entries or store.max_bytes",
                config.cache.max_entries,
                gib(need.ram),
                gib(total)
            ));
        }
    }
    if let Some(free) = disk_room(&config.store_path) {
        if need.disk > free {
            out.push(format!(
                "the store at {} may grow to about {} on disk, more than the {} there is room for: set or lower \
                 store.max_bytes",
                config.store_path.display(),
                gib(need.disk),
                gib(free)
            ));
        }
    }
    out
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `MemTotal` from /proc/meminfo.
fn total_ram() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Free space where the store lives (or would be created), plus what the
/// store already holds there, since that is room it keeps using.
fn disk_room(store: &Path) -> Option<u64> {
    let existing = store.ancestors().find(|p| p.exists())?;
    let existing = if existing.as_os_str().is_empty() { Path::new(".") } else { existing };
    let free = fs2::available_space(existing).ok()?;
    Some(free.saturating_add(dir_bytes(store)))
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[providers]]\nname = \"p\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\n\
             provider = \"p\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 1.0\ncontext_window = 1000\n\
             [[ladders]]\nname = \"auto\"\nrungs = [\"m\"]\n{extra}"
        );
        Config::parse(&text).unwrap_or_else(|e| panic!("config: {e}"))
    }

    #[test]
    fn a_billion_entries_do_not_fit_and_a_byte_cap_bounds_what_is_needed() {
        let big = config("[cache]\nmax_entries = 1000000000\n");
        let warned = warnings(&big);
        assert!(warned.iter().any(|w| w.contains("cache.max_entries")), "{warned:?}");
        let capped = config("[store]\nmax_bytes = \"100MiB\"\n[cache]\nmax_entries = 1000000000\n");
        let need = needs(&capped);
        assert!(need.ram < 1 << 30, "{} bytes of RAM for 100 MiB of entries", need.ram);
        assert!(need.disk < 1 << 30, "{} bytes of disk for 100 MiB of entries", need.disk);
    }

    #[test]
    fn the_shipped_caps_fit_a_machine_with_eight_gigabytes() {
        // 1M entries: measured at 3.7 GB of RSS.
        let need = needs(&config(""));
        assert!(need.ram > 3 << 30 && need.ram < 5 << 30, "{}", need.ram);
    }
}
