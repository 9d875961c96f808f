//! Action sets fitted to a model: per pruning kind, the strongest intensity whose perplexity change
//! on calibration text stays within each budget of a ladder (+2%, +5%, ...). A pretrained model
//! reacts very differently from the embedded one (SmolLM2-135M: `ffn:0.25` costs +81%), so the
//! default action list is only a starting point; `casrap-lab calibrate-actions` writes the fitted
//! list for a run config, with a table of every intensity tried (perplexity change and bytes
//! ceiling).

use casrap_common::action::{Action, ActionKind, ActionSpec, DEFAULT_SINKS};
use serde::Serialize;

use crate::prune::profiles::FFN_MULTIPLE;
use crate::prune::setup::Setup;
use casrap_engine::error::{Error, Result};
use casrap_engine::perplexity;

/// One intensity tried.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub action: String,
    pub kind: ActionKind,
    /// Fraction removed (heads, ffn, layers) or the window (kv_window).
    pub intensity: f64,
    pub perplexity: f64,
    pub ppl_change: f64,
    /// Bytes read per decode step at the window's last position, dense over pruned.
    pub ceiling: f64,
    #[serde(skip)]
    action_value: Option<Action>,
}

/// The strongest action of one kind within one budget.
#[derive(Debug, Clone, Serialize)]
pub struct Fitted {
    pub budget: f64,
    pub kind: ActionKind,
    pub action: String,
    pub ppl_change: f64,
    pub ceiling: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub model: String,
    pub text: String,
    pub tokens: usize,
    /// Tokens per perplexity window (0 when judged on served requests).
    pub window: usize,
    /// Served requests judged (0 when judged on windows of one text).
    #[serde(default)]
    pub requests: usize,
    pub dense_perplexity: f64,
    pub budgets: Vec<f64>,
    pub points: Vec<Point>,
    pub fitted: Vec<Fitted>,
}

