//! Evaluation of the dense model, a fixed pruning action, or a policy: perplexity on a text
//! (non-overlapping windows, as `eval-ppl`), and zero-shot multiple-choice accuracy by
//! log-likelihood (each choice scored as the summed log-probability of its tokens after the
//! question; the highest wins).
//!
//! A policy chooses per window (or per question) from the state of that window: telemetry plus
//! the complexity the dense model's pass over it gives, as in an episode.

use std::path::Path;

use casrap_common::action::Action;
use casrap_common::config::RunConfig;
use casrap_common::qnet::QNet;
use casrap_common::state::{self, Complexity};
use casrap_common::telemetry::Telemetry;
use serde::{Deserialize, Serialize};
use tch::Kind;

use crate::prune::setup::Setup;
use casrap_engine::error::{Error, Result};
use casrap_engine::generate::token_batch;
use casrap_engine::{perplexity, Llama, Logits};

/// What is evaluated.
pub enum Subject<'a> {
    Dense,
    Fixed(Action),
    Policy { net: &'a QNet, config: &'a RunConfig, telemetry: &'a mut Telemetry },
}

impl Subject<'_> {
    pub fn label(&self) -> String {
        match self {
            Subject::Dense => "dense".into(),
            Subject::Fixed(a) => a.label(),
            Subject::Policy { .. } => "policy (greedy)".into(),
        }
    }
}

/// One multiple-choice item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McItem {
    pub question: String,
    pub choices: Vec<String>,
    /// Index of the right choice.
    pub answer: usize,
}

/// Reads a JSONL of `{question, choices, answer}`; a bad line is named with its number and reason.
pub fn read_mc(path: &Path) -> Result<Vec<McItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |reason: String| Error::Line { path: path.into(), line: i + 1, reason };
        let item: McItem = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if item.choices.len() < 2 {
            return Err(bad("needs at least two choices".into()));
        }
        if item.answer >= item.choices.len() {
            return Err(bad(format!(
                "answer {} is not one of the {} choices",
                item.answer,
                item.choices.len()
            )));
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(Error::Line { path: path.into(), line: 0, reason: "no questions".into() });
    }
    Ok(items)
}

/// Summed log-probability of `tokens[from..]` given what precedes each (one forward pass).
pub fn logprob_from(model: &Llama, tokens: &[u32], from: usize) -> f64 {
    let _guard = tch::no_grad_guard();
    if from == 0 || from >= tokens.len() {
        return f64::NEG_INFINITY;
    }
    let ids = token_batch(tokens, model.device());
    let logits =
        model.forward(&ids, &mut model.new_cache(1, tokens.len()), Logits::All).squeeze_dim(0);
    let logp = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
    let n = tokens.len() as i64;
    let from = from as i64;
    let targets = ids.squeeze_dim(0).narrow(0, from, n - from).unsqueeze(-1);
    logp.narrow(0, from - 1, n - from)
        .gather(-1, &targets, false)
        .sum(Kind::Double)
        .double_value(&[])
}

/// The action a policy picks for `tokens` (its state uses the dense model's perplexity on them),
/// as for a request of the run's most lenient budget class (evaluation text has no request).
fn policy_action(
    setup: &mut Setup,
    tokens: &[u32],
    net: &QNet,
    config: &RunConfig,
    telemetry: &mut Telemetry,
) -> Result<usize> {
    setup.model.activate_dense();
    let nll = perplexity::evaluate(&setup.model, tokens, tokens.len(), 1)?;
    let complexity = Complexity::of(tokens, nll.perplexity(), &config.state);
    let lenient = config.budget.classes.len().saturating_sub(1);
    let s = state::vector(&telemetry.snapshot(), &complexity, config.budget.feature(lenient));
    net.greedy(&s).map_err(|e| Error::arg("checkpoint", e.to_string()))
}

