//! `deja eval --judge`: replays labelled pairs through the verifier that
//! `[cache.semantic.verifier]` configures, the same call the gateway makes
//! for a grey-band candidate (`deja_gateway::verify`): the pair's `b` as the
//! new request, its `a` as the one cached candidate, through the ladder and
//! upstream path, with the configured timeout. Only pairs some setting on the
//! curve would send to the verifier are asked. The calls are real and billed
//! by the provider; `--verdicts FILE` keeps the answers for the next run.

use super::Scored;
use deja_gateway::{verify, AppState, Config};
use std::path::Path;
use std::sync::Arc;

/// The verifier's answer for one pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Outside the similarities any setting would verify, or refused by a guard.
    NotAsked,
    Yes {
        usd: f64,
    },
    No {
        usd: f64,
    },
    /// An error, a timeout or a refusal: the gateway serves a miss.
    Failed(String),
}

impl Judgement {
    fn answered(&self) -> bool {
        matches!(self, Judgement::Yes { .. } | Judgement::No { .. })
    }
}

/// The pairs that need a verdict: guards passing, similarity in `[lo, hi)`.
pub fn needing(scored: &[Scored], mask: [bool; 4], (lo, hi): (f32, f32)) -> Vec<usize> {
    scored
        .iter()
        .enumerate()
        .filter(|(_, s)| s.passes(mask) && s.similarity >= lo && s.similarity < hi)
        .map(|(i, _)| i)
        .collect()
}

/// Asks the configured verifier about the pairs at `which`, `concurrency` at
/// a time. `known` verdicts (yes or no) from an earlier run are kept, not
/// asked again. The gateway state it uses has its own temporary store and no
/// semantic cache or cluster: the replay reads and writes no cache.
pub async fn judge(
    mut config: Config,
    pairs: &[(String, String, bool)],
    which: &[usize],
    known: Vec<Judgement>,
    concurrency: usize,
) -> Result<Vec<Judgement>, String> {
    let settings = config
        .cache
        .verifier
        .clone()
        .ok_or("--judge needs a verifier: add [cache.semantic.verifier] to the configuration")?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary store: {e}"))?;
    config.store_path = dir.path().join("store");
    config.cache.semantic_enabled = false;
    config.cluster = None;
    let state = tokio::task::spawn_blocking(move || AppState::build(config, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let cfg = state.config();
    let mut out = known;
    out.resize(pairs.len(), Judgement::NotAsked);
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for &i in which {
        let (Some((a, b, _)), Some(prior)) = (pairs.get(i), out.get(i)) else { continue };
        if prior.answered() {
            continue;
        }
        let (state, cfg, settings, limit) = (state.clone(), cfg.clone(), settings.clone(), limit.clone());
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            // As a lookup asks it: texts sharing a template show the template once and what differs.
            let d = deja_cache::compare::differing(&b, &a);
            let framed = d.shared_bytes > 0 && !d.query.is_empty() && !d.candidate.is_empty();
            let template = framed.then(|| d.template(&b));
            let (shown, cached) = if framed { (d.query, d.candidate) } else { (b.as_str(), a.as_str()) };
            // An offline evaluation: no client pays, no budget applies.
            let payer = verify::Payer { namespace: "eval".into(), budget: None };
            let verdict = match verify::verify(
                &state.calls,
                &cfg,
                &payer,
                &settings,
                template.as_deref(),
                shown,
                &[cached],
            )
            .await
            {
                Ok(v) if v.chosen == Some(0) => Judgement::Yes { usd: v.cost_usd },
                Ok(v) => Judgement::No { usd: v.cost_usd },
                Err(e) => Judgement::Failed(e.to_string()),
            };
            (i, verdict)
        });
    }
    let total = tasks.len();
    let mut done = 0usize;
    while let Some(joined) = tasks.join_next().await {
        let (i, verdict) = joined.map_err(|e| e.to_string())?;
        if let Some(slot) = out.get_mut(i) {
            *slot = verdict;
        }
        done += 1;
        if done.is_multiple_of(50) || done == total {
            tracing::info!(done, total, "verifier replay");
        }
    }
    drop(state);
    Ok(out)
}

