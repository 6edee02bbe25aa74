//! Models and ladders by name, checked for consistency once at start-up.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// What clients and ladders call it.
    pub name: String,
    pub provider: String,
    /// What the provider calls it.
    pub upstream_name: String,
    pub input_usd_per_mtok: f64,
    /// A prompt token read from the provider's prompt cache (OpenAI's
    /// `cached_tokens`, Anthropic's `cache_read_input_tokens`).
    pub cached_input_usd_per_mtok: f64,
    /// A prompt token written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`).
    pub cache_write_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub context_window: u64,
}

/// Start at `rung` when the prompt has at least `min_prompt_tokens`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRule {
    pub min_prompt_tokens: u64,
    pub rung: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LadderSpec {
    pub name: String,
    /// Cheapest first.
    pub rungs: Vec<String>,
    pub start_rules: Vec<StartRule>,
    /// Task tag (`x-deja-task` or `metadata.task`) to the rung to start at.
    pub tasks: HashMap<String, String>,
    /// `strategy`, `max_ttfb` and `hedge_after`.
    pub latency: crate::policy::LatencyPolicy,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("{0}: duplicate name `{1}`")]
    Duplicate(&'static str, String),
    #[error("ladders.{ladder}.{field}: unknown model `{model}`")]
    UnknownModel { ladder: String, field: String, model: String },
    #[error("ladders.{0}.rungs: a ladder needs at least one rung")]
    EmptyLadder(String),
    #[error("ladders.{0}: a ladder may not share its name with a model")]
    NameClash(String),
}

/// A resolved target: a ladder to walk or a single model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ladder(usize),
    Model(usize),
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub models: Vec<ModelSpec>,
    pub ladders: Vec<LadderSpec>,
    by_name: HashMap<String, Target>,
}

impl Catalog {
    pub fn new(models: Vec<ModelSpec>, ladders: Vec<LadderSpec>) -> Result<Self, CatalogError> {
        let mut by_name = HashMap::new();
        for (i, m) in models.iter().enumerate() {
            if by_name.insert(m.name.clone(), Target::Model(i)).is_some() {
                return Err(CatalogError::Duplicate("models", m.name.clone()));
            }
        }
        for (i, l) in ladders.iter().enumerate() {
            match by_name.insert(l.name.clone(), Target::Ladder(i)) {
                Some(Target::Model(_)) => return Err(CatalogError::NameClash(l.name.clone())),
                Some(Target::Ladder(_)) => return Err(CatalogError::Duplicate("ladders", l.name.clone())),
                None => {}
            }
            if l.rungs.is_empty() {
                return Err(CatalogError::EmptyLadder(l.name.clone()));
            }
            let unknown = |field: &str, model: &str| CatalogError::UnknownModel {
                ladder: l.name.clone(),
                field: field.to_string(),
                model: model.to_string(),
            };
            for r in &l.rungs {
                if !models.iter().any(|m| &m.name == r) {
                    return Err(unknown("rungs", r));
                }
            }
            for rule in &l.start_rules {
                if !l.rungs.contains(&rule.rung) {
                    return Err(unknown("start_rules", &rule.rung));
                }
            }
            for rung in l.tasks.values() {
                if !l.rungs.contains(rung) {
                    return Err(unknown("tasks", rung));
                }
            }
        }
        Ok(Self { models, ladders, by_name })
    }

    pub fn resolve(&self, name: &str) -> Option<Target> {
        self.by_name.get(name).copied()
    }

    pub fn model_index(&self, name: &str) -> Option<usize> {
        match self.resolve(name) {
            Some(Target::Model(i)) => Some(i),
            _ => None,
        }
    }

    /// The model at index `i` (from [`Target::Model`] or a [`crate::Plan`]).
    pub fn model(&self, i: usize) -> Option<&ModelSpec> {
        self.models.get(i)
    }

    /// The ladder at index `i` (from [`Target::Ladder`]).
    pub fn ladder(&self, i: usize) -> Option<&LadderSpec> {
        self.ladders.get(i)
    }
}
