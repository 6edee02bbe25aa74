//! `[cache.semantic.slo]`: the live quality check of semantic hits, as
//! written and as validated.

use super::{invalid, ConfigError};
use serde::Deserialize;

/// The table as written. Absent, or `sample_rate = 0`: off.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    #[serde(default)]
    pub sample_rate: f64,
    #[serde(default = "default_max_false_hit_rate")]
    pub max_false_hit_rate: f64,
    #[serde(default = "default_answer_similarity")]
    pub answer_similarity: f32,
    #[serde(default = "default_max_threshold")]
    pub max_threshold: f32,
    #[serde(default = "default_step")]
    pub step: f32,
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
}

impl Default for RawSlo {
    fn default() -> Self {
        Self {
            sample_rate: 0.0,
            max_false_hit_rate: default_max_false_hit_rate(),
            answer_similarity: default_answer_similarity(),
            max_threshold: default_max_threshold(),
            step: default_step(),
            min_samples: default_min_samples(),
        }
    }
}

fn default_max_false_hit_rate() -> f64 {
    0.02
}
fn default_answer_similarity() -> f32 {
    0.85
}
fn default_max_threshold() -> f32 {
    0.99
}
fn default_step() -> f32 {
    0.01
}
fn default_min_samples() -> u64 {
    30
}

/// What the gateway uses: the share of semantic hits re-asked upstream in
/// the background, what counts as a disagreement, and how far the serve
/// threshold may be raised automatically.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSettings {
    /// Share of semantic hits also sent upstream as a shadow call; 0 is off.
    pub sample_rate: f64,
    /// The false-hit rate a namespace may have before its threshold rises.
    pub max_false_hit_rate: f64,
    /// Below this cosine between the cached and the fresh answer, the hit was false.
    pub answer_similarity: f32,
    /// The automatic adjustment never raises a threshold past this.
    pub max_threshold: f32,
    /// How much one adjustment raises a namespace's threshold.
    pub step: f32,
    /// Samples needed (since the last adjustment) before adjusting.
    pub min_samples: u64,
}

impl Default for SloSettings {
    fn default() -> Self {
        // The raw defaults always validate.
        validate(&RawSlo::default()).unwrap_or(Self {
            sample_rate: 0.0,
            max_false_hit_rate: 0.02,
            answer_similarity: 0.85,
            max_threshold: 0.99,
            step: 0.01,
            min_samples: 30,
        })
    }
}

impl SloSettings {
    pub fn enabled(&self) -> bool {
        self.sample_rate > 0.0
    }
}

pub fn validate(raw: &RawSlo) -> Result<SloSettings, ConfigError> {
    let share = |path: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(format!("cache.semantic.slo.{path}"), format!("{v} is not in [0, 1]")))
        }
    };
    let sample_rate = share("sample_rate", raw.sample_rate)?;
    let max_false_hit_rate = share("max_false_hit_rate", raw.max_false_hit_rate)?;
    share("answer_similarity", f64::from(raw.answer_similarity))?;
    share("max_threshold", f64::from(raw.max_threshold))?;
    if !(raw.step > 0.0 && raw.step <= 1.0) {
        return Err(invalid("cache.semantic.slo.step", format!("{} is not in (0, 1]", raw.step)));
    }
    if raw.min_samples == 0 {
        return Err(invalid("cache.semantic.slo.min_samples", "must be at least 1"));
    }
    Ok(SloSettings {
        sample_rate,
        max_false_hit_rate,
        answer_similarity: raw.answer_similarity,
        max_threshold: raw.max_threshold,
        step: raw.step,
        min_samples: raw.min_samples,
    })
}