/// The intensities tried per kind: every layer count up to a third of the layers (never the first
/// or last), fractions of heads from 2% to 50%, every FFN step up to half the channels (channels
/// go in multiples of [`FFN_MULTIPLE`], so an intensity between two steps would remove what its
/// neighbour does), KV windows of 16 to 512 (those shorter than the calibration windows are
/// measured), activation sparsity from 10% to 70%. `ffn` is the FFN's channel count.
pub fn grid(kinds: &[ActionKind], layers: usize, ffn: usize) -> Vec<Action> {
    let mut out = Vec::new();
    for kind in kinds {
        match kind {
            ActionKind::Heads => out.extend(
                [0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
                    .map(|i| Action::Heads { intensity: i }),
            ),
            // Rounded so that labels stay short; the step kept is still the k-th.
            ActionKind::Ffn => out.extend((1..=ffn / (2 * FFN_MULTIPLE)).map(|k| Action::Ffn {
                intensity: ((k * FFN_MULTIPLE) as f64 / ffn as f64 * 1e4).round() / 1e4,
            })),
            ActionKind::Layers => out.extend(
                (1..=(layers / 3).min(layers.saturating_sub(2)))
                    // Rounded so that labels stay short; `round(layers * intensity)` is still k.
                    .map(|k| Action::Layers {
                        intensity: (k as f64 / layers as f64 * 1e4).round() / 1e4,
                    }),
            ),
            ActionKind::KvWindow => out.extend(
                [16, 32, 64, 128, 256, 512]
                    .map(|w| Action::KvWindow { sinks: DEFAULT_SINKS, window: w }),
            ),
            ActionKind::Sparsity => out.extend(
                [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
                    .map(|level| Action::Sparsity { level }),
            ),
            // Lossless: nothing to fit to a quality budget.
            ActionKind::None | ActionKind::Lookup => {}
        }
    }
    out
}

fn intensity_of(a: &Action) -> f64 {
    match *a {
        Action::Heads { intensity } | Action::Ffn { intensity } | Action::Layers { intensity } => {
            intensity
        }
        Action::KvWindow { window, .. } => window as f64,
        Action::Sparsity { level } | Action::SparseLookup { level, .. } => level,
        Action::Lookup { draft, .. } => draft as f64,
        Action::None => 0.0,
    }
}

fn kind_of(a: &Action) -> ActionKind {
    match a {
        Action::None => ActionKind::None,
        Action::Heads { .. } => ActionKind::Heads,
        Action::Ffn { .. } => ActionKind::Ffn,
        Action::Layers { .. } => ActionKind::Layers,
        Action::KvWindow { .. } => ActionKind::KvWindow,
        Action::Sparsity { .. } | Action::SparseLookup { .. } => ActionKind::Sparsity,
        Action::Lookup { .. } => ActionKind::Lookup,
    }
}

/// Bytes one decode step reads at `context` positions under the active profile.
fn bytes_at(setup: &Setup, context: usize) -> f64 {
    (setup.model.weight_bytes_per_token() + setup.model.kv_bytes_per_token(context)) as f64
}

/// What the perplexity changes are measured on.
pub enum Text<'a> {
    /// Non-overlapping windows of `window` tokens of one text; the change is that of the
    /// perplexity over all windows.
    Windows { tokens: &'a [u32], window: usize },
    /// Served requests: each a prompt as the run serves it (under the chat template for an
    /// instruct model) followed by the dense model's greedy continuation, judged as an episode
    /// judges an action (perplexity on prompt + continuation). The change is the mean over the
    /// requests of each one's change, as a budget class's mean in test mode is.
    Served { sequences: &'a [Vec<u32>] },
}

impl Text<'_> {
    fn tokens(&self) -> usize {
        match self {
            Text::Windows { tokens, .. } => tokens.len(),
            Text::Served { sequences } => sequences.iter().map(Vec::len).sum(),
        }
    }

    /// The context a decode step sees on average, for the bytes ceiling.
    fn context(&self) -> usize {
        match self {
            Text::Windows { window, .. } => *window,
            Text::Served { sequences } => self.tokens() / sequences.len().max(1),
        }
    }

    /// Perplexity per unit judged: one for all windows, one per request.
    fn perplexities(&self, m: &casrap_engine::Llama) -> Result<Vec<f64>> {
        match self {
            Text::Windows { tokens, window } => {
                let mut total = perplexity::Nll::default();
                for w in perplexity::windows(tokens, *window) {
                    total.add(perplexity::evaluate(m, w, *window, 1)?);
                }
                Ok(vec![total.perplexity()])
            }
            Text::Served { sequences } => sequences
                .iter()
                .map(|s| Ok(perplexity::evaluate(m, s, s.len(), 1)?.perplexity()))
                .collect(),
        }
    }
}

/// What to calibrate on and for.
pub struct Options<'a> {
    /// Names of the model and the text (for the record).
    pub model: &'a str,
    pub text: &'a str,
    /// Relative perplexity increases, tightest first.
    pub budgets: &'a [f64],
    pub kinds: &'a [ActionKind],
}

/// Measures every action of [`grid`] on `text` and fits each kind to each budget. An intensity
/// the model cannot take (too many layers) is left out.
pub fn run(
    setup: &mut Setup,
    text: &Text<'_>,
    o: &Options<'_>,
    mut progress: impl FnMut(&Point),
) -> Result<Calibration> {
    let Options { model, text: name, budgets, kinds } = *o;
    let (window, requests) = match text {
        Text::Windows { tokens, window } => {
            if tokens.len() < (*window).max(2) {
                return Err(Error::arg(
                    "text",
                    format!("{name}: {} tokens, fewer than one window of {window}", tokens.len()),
                ));
            }
            (*window, 0)
        }
        Text::Served { sequences } => {
            if sequences.is_empty() || sequences.iter().any(|s| s.len() < 2) {
                return Err(Error::arg(
                    "text",
                    format!("{name}: needs at least one request of two or more tokens"),
                ));
            }
            (0, sequences.len())
        }
    };
    setup.model.activate_dense();
    let dense = text.perplexities(&setup.model)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let context = text.context();
    let dense_bytes = bytes_at(setup, context);
    let mut points = Vec::new();
    let cfg = setup.model.config();
    for action in grid(kinds, cfg.num_layers, cfg.intermediate_size) {
        // A KV window as long as the context changes nothing on it.
        if matches!(action, Action::KvWindow { sinks, window: w } if sinks + w >= context) {
            continue;
        }
        if let Err(e) = setup.harness.cache.apply(&mut setup.model, &action) {
            tracing::info!(action = %action.label(), error = %e, "left out");
            continue;
        }
        let p = text.perplexities(&setup.model);
        let pruned_bytes = bytes_at(setup, context);
        setup.model.activate_dense();
        let p = p?;
        let changes: Vec<f64> = p.iter().zip(&dense).map(|(p, d)| (p - d) / d).collect();
        let point = Point {
            action: action.label(),
            kind: kind_of(&action),
            intensity: intensity_of(&action),
            perplexity: mean(&p),
            ppl_change: mean(&changes),
            ceiling: dense_bytes / pruned_bytes,
            action_value: Some(action),
        };
        progress(&point);
        points.push(point);
    }
    let fitted = fit(&points, budgets, kinds);
    Ok(Calibration {
        model: model.into(),
        text: name.into(),
        tokens: text.tokens(),
        window,
        requests,
        dense_perplexity: mean(&dense),
        budgets: budgets.to_vec(),
        points,
        fitted,
    })
}

/// Per budget and kind, the point with the highest ceiling whose perplexity change is within the
/// budget, the smaller change on a tie (none when even the mildest is over it).
pub fn fit(points: &[Point], budgets: &[f64], kinds: &[ActionKind]) -> Vec<Fitted> {
    let mut out = Vec::new();
    for &budget in budgets {
        for kind in kinds {
            let best = points.iter().filter(|p| p.kind == *kind && p.ppl_change <= budget).max_by(
                |a, b| a.ceiling.total_cmp(&b.ceiling).then(b.ppl_change.total_cmp(&a.ppl_change)),
            );
            if let Some(p) = best {
                if !out.iter().any(|f: &Fitted| f.action == p.action) {
                    out.push(Fitted {
                        budget,
                        kind: *kind,
                        action: p.action.clone(),
                        ppl_change: p.ppl_change,
                        ceiling: p.ceiling,
                    });
                }
            }
        }
    }
    out
}

impl Calibration {
    /// What the changes were measured on, in words.
    fn judged_on(&self) -> String {
        if self.requests > 0 {
            format!(
                "{} served requests of {}, prompt + dense continuation, {} tokens; changes are means over the requests, perplexities their means",
                self.requests, self.text, self.tokens
            )
        } else {
            format!("{} tokens of {}, windows of {}", self.tokens, self.text, self.window)
        }
    }

    /// The fitted actions as a run config's `actions:` list (`none` first).
    pub fn actions_yaml(&self) -> String {
        let mut s = format!(
            "# Fitted by `casrap-lab calibrate-actions` on {} ({}):\n\
             # per kind, the strongest intensity within each perplexity budget ({}).\nactions:\n  - {{kind: none}}\n",
            self.model,
            self.judged_on(),
            self.budgets.iter().map(|b| format!("+{:.0}%", b * 100.0)).collect::<Vec<_>>().join(", ")
        );
        for f in &self.fitted {
            let spec = self
                .points
                .iter()
                .find(|p| p.action == f.action)
                .and_then(|p| p.action_value.as_ref())
                .map(spec_of);
            if let Some(spec) = spec {
                let body = match (spec.intensity, spec.sinks, spec.window) {
                    (Some(i), _, _) => format!("intensity: {i}"),
                    (None, Some(s), Some(w)) => format!("sinks: {s}, window: {w}"),
                    _ => String::new(),
                };
                let kind = serde_json::to_value(spec.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                s += &format!(
                    "  - {{kind: {kind}, {body}}}   # {:+.1}% perplexity (budget +{:.0}%), ceiling {:.3}x\n",
                    f.ppl_change * 100.0,
                    f.budget * 100.0,
                    f.ceiling
                );
            }
        }
        s
    }

    /// Every intensity tried, then the fitted list.
    pub fn table(&self) -> String {
        let mut s = format!(
            "Calibration of {}: {}, dense perplexity {:.2}\n\n\
             | action | perplexity | change | bytes ceiling | within budget |\n|---|---|---|---|---|\n",
            self.model,
            self.judged_on(),
            self.dense_perplexity
        );
        for p in &self.points {
            let within = self
                .budgets
                .iter()
                .find(|&&b| p.ppl_change <= b)
                .map_or("-".to_string(), |b| format!("+{:.0}%", b * 100.0));
            s += &format!(
                "| {} | {:.2} | {:+.1}% | {:.3}x | {} |\n",
                p.action,
                p.perplexity,
                p.ppl_change * 100.0,
                p.ceiling,
                within
            );
        }
        s += "\nFitted (the strongest per kind within each budget; an action fitting several budgets is listed once, under the tightest):\n\n| budget | kind | action | change | bytes ceiling |\n|---|---|---|---|---|\n";
        for f in &self.fitted {
            s += &format!(
                "| +{:.0}% | {:?} | {} | {:+.1}% | {:.3}x |\n",
                f.budget * 100.0,
                f.kind,
                f.action,
                f.ppl_change * 100.0,
                f.ceiling
            );
        }
        s
    }
}

fn spec_of(a: &Action) -> ActionSpec {
    let mut draft_ngram = (None, None);
    let (kind, intensity, sinks, window) = match *a {
        Action::None => (ActionKind::None, None, None, None),
        Action::Sparsity { level } => (ActionKind::Sparsity, Some(level), None, None),
        Action::Lookup { draft, ngram } => {
            draft_ngram = (Some(draft), Some(ngram));
            (ActionKind::Lookup, None, None, None)
        }
        Action::SparseLookup { level, draft, ngram } => {
            draft_ngram = (Some(draft), Some(ngram));
            (ActionKind::Sparsity, Some(level), None, None)
        }
        Action::Heads { intensity } => (ActionKind::Heads, Some(intensity), None, None),
        Action::Ffn { intensity } => (ActionKind::Ffn, Some(intensity), None, None),
        Action::Layers { intensity } => (ActionKind::Layers, Some(intensity), None, None),
        Action::KvWindow { sinks, window } => {
            (ActionKind::KvWindow, None, Some(sinks), Some(window))
        }
    };
    ActionSpec { kind, intensity, sinks, window, draft: draft_ngram.0, ngram: draft_ngram.1 }
}