/// Runs `f` with the profile of `action` active, then switches back to the dense model.
fn with_action<T>(
    setup: &mut Setup,
    action: &Action,
    f: impl FnOnce(&Llama) -> Result<T>,
) -> Result<T> {
    setup.harness.cache.apply(&mut setup.model, action)?;
    let out = f(&setup.model);
    setup.model.activate_dense();
    out
}

/// The action `subject` uses on `tokens` (`None`: dense).
fn action_for(
    setup: &mut Setup,
    subject: &mut Subject<'_>,
    tokens: &[u32],
) -> Result<Option<Action>> {
    Ok(match subject {
        Subject::Dense => None,
        Subject::Fixed(a) => Some(*a),
        Subject::Policy { net, config, telemetry } => {
            let k = policy_action(setup, tokens, net, config, telemetry)?;
            config.checked_actions().get(k).copied()
        }
    })
}

/// Perplexity result, with the actions a policy used.
#[derive(Debug, Clone, Serialize)]
pub struct TextResult {
    pub subject: String,
    pub tokens: usize,
    pub perplexity: f64,
    /// Windows per action (the policy's choices; one entry for a fixed action).
    pub actions: std::collections::BTreeMap<String, usize>,
}

/// Perplexity of `subject` on `tokens`, in non-overlapping windows of `window`.
pub fn text(
    setup: &mut Setup,
    subject: &mut Subject<'_>,
    tokens: &[u32],
    window: usize,
) -> Result<TextResult> {
    let mut total = perplexity::Nll::default();
    let mut actions = std::collections::BTreeMap::new();
    for w in perplexity::windows(tokens, window) {
        let action = action_for(setup, subject, w)?;
        let nll = match &action {
            None => perplexity::evaluate(&setup.model, w, window, 1)?,
            Some(a) => with_action(setup, a, |m| perplexity::evaluate(m, w, window, 1))?,
        };
        *actions.entry(action.map_or("none".into(), |a| a.label())).or_insert(0) += 1;
        total.add(nll);
    }
    Ok(TextResult {
        subject: subject.label(),
        tokens: total.tokens,
        perplexity: total.perplexity(),
        actions,
    })
}

/// Multiple-choice result.
#[derive(Debug, Clone, Serialize)]
pub struct McResult {
    pub subject: String,
    pub items: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Per item: the chosen index.
    pub chosen: Vec<usize>,
    pub actions: std::collections::BTreeMap<String, usize>,
}

/// Zero-shot accuracy of `subject` on `items` by log-likelihood.
pub fn multiple_choice(
    setup: &mut Setup,
    subject: &mut Subject<'_>,
    items: &[McItem],
) -> Result<McResult> {
    let mut chosen = Vec::with_capacity(items.len());
    let mut actions = std::collections::BTreeMap::new();
    for item in items {
        let context = setup.tokenizer.encode(&item.question)?;
        let action = action_for(setup, subject, &context)?;
        *actions.entry(action.map_or("none".into(), |a| a.label())).or_insert(0) += 1;
        let mut best = (f64::NEG_INFINITY, 0);
        for (k, choice) in item.choices.iter().enumerate() {
            let full =
                setup.tokenizer.encode(&format!("{} {}", item.question, choice.trim_start()))?;
            // The choice's tokens: everything after the longest common prefix with the question's.
            let from = context.iter().zip(&full).take_while(|(a, b)| a == b).count().max(1);
            let score = match &action {
                None => logprob_from(&setup.model, &full, from),
                Some(a) => with_action(setup, a, |m| Ok(logprob_from(m, &full, from)))?,
            };
            if score > best.0 {
                best = (score, k);
            }
        }
        chosen.push(best.1);
    }
    let correct = chosen.iter().zip(items).filter(|(c, i)| **c == i.answer).count();
    Ok(McResult {
        subject: subject.label(),
        items: items.len(),
        correct,
        accuracy: correct as f64 / items.len() as f64,
        chosen,
        actions,
    })
}