/// Verdicts saved by an earlier run: one line per pair, `-` (not asked),
/// `yes USD`, `no USD` or `failed MESSAGE`. `None` unless the count matches.
pub fn load_verdicts(path: &Path, expected: usize) -> Option<Vec<Judgement>> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Vec<Judgement> = text
        .lines()
        .map(|line| {
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let usd = rest.trim().parse().unwrap_or(0.0);
            match word {
                "yes" => Judgement::Yes { usd },
                "no" => Judgement::No { usd },
                "failed" => Judgement::Failed(rest.to_string()),
                _ => Judgement::NotAsked,
            }
        })
        .collect();
    (v.len() == expected).then_some(v)
}

pub fn save_verdicts(path: &Path, verdicts: &[Judgement]) -> std::io::Result<()> {
    let text: String = verdicts
        .iter()
        .map(|v| match v {
            Judgement::NotAsked => "-\n".to_string(),
            Judgement::Yes { usd } => format!("yes {usd}\n"),
            Judgement::No { usd } => format!("no {usd}\n"),
            Judgement::Failed(msg) => format!("failed {}\n", msg.replace('\n', " ")),
        })
        .collect();
    std::fs::write(path, text)
}

/// How often the verifier agreed with the labels, over the pairs it answered.
pub fn summary(scored: &[Scored], verdicts: &[Judgement]) -> String {
    let (mut dup_yes, mut dup, mut non_yes, mut non, mut failed, mut usd) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0.0);
    for (s, v) in scored.iter().zip(verdicts) {
        let yes = match v {
            Judgement::Yes { usd: u } => {
                usd += u;
                true
            }
            Judgement::No { usd: u } => {
                usd += u;
                false
            }
            Judgement::Failed(_) => {
                failed += 1;
                continue;
            }
            Judgement::NotAsked => continue,
        };
        if s.same {
            dup += 1;
            dup_yes += usize::from(yes);
        } else {
            non += 1;
            non_yes += usize::from(yes);
        }
    }
    let pct = |a: usize, b: usize| a as f64 * 100.0 / b.max(1) as f64;
    format!(
        "\nverifier replay: {} answered, {failed} failed, ${usd:.4} in all\n  \
         said yes to {dup_yes} of {dup} duplicates ({:.1}%) and {non_yes} of {non} non-duplicates ({:.1}%)\n",
        dup + non,
        pct(dup_yes, dup),
        pct(non_yes, non),
    )
}

/// Verdicts of a judge that is right on `accuracy` of the pairs it is asked
/// about: a wrong verdict says yes to a non-duplicate or no to a duplicate.
/// Which pairs it gets wrong is fixed by the pair's position, so runs and
/// settings compare on the same mistakes.
pub fn simulated(scored: &[Scored], accuracy: f64) -> Vec<Judgement> {
    scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let h = blake3::hash(format!("deja/simulated-judge/{i}").as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(h.as_bytes().get(..8).unwrap_or(&[0; 8]));
            let draw = u64::from_le_bytes(first) as f64 / u64::MAX as f64;
            let right = draw < accuracy;
            if s.same == right {
                Judgement::Yes { usd: 0.0 }
            } else {
                Judgement::No { usd: 0.0 }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_verdicts_read_back_the_same() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("verdicts");
        let v = vec![
            Judgement::NotAsked,
            Judgement::Yes { usd: 0.00125 },
            Judgement::No { usd: 0.0 },
            Judgement::Failed("the verifier did not answer in time".into()),
        ];
        save_verdicts(&path, &v).expect("save");
        assert_eq!(load_verdicts(&path, 4), Some(v));
        assert_eq!(load_verdicts(&path, 5), None, "another pairs file");
    }

    #[test]
    fn only_guarded_grey_pairs_need_a_verdict() {
        let s = |similarity, refused| Scored { similarity, same: true, refused: [refused, false, false, false] };
        let scored = [s(0.79, false), s(0.80, false), s(0.90, true), s(0.95, false), s(0.96, false)];
        assert_eq!(needing(&scored, [true, false, false, false], (0.80, 0.96)), vec![1, 3]);
    }
}
