//! The run configuration (`deploy/*.yaml`): the model, the action set, the learner and the trainer.
//! A bad file fails with the path of the offending key (`trainer.lr`, `actions[2].intensity`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionSpec};
use crate::error::{Error, Result};
use crate::state;

/// ε decays linearly from `start` to `end` over `decay_updates` updates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Epsilon {
    pub start: f64,
    pub end: f64,
    pub decay_updates: u64,
}

/// Proportional prioritised replay (Schaul et al., 2016): transition i is drawn with probability
/// `p_i^alpha / sum p^alpha`, where `p_i = |TD error| + eps` (new ones enter at the highest
/// priority seen), and its loss is weighted by `(N * P(i))^-beta`, normalised by the largest weight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prioritized {
    pub alpha: f64,
    pub beta: f64,
    #[serde(default = "default_priority_eps")]
    pub eps: f64,
}

fn default_priority_eps() -> f64 {
    1e-3
}

/// Trainer settings (the `trainer:` section of a run config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    pub hidden: Vec<usize>,
    pub gamma: f64,
    pub batch: usize,
    pub lr: f64,
    /// Copy online to target every this many updates.
    pub target_update: u64,
    pub huber_delta: f64,
    pub grad_clip: f64,
    pub samples_per_insert: f64,
    /// Samples the learner may run ahead of `samples_per_insert * inserted`.
    pub spi_tolerance: f64,
    pub min_replay: u64,
    /// Publish the online weights every this many updates.
    pub publish_every: u64,
    /// Write a checkpoint every this many updates (0: only on shutdown).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    pub epsilon: Epsilon,
    /// Prioritised sampling; uniform when absent.
    pub prioritized: Option<Prioritized>,
    pub seed: u64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            gamma: 0.9,
            batch: 64,
            lr: 1e-3,
            target_update: 100,
            huber_delta: 1.0,
            grad_clip: 10.0,
            samples_per_insert: 8.0,
            spi_tolerance: 4096.0,
            min_replay: 64,
            publish_every: 10,
            checkpoint_every: 1000,
            keep_checkpoints: 3,
            epsilon: Epsilon { start: 1.0, end: 0.05, decay_updates: 5000 },
            prioritized: None,
            seed: 0,
        }
    }
}

impl TrainerConfig {
    /// Checks values a config file could get wrong; the message names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        let bad = |f: &str, why: &str| Err(format!("trainer.{f}: {why}"));
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad("gamma", "must be in [0, 1]");
        }
        if self.batch == 0 {
            return bad("batch", "must be positive");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be positive");
        }
        if self.target_update == 0 || self.publish_every == 0 {
            return bad("target_update / publish_every", "must be positive");
        }
        if self.samples_per_insert.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || self.spi_tolerance < self.batch as f64 {
            return bad("samples_per_insert / spi_tolerance", "ratio must be positive and the tolerance at least one batch");
        }
        if let Some(p) = &self.prioritized {
            if !(0.0..=1.0).contains(&p.alpha) || !(0.0..=1.0).contains(&p.beta) || p.eps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return bad("prioritized", "alpha and beta must be in [0, 1] and eps positive");
            }
        }
        let e = &self.epsilon;
        if !(0.0..=1.0).contains(&e.start) || !(0.0..=1.0).contains(&e.end) {
            return bad("epsilon", "start and end must be in [0, 1]");
        }
        Ok(())
    }
}

/// The learner's section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Address the gRPC service binds (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Folder of the run's learner state: `replay/` (sled) and `checkpoints/`.
    pub dir: String,
    pub replay_capacity: u64,
    /// Most transitions one batch may carry.
    pub max_batch: usize,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:50051".into(), dir: "runs/learner".into(), replay_capacity: 1_000_000, max_batch: 1024 }
    }
}

/// A run: what every process of it agrees on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub name: String,
    /// The model actors prune (default: the embedded one).
    #[serde(default = "default_model")]
    pub model: String,
    /// The policy's actions, in order.
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub learner: LearnerConfig,
    #[serde(default)]
    pub trainer: TrainerConfig,
}

fn default_model() -> String {
    "models/pydoc-llama-7m".into()
}

impl RunConfig {
    /// Parses and checks a YAML run file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.into(), source: e })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and checks YAML text; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: RunConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let reason = e.into_inner().to_string();
            // The YAML error repeats (part of) the key path in front; it is already in `field`.
            let reason = match reason.split_once(": ") {
                Some((head, rest)) if field.starts_with(head) => rest.to_string(),
                _ => reason,
            };
            Error::Config { path: path.into(), field: if field == "." { "(top level)".into() } else { field }, reason }
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |field: String, reason: String| Error::Config { path: path.into(), field, reason };
        if self.actions.is_empty() {
            return Err(bad("actions".into(), "the action list is empty".into()));
        }
        let mut labels = Vec::new();
        for (i, spec) in self.actions.iter().enumerate() {
            let action = spec.check().map_err(|e| bad(format!("actions[{i}]"), e.to_string()))?;
            let label = action.label();
            if labels.contains(&label) {
                return Err(bad(format!("actions[{i}]"), format!("`{label}` is listed twice")));
            }
            labels.push(label);
        }
        self.trainer.check().map_err(|e| {
            let (field, reason) = e.split_once(": ").unwrap_or(("trainer", e.as_str()));
            bad(field.into(), reason.into())
        })?;
        if self.learner.max_batch == 0 || self.learner.replay_capacity == 0 {
            return Err(bad("learner".into(), "max_batch and replay_capacity must be positive".into()));
        }
        Ok(())
    }

    /// The checked actions, in policy order.
    pub fn checked_actions(&self) -> Vec<Action> {
        self.actions.iter().filter_map(|a| a.check().ok()).collect()
    }

    /// Action labels in policy order (what actors and the learner compare).
    pub fn action_labels(&self) -> Vec<String> {
        self.checked_actions().iter().map(Action::label).collect()
    }

    /// Size of the state vector.
    pub fn state_dim(&self) -> usize {
        state::FEATURES.len()
    }
}
