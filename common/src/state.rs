//! The state layout: the features every actor computes and the learner expects, each normalised
//! to [0, 1]. Changing the list or a feature's meaning bumps [`LAYOUT_VERSION`]; the learner refuses
//! actors of another version.

/// Version of the layout below.
pub const LAYOUT_VERSION: u32 = 2;

/// The features, in order: the seed's set, then (since version 2) the request's quality budget
/// class, its position among the run's classes scaled to [0, 1] (0: strictest, see
/// [`crate::budget::BudgetConfig::feature`]). Telemetry ones come from [`crate::telemetry`]; where a
/// source is absent: battery 1 (no battery: mains power), GPU features 0 (no GPU or no NVML).
/// The complexity ones are normalised by the run's `state:` section ([`crate::config::StateConfig`]).
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
];

use crate::config::{PplScale, StateConfig};
use crate::telemetry::Snapshot;

/// A prompt's complexity features, normalised by `cfg`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Complexity {
    pub tokens: usize,
    /// Non-finite in JSON as `null`, read back as NaN.
    #[serde(deserialize_with = "crate::record::nan_if_null")]
    pub perplexity: f64,
    /// `min(1, tokens / tokens_max)`.
    pub tokens_norm: f32,
    /// See [`PplScale`].
    pub perplexity_norm: f32,
    /// `w * tokens_norm + (1 - w) * perplexity_norm`.
    pub complexity: f32,
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
    ];
    debug_assert_eq!(v.len(), FEATURES.len());
    v.into_iter().map(|x| if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 }).collect()
}
