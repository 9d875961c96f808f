//! Request quality budgets: in serving, requests differ in how much quality loss they accept. Each
//! episode (and each held-out prompt) carries a budget class from the run's `budget:` section; the
//! class decides how the reward weighs a perplexity increase, and the state carries it as the
//! `quality_budget` feature, so the best action can differ from one request to the next.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::prompts::{stable_hash, Prompt};

/// How a prompt gets its class.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    /// Drawn uniformly per episode (as requests arrive with any budget); in test mode per prompt,
    /// from its id, so every policy is scored on the same classes.
    #[default]
    Random,
    /// From the prompt's `context_dependency` through `from_dependency`.
    Dependency,
    /// The prompt file's `budget` column.
    Column,
}

/// One class: `r = alpha * gain - beta * max(0, d) - over_penalty * max(0, d - limit) - ...`,
/// where `d` is the relative perplexity change (see [`crate::config::RewardConfig`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub name: String,
    /// Weight on a perplexity increase (absent: `reward.beta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// The perplexity increase the class accepts (0.02: +2%); absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    /// Penalty per unit of perplexity increase beyond `limit`.
    #[serde(default = "default_over_penalty")]
    pub over_penalty: f64,
}

fn default_over_penalty() -> f64 {
    5.0
}

impl Class {
    /// A class named `name` that adds nothing to the seed's reward.
    pub fn seed(name: &str) -> Self {
        Self { name: name.into(), beta: None, limit: None, over_penalty: default_over_penalty() }
    }
}

/// The `budget:` section. Without one every episode has the single class `any`, which is the
/// seed's reward.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub assign: Assign,
    /// The classes from the strictest to the most lenient; the state feature is the class's
    /// position scaled to [0, 1] (0: strictest).
    pub classes: Vec<Class>,
    /// `context_dependency` value -> class name (for `assign: dependency`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub from_dependency: BTreeMap<String, String>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            assign: Assign::Random,
            classes: vec![Class::seed("any")],
            from_dependency: BTreeMap::new(),
        }
    }
}

impl BudgetConfig {
    /// Checks what a config file could get wrong; the message starts with the field's path.
    pub fn check(&self) -> Result<(), String> {
        if self.classes.is_empty() {
            return Err("budget.classes: needs at least one class".into());
        }
        for (i, c) in self.classes.iter().enumerate() {
            let at = |f: &str, why: &str| Err(format!("budget.classes[{i}].{f}: {why}"));
            if c.name.trim().is_empty() || c.name != c.name.to_lowercase() {
                return at("name", "must be a non-empty lowercase name");
            }
            if self.classes[..i].iter().any(|o| o.name == c.name) {
                return at("name", &format!("`{}` is listed twice", c.name));
            }
            let bad = |v: Option<f64>| v.is_some_and(|v| !v.is_finite() || v < 0.0);
            if bad(c.beta) {
                return at("beta", "must be finite and not negative");
            }
            if bad(c.limit) {
                return at("limit", "must be finite and not negative");
            }
            if bad(Some(c.over_penalty)) {
                return at("over_penalty", "must be finite and not negative");
            }
        }
        for (dep, class) in &self.from_dependency {
            if self.index_of(class).is_none() {
                return Err(format!(
                    "budget.from_dependency.{dep}: `{class}` is not one of the classes ({})",
                    self.names().join(", ")
                ));
            }
        }
        if self.assign == Assign::Dependency && self.from_dependency.is_empty() {
            return Err("budget.from_dependency: `assign: dependency` needs the mapping".into());
        }
        Ok(())
    }

    pub fn names(&self) -> Vec<&str> {
        self.classes.iter().map(|c| c.name.as_str()).collect()
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The state feature of class `index`: its position scaled to [0, 1] (1 with one class).
    pub fn feature(&self, index: usize) -> f32 {
        match self.classes.len() {
            0 | 1 => 1.0,
            n => (index.min(n - 1) as f64 / (n - 1) as f64) as f32,
        }
    }

    /// The class of `prompt`; `draw` decides a random one (an episode's or a prompt's hash).
    /// The reason of an error names the prompt's value and what was expected.
    pub fn class_of(&self, prompt: &Prompt, draw: u64) -> Result<usize, String> {
        match self.assign {
            Assign::Random => Ok((draw % self.classes.len().max(1) as u64) as usize),
            Assign::Dependency => {
                let dep = prompt.context_dependency.as_str();
                let class = self.from_dependency.get(dep).ok_or_else(|| {
                    format!(
                        "context_dependency `{dep}` has no class in budget.from_dependency (mapped: {})",
                        self.from_dependency.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })?;
                self.index_of(class).ok_or_else(|| format!("unknown budget class `{class}`"))
            }
            Assign::Column => self.index_of(&prompt.budget).ok_or_else(|| {
                format!(
                    "budget `{}` is not one of the classes ({})",
                    prompt.budget,
                    self.names().join(", ")
                )
            }),
        }
    }

    /// Checks that every prompt gets a class: the first that does not is named by its line.
    pub fn check_prompts(&self, prompts: &[Prompt]) -> Result<(), (u64, String)> {
        prompts.iter().try_for_each(|p| self.class_of(p, 0).map(|_| ()).map_err(|r| (p.line, r)))
    }

    /// The class of held-out prompt `prompt` in test mode: fixed per prompt.
    pub fn test_class(&self, prompt: &Prompt, seed: u64) -> Result<usize, String> {
        self.class_of(prompt, stable_hash(seed ^ 0x00b0_d6e7, &prompt.id.to_le_bytes()))
    }
}
