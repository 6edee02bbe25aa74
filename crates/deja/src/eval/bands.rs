//! The three bands a semantic lookup falls in: at or above `threshold` it is
//! served, in `[verify_from, threshold)` the verifier is asked (one call per
//! lookup), below `verify_from` it is a miss. Each labelled pair stands for
//! one lookup whose nearest candidate is the pair's other question, so
//! "calls per 1,000 lookups" is per 1,000 such lookups: real traffic, where
//! many lookups find nothing close, asks less often.

use super::judge::Judgement;
use super::Scored;
use std::fmt::Write;

/// One (threshold, verify_from) setting's outcome on the pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    pub dups: usize,
    pub non_dups: usize,
    /// Served without asking (similarity at or above the threshold, guards passing).
    pub direct_dups: usize,
    pub direct_false: usize,
    /// In the grey band with the guards passing: each is one verifier call.
    pub grey_dups: usize,
    pub grey_non_dups: usize,
    /// With recorded verdicts: grey pairs the verifier said yes to.
    pub judged_yes_dups: usize,
    pub judged_yes_non_dups: usize,
    /// Grey pairs with no usable verdict: a failed call (a miss when serving)
    /// or a pair that was never asked.
    pub judged_failed: usize,
    pub unjudged: usize,
    /// What the recorded verdicts in this band cost, in USD.
    pub judged_usd: f64,
}

impl Outcome {
    pub fn lookups(&self) -> usize {
        self.dups + self.non_dups
    }

    pub fn calls_per_1000(&self) -> f64 {
        (self.grey_dups + self.grey_non_dups) as f64 * 1000.0 / self.lookups().max(1) as f64
    }

    /// Duplicates served if the verifier were always right.
    pub fn served_with_perfect_verifier(&self) -> f64 {
        (self.direct_dups + self.grey_dups) as f64 / self.dups.max(1) as f64
    }

    pub fn served_direct(&self) -> f64 {
        self.direct_dups as f64 / self.dups.max(1) as f64
    }

    pub fn false_direct(&self) -> f64 {
        self.direct_false as f64 / self.non_dups.max(1) as f64
    }

    /// (duplicates served, false hits) with the recorded verdicts.
    pub fn served_judged(&self) -> (f64, f64) {
        (
            (self.direct_dups + self.judged_yes_dups) as f64 / self.dups.max(1) as f64,
            (self.direct_false + self.judged_yes_non_dups) as f64 / self.non_dups.max(1) as f64,
        )
    }
}

/// What `threshold` and `verify_from` do to the pairs, with the guards in
/// `mask`; `verdicts` (one per pair) are the verifier's recorded answers.
pub fn outcome(
    scored: &[Scored],
    mask: [bool; 4],
    threshold: f32,
    verify_from: f32,
    verdicts: Option<&[Judgement]>,
) -> Outcome {
    let mut o = Outcome::default();
    for (i, s) in scored.iter().enumerate() {
        if s.same {
            o.dups += 1;
        } else {
            o.non_dups += 1;
        }
        if !s.passes(mask) || s.similarity < verify_from {
            continue;
        }
        if s.similarity >= threshold {
            if s.same {
                o.direct_dups += 1;
            } else {
                o.direct_false += 1;
            }
            continue;
        }
        if s.same {
            o.grey_dups += 1;
        } else {
            o.grey_non_dups += 1;
        }
        match verdicts.and_then(|v| v.get(i)) {
            Some(Judgement::Yes { usd }) => {
                o.judged_usd += usd;
                if s.same {
                    o.judged_yes_dups += 1;
                } else {
                    o.judged_yes_non_dups += 1;
                }
            }
            Some(Judgement::No { usd }) => o.judged_usd += usd,
            Some(Judgement::Failed(_)) => o.judged_failed += 1,
            Some(Judgement::NotAsked) | None => o.unjudged += 1,
        }
    }
    o
}

/// The settings the curve shows: every listed threshold with every lower
/// `verify_from` (and itself: no grey band), plus the configured pair.
pub fn grid(thresholds: &[f32], verify_froms: &[f32], configured: (f32, f32)) -> Vec<(f32, f32)> {
    let mut ts: Vec<f32> = thresholds.iter().copied().chain([configured.0]).collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
    let mut out = Vec::new();
    for t in ts {
        let mut vfs: Vec<f32> = verify_froms.iter().copied().chain([t]).filter(|vf| *vf <= t).collect();
        if (t - configured.0).abs() < 1e-6 {
            vfs.push(configured.1);
        }
        vfs.sort_by(f32::total_cmp);
        vfs.dedup_by(|a, b| (*a - *b).abs() < 1e-6);
        out.extend(vfs.into_iter().map(|vf| (t, vf)));
    }
    out
}

