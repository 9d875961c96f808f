//! The state layout: the features every actor computes and the learner expects, each normalised
//! to [0, 1]. Changing the list or a feature's meaning bumps [`LAYOUT_VERSION`]; the learner refuses
//! actors of another version.

/// Version of the layout below.
pub const LAYOUT_VERSION: u32 = 3;

/// The features, in order: the seed's set, then (since version 2) the request's quality budget
/// class, its position among the run's classes scaled to [0, 1] (0: strictest, see
/// [`crate::budget::BudgetConfig::feature`]), then (since version 3) how much the prompt repeats
/// itself: the share of its positions that prompt lookup would have predicted from the text
/// before them ([`self_lookup_rate`]), which is what lookup's gain depends on. Telemetry ones come from [`crate::telemetry`]; where a
/// source is absent: battery 1 (no battery: mains power), GPU features 0 (no GPU or no NVML).
/// The complexity ones are normalised by the run's `state:` section ([`StateConfig`]).
pub const FEATURES: &[&str] = &[
    "cpu_utilisation",
    "memory_available",
    "battery",
    "gpu_present",
    "gpu_utilisation",
    "gpu_memory_free",
    "prompt_tokens",
    "prompt_perplexity",
    "complexity",
    "quality_budget",
    "prompt_repetition",
];

/// The longest n-gram [`self_lookup_rate`] matches (as the lookup actions do by default).
pub const REPETITION_NGRAM: usize = crate::action::DEFAULT_NGRAM;

/// The share of positions `i >= 1` of `tokens` that prompt lookup predicts from `tokens[..i]`:
/// the most recent earlier occurrence of the longest of the last `ngram..1` tokens is followed by
/// `tokens[i]`. 0 for fewer than two tokens.
pub fn self_lookup_rate(tokens: &[u32], ngram: usize) -> f32 {
    use std::collections::HashMap;
    let n_max = ngram.max(1);
    // Per n, each n-gram's most recent end (the index of the token after it).
    let mut ends: Vec<HashMap<&[u32], usize>> = vec![HashMap::new(); n_max];
    let mut hits = 0usize;
    for i in 1..tokens.len() {
        // The n-grams ending at i - 1 become earlier occurrences for position i.
        let e = i - 1;
        for n in 1..=n_max.min(e) {
            ends[n - 1].insert(&tokens[e - n..e], e);
        }
        for n in (1..=n_max.min(i)).rev() {
            if let Some(&at) = ends[n - 1].get(&tokens[i - n..i]) {
                hits += usize::from(tokens[at] == tokens[i]);
                break;
            }
        }
    }
    if tokens.len() < 2 {
        0.0
    } else {
        hits as f32 / (tokens.len() - 1) as f32
    }
}

use serde::{Deserialize, Serialize};

use crate::telemetry::Snapshot;

/// A prompt's complexity features, normalised by `cfg`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Complexity {
    pub tokens: usize,
    /// Non-finite in JSON as `null`, read back as NaN.
    #[serde(deserialize_with = "crate::json::nan_if_null")]
    pub perplexity: f64,
    /// `min(1, tokens / tokens_max)`.
    pub tokens_norm: f32,
    /// See [`PplScale`].
    pub perplexity_norm: f32,
    /// `w * tokens_norm + (1 - w) * perplexity_norm`.
    pub complexity: f32,
    /// [`self_lookup_rate`] of the prompt (absent in records of layout 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<f32>,
}

impl Complexity {
    pub fn new(tokens: usize, perplexity: f64, cfg: &StateConfig) -> Self {
        let tokens_norm = (tokens as f64 / cfg.tokens_max).clamp(0.0, 1.0);
        let p = if perplexity.is_finite() { perplexity.max(1.0) } else { cfg.ppl_max };
        let perplexity_norm = match cfg.ppl_scale {
            PplScale::Linear => (p / cfg.ppl_max).clamp(0.0, 1.0),
            PplScale::Log => (p.ln() / cfg.ppl_max.ln()).clamp(0.0, 1.0),
        };
        let w = cfg.complexity_token_weight;
        Self {
            tokens,
            perplexity,
            tokens_norm: tokens_norm as f32,
            perplexity_norm: perplexity_norm as f32,
            complexity: (w * tokens_norm + (1.0 - w) * perplexity_norm) as f32,
            repetition: None,
        }
    }

