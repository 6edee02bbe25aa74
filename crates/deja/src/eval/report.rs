//! The threshold curve, with and without the guards, and the served rates
//! per kind of pair at the configured threshold.

use super::{mask_of, rates, threshold_for, Scored, GUARD_NAMES};
use deja_cache::GuardSettings;
use std::fmt::Write;

/// The human-readable report `deja eval` prints.
pub fn report(scored: &[Scored], guards: &GuardSettings, configured_threshold: f32, target: f64) -> String {
    let mask = mask_of(guards);
    let none = [false; 4];
    let dups = scored.iter().filter(|s| s.same).count();
    let mut out = String::new();
    let _ = writeln!(out, "pairs: {} ({} duplicates, {} non-duplicates)", scored.len(), dups, scored.len() - dups);
    let _ = writeln!(out, "\ncosine >=  | threshold alone        | with guards ({})", enabled_names(mask));
    let _ = writeln!(out, "            | dups served  false hits | dups served  false hits");
    for i in 0..=20 {
        let t = 0.80 + i as f32 * 0.01;
        let (r0, f0) = rates(scored, t, none);
        let (r1, f1) = rates(scored, t, mask);
        let _ = writeln!(
            out,
            "  {t:.2}      | {:>9.1}%  {:>9.2}% | {:>9.1}%  {:>9.2}%",
            r0 * 100.0,
            f0 * 100.0,
            r1 * 100.0,
            f1 * 100.0
        );
    }
    let (t0, r0, f0) = threshold_for(scored, target, none);
    let (t1, r1, f1) = threshold_for(scored, target, mask);
    let _ = writeln!(out, "\nfor at most {:.1}% false hits:", target * 100.0);
    let _ = writeln!(
        out,
        "  threshold alone: threshold {t0:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        r0 * 100.0,
        f0 * 100.0
    );
    let _ = writeln!(
        out,
        "  with guards:     threshold {t1:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        r1 * 100.0,
        f1 * 100.0
    );
    let (rc, fc) = rates(scored, configured_threshold, mask);
    let _ = writeln!(
        out,
        "  configured:      threshold {configured_threshold:.3} serves {:.1}% of duplicates ({:.2}% false hits)",
        rc * 100.0,
        fc * 100.0
    );
    let _ = writeln!(out, "\neach guard alone at threshold {configured_threshold:.3}:");
    for (g, name) in GUARD_NAMES.iter().enumerate() {
        let mut m = none;
        if let Some(on) = m.get_mut(g) {
            *on = true;
        }
        let (r, f) = rates(scored, configured_threshold, m);
        let _ = writeln!(out, "  {name:<14} dups served {:>5.1}%  false hits {:>5.2}%", r * 100.0, f * 100.0);
    }
    let (r, f) = rates(scored, configured_threshold, none);
    let _ = writeln!(out, "  {:<14} dups served {:>5.1}%  false hits {:>5.2}%", "(no guard)", r * 100.0, f * 100.0);
    out
}

fn enabled_names(mask: [bool; 4]) -> String {
    let names: Vec<&str> = GUARD_NAMES.iter().zip(mask).filter(|(_, m)| *m).map(|(n, _)| *n).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Pairs served per kind at `threshold`, threshold alone and with the guards
/// in `mask`: for a paraphrase a higher share is better, for a trap lower.
pub fn by_kind(scored: &[Scored], kinds: &[Option<String>], threshold: f32, mask: [bool; 4]) -> String {
    let mut names: Vec<&str> = kinds.iter().flatten().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return String::new();
    }
    let mut out = format!("\nserved per kind at threshold {threshold:.3} (a = cached, b = new request):\n");
    let _ = writeln!(out, "  kind          pairs  threshold alone  with guards");
    for name in names {
        let rows: Vec<&Scored> =
            scored.iter().zip(kinds).filter(|(_, k)| k.as_deref() == Some(name)).map(|(s, _)| s).collect();
        let alone = rows.iter().filter(|s| s.similarity >= threshold).count();
        let guarded = rows.iter().filter(|s| s.similarity >= threshold && s.passes(mask)).count();
        let pct = |n: usize| n as f64 * 100.0 / rows.len().max(1) as f64;
        let _ = writeln!(
            out,
            "  {name:<12} {:>6}  {:>5} ({:>5.1}%)  {:>4} ({:>5.1}%)",
            rows.len(),
            alone,
            pct(alone),
            guarded,
            pct(guarded)
        );
    }
    out
}