/// The lowest `verify_from` and highest threshold on the grid: the range of
/// similarities a verdict may be needed for.
pub fn grey_range(settings: &[(f32, f32)]) -> (f32, f32) {
    let lo = settings.iter().map(|s| s.1).fold(1.0f32, f32::min);
    let hi = settings.iter().map(|s| s.0).fold(0.0f32, f32::max);
    (lo, hi)
}

/// The three-band table.
pub fn report(scored: &[Scored], mask: [bool; 4], settings: &[(f32, f32)], verdicts: Option<&[Judgement]>) -> String {
    let mut out = String::from(
        "\nthree bands (guards on): served at >= threshold, verifier asked in [verify_from, threshold), missed below\n",
    );
    out.push_str("calls/1k: verifier calls per 1,000 lookups whose nearest candidate is the pair's other question\n");
    out.push_str("  threshold verify_from | served directly      | calls/1k | dups served, perfect verifier");
    if verdicts.is_some() {
        out.push_str(" | judged: dups served  false hits  failed  USD/1k lookups");
    }
    out.push_str("\n                        | dups     false hits  |          |\n");
    for &(t, vf) in settings {
        let o = outcome(scored, mask, t, vf, verdicts);
        let _ = write!(
            out,
            "  {t:<9.3} {vf:<11.3} | {:>5.1}%  {:>8.2}%   | {:>8.1} | {:>10.1}%",
            o.served_direct() * 100.0,
            o.false_direct() * 100.0,
            o.calls_per_1000(),
            o.served_with_perfect_verifier() * 100.0,
        );
        if verdicts.is_some() {
            let (d, f) = o.served_judged();
            let usd_per_1k = o.judged_usd * 1000.0 / o.lookups().max(1) as f64;
            let _ = write!(
                out,
                "                   | {:>10.1}%  {:>9.2}%  {:>6}  {:>8.4}",
                d * 100.0,
                f * 100.0,
                o.judged_failed + o.unjudged,
                usd_per_1k
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(similarity: f32, same: bool) -> Scored {
        Scored { similarity, same, refused: [false; 4] }
    }

    #[test]
    fn each_pair_lands_in_one_band() {
        let scored = [pair(0.97, true), pair(0.95, false), pair(0.90, true), pair(0.85, false), pair(0.70, true)];
        let o = outcome(&scored, [true; 4], 0.94, 0.80, None);
        assert_eq!((o.dups, o.non_dups), (3, 2));
        assert_eq!((o.direct_dups, o.direct_false), (1, 1));
        assert_eq!((o.grey_dups, o.grey_non_dups), (1, 1));
        assert!((o.calls_per_1000() - 400.0).abs() < 1e-9);
        assert!((o.served_with_perfect_verifier() - 2.0 / 3.0).abs() < 1e-9);
        // verify_from = threshold: no grey band, no calls.
        let two = outcome(&scored, [true; 4], 0.94, 0.94, None);
        assert_eq!(two.calls_per_1000(), 0.0);
    }

    #[test]
    fn refused_pairs_are_neither_served_nor_verified() {
        let mut trap = pair(0.97, false);
        trap.refused[1] = true;
        let mut grey = pair(0.90, false);
        grey.refused[1] = true;
        let o = outcome(&[trap, grey], [false, true, false, false], 0.94, 0.80, None);
        assert_eq!((o.direct_false, o.grey_non_dups), (0, 0));
        let off = outcome(&[trap, grey], [false; 4], 0.94, 0.80, None);
        assert_eq!((off.direct_false, off.grey_non_dups), (1, 1));
    }

    #[test]
    fn verdicts_decide_the_grey_band() {
        let scored = [pair(0.90, true), pair(0.88, false), pair(0.86, true), pair(0.84, false)];
        let verdicts = [
            Judgement::Yes { usd: 0.001 },
            Judgement::Yes { usd: 0.001 },
            Judgement::Failed("timeout".into()),
            Judgement::No { usd: 0.001 },
        ];
        let o = outcome(&scored, [true; 4], 0.94, 0.80, Some(&verdicts));
        assert_eq!((o.judged_yes_dups, o.judged_yes_non_dups, o.judged_failed), (1, 1, 1));
        assert_eq!(o.served_judged(), (0.5, 0.5));
        assert!((o.judged_usd - 0.003).abs() < 1e-12);
    }

    #[test]
    fn the_grid_keeps_the_configured_setting_and_no_band_above_its_threshold() {
        let g = grid(&[0.90, 0.94], &[0.80, 0.92], (0.94, 0.85));
        assert_eq!(g, vec![(0.90, 0.80), (0.90, 0.90), (0.94, 0.80), (0.94, 0.85), (0.94, 0.92), (0.94, 0.94)]);
        assert_eq!(grey_range(&g), (0.80, 0.94));
    }
}