    /// The features of a prompt's `tokens`, its repetition included.
    pub fn of(tokens: &[u32], perplexity: f64, cfg: &StateConfig) -> Self {
        Self {
            repetition: Some(self_lookup_rate(tokens, REPETITION_NGRAM)),
            ..Self::new(tokens.len(), perplexity, cfg)
        }
    }
}

/// The state vector in [`FEATURES`] order, every value in [0, 1]; `budget` is the class's
/// feature.
pub fn vector(t: &Snapshot, c: &Complexity, budget: f32) -> Vec<f32> {
    let gpu = t.gpu.as_ref();
    let v = vec![
        t.cpu_utilisation,
        t.memory_available_fraction(),
        t.battery,
        f32::from(u8::from(gpu.is_some())),
        gpu.map_or(0.0, |g| g.utilisation),
        gpu.map_or(0.0, |g| g.memory_free_fraction()),
        c.tokens_norm,
        c.perplexity_norm,
        c.complexity,
        budget,
        c.repetition.unwrap_or(0.0),
    ];
    debug_assert_eq!(v.len(), FEATURES.len());
    v.into_iter().map(|x| if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }).collect()
}

/// How a prompt's perplexity is mapped to [0, 1].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PplScale {
    /// `min(1, ppl / max)` (the seed's, with max 50).
    Linear,
    /// `clamp(ln(ppl) / ln(max), 0, 1)`: spreads models whose prompt perplexities span decades.
    Log,
}

/// Normalisation of the complexity features (see `state::FEATURES`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `prompt_tokens = min(1, tokens / tokens_max)`.
    pub tokens_max: f64,
    pub ppl_scale: PplScale,
    /// Perplexity mapped to 1.
    pub ppl_max: f64,
    /// `complexity = w * prompt_tokens + (1 - w) * prompt_perplexity`.
    pub complexity_token_weight: f64,
}

impl Default for StateConfig {
    /// The embedded model's prompt perplexities run from about 100 to 2000 (median 304), so the
    /// seed's `min(1, ppl/50)` would be 1 for every prompt; a log scale up to 2000 spreads them.
    fn default() -> Self {
        Self {
            tokens_max: 200.0,
            ppl_scale: PplScale::Log,
            ppl_max: 2000.0,
            complexity_token_weight: 0.6,
        }
    }
}

impl StateConfig {
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if !(self.tokens_max.is_finite() && self.tokens_max > 0.0) {
            return Err("state.tokens_max: must be positive".into());
        }
        if !(self.ppl_max.is_finite() && self.ppl_max > 1.0) {
            return Err("state.ppl_max: must be above 1".into());
        }
        if !(0.0..=1.0).contains(&self.complexity_token_weight) {
            return Err("state.complexity_token_weight: must be in [0, 1]".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_lookup_rate_counts_what_lookup_predicts() {
        assert_eq!(self_lookup_rate(&[], 3), 0.0);
        assert_eq!(self_lookup_rate(&[7], 3), 0.0);
        // Nothing repeats: nothing is predicted.
        assert_eq!(self_lookup_rate(&[1, 2, 3, 4, 5], 3), 0.0);
        // 1 2 3 1 2 3: positions 4 and 5 are predicted ("1" was followed by 2, "1 2" by 3);
        // position 3 follows "3", which had not occurred before: 2 of 5.
        let r = self_lookup_rate(&[1, 2, 3, 1, 2, 3], 3);
        assert!((r - 2.0 / 5.0).abs() < 1e-6, "{r}");
        // The longest match decides: at the last position "8 1" was followed by 9 and "1" most
        // recently by 2; the bigram's 9 is right, so it counts (the unigram alone would miss).
        let r = self_lookup_rate(&[8, 1, 9, 1, 2, 8, 1, 9], 3);
        let r1 = self_lookup_rate(&[8, 1, 9, 1, 2, 8, 1, 9], 1);
        assert!(r > r1, "{r} vs {r1}");
        // A long repeated text is almost all predicted.
        let long: Vec<u32> = (0..50).chain(0..50).collect();
        assert!(self_lookup_rate(&long, 3) > 0.45);
    }
}
