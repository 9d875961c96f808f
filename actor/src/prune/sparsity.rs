//! Activation sparsity's thresholds (TEAL's training-free recipe): for every layer and each of
//! its block matrices (the inputs of qkv, o, gate_up and down), the distribution of |input| over
//! calibration text. The threshold of sparsity `s` is that distribution's `s`-quantile, so about
//! a share `s` of each matrix's inputs fall below it and their weight rows are skipped (uniform
//! allocation: every matrix at the same level).
//!
//! The distributions are kept as histograms of the f32 bit pattern (64 bins per octave, 1.1%
//! wide), so memory does not grow with the calibration text and the same text gives the same
//! thresholds bit for bit. They are saved as JSON keyed by the model's identity and the
//! calibration data, like the importances; a file made for another model is refused.
//!
//! Greedy allocation (TEAL's block-wise search, [`Thresholds::fit_greedy`]) shares a level
//! unevenly among a block's matrices: starting from no sparsity, each step raises the one matrix
//! whose raise (by a fixed share of the block's weight bytes) costs the block's output the least
//! error on calibration text. The path each block took is kept in the same file, so a level
//! reads its per-matrix shares off the path.

use std::path::{Path, PathBuf};

use casrap_common::action::{Allocation, MAX_SPARSITY};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use casrap_engine::error::{Error, Result};
use casrap_engine::model::Sparsity;
use casrap_engine::Llama;

/// Fewest calibration tokens thresholds are fitted on.
pub const MIN_TOKENS: usize = 256;
/// Most calibration tokens the greedy allocation measures block errors on (each step of its
/// search runs a block four times over them).
pub const GREEDY_TOKENS: usize = 512;
/// The share of a block's weight bytes each step of the greedy search adds.
pub const GREEDY_STEP: f64 = 0.01;

/// Mantissa bits kept per bin: 2^6 = 64 bins per octave.
const SHIFT: u32 = 17;
/// Magnitudes from 2^-24 up to 2^16 get their own bins; smaller ones share bin 0, larger the last.
const LOW_EXP: i32 = -24;
const HIGH_EXP: i32 = 16;
const BINS: usize = ((HIGH_EXP - LOW_EXP) as usize) << (23 - SHIFT);

fn low_bits() -> u32 {
    (2f32.powi(LOW_EXP)).to_bits() >> SHIFT
}

fn bin_of(v: f32) -> usize {
    let b = (v.abs().to_bits() >> SHIFT).saturating_sub(low_bits()) as usize;
    b.min(BINS - 1)
}

/// Lower edge of bin `b`.
fn edge(b: usize) -> f32 {
    f32::from_bits((b as u32 + low_bits()) << SHIFT)
}

/// Counts of |x| per bin for one matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
}

impl Histogram {
    fn new() -> Self {
        Self { counts: vec![0; BINS] }
    }

    fn add(&mut self, values: &[f32]) {
        for &v in values {
            self.counts[bin_of(v)] += 1;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile: the bin where the cumulative count reaches `q * total`, interpolated
    /// linearly inside it. 0 for `q <= 0`.
    pub fn quantile(&self, q: f64) -> f32 {
        let total = self.total();
        if q <= 0.0 || total == 0 {
            return 0.0;
        }
        let target = q * total as f64;
        let mut below = 0u64;
        for (b, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= target {
                let frac = ((target - below as f64) / c as f64).clamp(0.0, 1.0);
                let (lo, hi) = (edge(b) as f64, edge(b + 1) as f64);
                return (lo + frac * (hi - lo)) as f32;
            }
            below += c;
        }
        edge(BINS)
    }
}

/// The calibrated |input| distributions of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// The model's identity (see [`super::importance::model_identity`]).
    pub model: String,
    /// What the distributions were measured on.
    pub source: String,
    pub tokens: usize,
    /// `[layer][matrix]`, matrices in the order qkv, o, gate_up, down.
    pub histograms: Vec<[Histogram; 4]>,
    /// The greedy allocation's paths, once fitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greedy: Option<Greedy>,
}

/// The greedy search's outcome: per layer, the points it passed through, each the block's level
/// (the share of its matrices' weight bytes skipped) and each matrix's level then (qkv, o,
/// gate_up, down), from 0 up to every matrix at [`MAX_SPARSITY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greedy {
    /// Calibration tokens the block errors were measured on.
    pub tokens: usize,
    /// The share of a block's bytes each step added.
    pub step: f64,
    pub paths: Vec<Vec<(f64, [f64; 4])>>,
}

impl Greedy {
    /// Each matrix's level in layer `layer` at block level `level`, interpolated linearly
    /// between the two points of the path around it.
    pub fn levels(&self, layer: usize, level: f64) -> [f64; 4] {
        let path = &self.paths[layer];
        let i = path.partition_point(|(l, _)| *l < level);
        if i == 0 {
            return path.first().map_or([0.0; 4], |p| p.1);
        }
        let Some(&(hi, upper)) = path.get(i) else {
            return path[i - 1].1;
        };
        let (lo, lower) = path[i - 1];
        let f = if hi > lo { (level - lo) / (hi - lo) } else { 1.0 };
        std::array::from_fn(|m| lower[m] + f * (upper[m] - lower[m]))
    }
}

/// The share of a block's weight bytes skipped at per-matrix levels `s`, matrices weighing `w`.
fn block_level(s: &[f64; 4], w: &[f64; 4]) -> f64 {
    s.iter().zip(w).map(|(s, w)| s * w).sum::<f64>() / w.iter().sum::<f64>()
}

/// Weight elements of each block matrix of `layer` (qkv, o, gate_up, down).
fn matrix_weights(model: &Llama, layer: usize) -> [f64; 4] {
    let b = &model.dense_blocks()[layer];
    [b.qkv_weight(), b.o_weight(), b.gate_up_weight(), b.down_weight()].map(|t| t.numel() as f64)
}

impl Thresholds {
    /// Measures the distributions on `windows` of token ids (dense model).
    pub fn calibrate(
        model: &Llama,
        identity: &str,
        windows: &[Vec<u32>],
        description: &str,
    ) -> Result<Self> {
        let usable: Vec<&Vec<u32>> = windows.iter().filter(|w| !w.is_empty()).collect();
        let tokens: usize = usable.iter().map(|w| w.len()).sum();
        if tokens < MIN_TOKENS {
            return Err(Error::arg(
                "calibration",
                format!(
                    "{description}: {tokens} tokens; activation sparsity's thresholds need at least {MIN_TOKENS}"
                ),
            ));
        }
        let layers = model.config().num_layers;
        let mut histograms: Vec<[Histogram; 4]> =
            (0..layers).map(|_| std::array::from_fn(|_| Histogram::new())).collect();
        for w in usable {
            let ids: Vec<i64> = w.iter().map(|&t| i64::from(t)).collect();
            let ids = Tensor::from_slice(&ids).view([1, -1]).to_device(model.device());
            for (h, mats) in histograms.iter_mut().zip(model.input_magnitudes(&ids)) {
                for (h, m) in h.iter_mut().zip(mats) {
                    let v = Vec::<f32>::try_from(&m.contiguous()).map_err(|e| {
                        Error::arg("calibration", format!("reading activations: {e}"))
                    })?;
                    h.add(&v);
                }
            }
        }
        Ok(Self {
            model: identity.into(),
            source: description.into(),
            tokens,
            histograms,
            greedy: None,
        })
    }

    /// Runs the greedy search on (at most [`GREEDY_TOKENS`] of) `windows`, the equal-length
    /// windows of token ids the distributions were measured on, each step adding `step` of a
    /// block's bytes ([`GREEDY_STEP`] for use; coarser steps only for tests), and keeps its paths.
    pub fn fit_greedy(&mut self, model: &Llama, windows: &[Vec<u32>], step: f64) -> Result<()> {
        if !(step > 0.0 && step <= 0.5) {
            return Err(Error::arg(
                "greedy allocation",
                format!("step {step} is outside (0, 0.5]"),
            ));
        }
        let seq = windows.first().map_or(0, Vec::len);
        let take = (GREEDY_TOKENS / seq.max(1)).max(1);
        let used: Vec<&Vec<u32>> =
            windows.iter().filter(|w| w.len() == seq && seq > 0).take(take).collect();
        let tokens = used.len() * seq;
        if tokens < MIN_TOKENS.min(GREEDY_TOKENS) {
            return Err(Error::arg(
                "calibration",
                format!(
                    "{}: {tokens} tokens in windows of equal length; the greedy allocation needs at least {MIN_TOKENS}",
                    self.source
                ),
            ));
        }
        let ids: Vec<i64> = used.iter().flat_map(|w| w.iter().map(|&t| i64::from(t))).collect();
        let ids = Tensor::from_slice(&ids)
            .view([used.len() as i64, seq as i64])
            .to_device(model.device());
        let mut paths = Vec::with_capacity(self.histograms.len());
        let histograms = &self.histograms;
        model.block_errors(&ids, |layer, error| {
            let w = matrix_weights(model, layer);
            let total: f64 = w.iter().sum();
            let thresholds = |s: &[f64; 4]| -> [f32; 4] {
                std::array::from_fn(|m| histograms[layer][m].quantile(s[m]))
            };
            let mut s = [0.0; 4];
            let mut err = 0.0;
            let mut path = vec![(0.0, s)];
            loop {
                let now = block_level(&s, &w);
                // Per candidate: the error it adds per unit of block level it gains.
                let best = (0..4)
                    .filter(|&m| s[m] < MAX_SPARSITY)
                    .map(|m| {
                        let mut c = s;
                        c[m] = (s[m] + step * total / w[m]).min(MAX_SPARSITY);
                        let e = error(&thresholds(&c));
                        let gain = block_level(&c, &w) - now;
                        (c, e, (e - err) / gain)
                    })
                    .min_by(|a, b| a.2.total_cmp(&b.2));
                let Some((c, e, _)) = best else { break };
                s = c;
                err = e;
                path.push((block_level(&s, &w), s));
            }
            tracing::debug!(layer, steps = path.len(), "greedy allocation");
            paths.push(path);
        });
        self.greedy = Some(Greedy { tokens, step, paths });
        Ok(())
    }

    /// The thresholds of sparsity `level` under `allocation`; `level` 0 keeps every input.
    /// Greedy allocation needs [`Thresholds::fit_greedy`] first.
    pub fn at(&self, level: f64, allocation: Allocation) -> Result<Sparsity> {
        if !(level.is_finite() && (0.0..=MAX_SPARSITY).contains(&level)) {
            return Err(Error::arg("sparsity", format!("{level} is outside [0, {MAX_SPARSITY}]")));
        }
        let thresholds = match allocation {
            Allocation::Uniform => {
                self.histograms.iter().map(|h| h.each_ref().map(|h| h.quantile(level))).collect()
            }
            Allocation::Greedy => {
                let g = self.greedy.as_ref().ok_or_else(|| {
                    Error::arg(
                        "sparsity",
                        "the greedy allocation was not fitted for these thresholds",
                    )
                })?;
                let levels = (0..self.histograms.len()).map(|l| g.levels(l, level));
                self.histograms
                    .iter()
                    .zip(levels)
                    .map(|(h, s)| std::array::from_fn(|m| h[m].quantile(s[m])))
                    .collect()
            }
        };
        Ok(Sparsity { level, thresholds })
    }

    /// Checks the shape against `model`.
    pub fn check(&self, model: &Llama, path: &Path) -> Result<()> {
        let bad =
            |why: String| Error::Config { path: path.into(), field: "histograms", reason: why };
        if self.histograms.len() != model.config().num_layers {
            return Err(bad(format!(
                "{} layers, the model has {}",
                self.histograms.len(),
                model.config().num_layers
            )));
        }
        if self.histograms.iter().flatten().any(|h| h.counts.len() != BINS) {
            return Err(bad(format!("expected {BINS} bins per histogram")));
        }
        if let Some(g) = &self.greedy {
            let bad_path = |p: &Vec<(f64, [f64; 4])>| {
                p.is_empty()
                    || p.windows(2).any(|w| w[0].0 > w[1].0)
                    || p.iter()
                        .flat_map(|(l, s)| std::iter::once(l).chain(s))
                        .any(|v| !(v.is_finite() && (0.0..=MAX_SPARSITY + 1e-9).contains(v)))
            };
            if g.paths.len() != self.histograms.len() || g.paths.iter().any(bad_path) {
                return Err(Error::Config {
                    path: path.into(),
                    field: "greedy",
                    reason: "a greedy path per layer, its levels rising within [0, 0.9]".into(),
                });
            }
        }
        Ok(())
    }

    /// Reads a saved file, checked against `model` and `identity`.
    pub fn load(path: &Path, model: &Llama, identity: &str) -> Result<Self> {
        let t: Self = super::cache_file::read(path)?;
        if t.model != identity {
            return Err(Error::Config {
                path: path.into(),
                field: "model",
                reason: format!(
                    "the thresholds are for {}, not {identity} (delete the file to recompute)",
                    t.model
                ),
            });
        }
        t.check(model, path)?;
        Ok(t)
    }

    /// Writes the file atomically (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        super::cache_file::write(self, path)
    }

    /// Loads `path` when it exists (a file for another model, or a damaged one, is an error
    /// naming it); otherwise measures with `make` and saves the result there.
    pub fn load_or(
        path: &Path,
        model: &Llama,
        identity: &str,
        make: impl FnOnce() -> Result<Self>,
    ) -> Result<(Self, bool)> {
        if path.is_file() {
            return Ok((Self::load(path, model, identity)?, true));
        }
        let t = make()?;
        t.save(path)?;
        Ok((t, false))
    }
}

/// Where a model's thresholds for one calibration set are cached.
pub fn cache_path(dir: &Path, identity: &str, key: u64) -> PathBuf {
    dir.join("sparsity").join(format!("{identity}-{key:016x}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_ordered_and_quantiles_interpolate() {
        let mut last = 0;
        for v in [1e-9f32, 1e-6, 0.001, 0.01, 0.5, 1.0, 1.01, 3.0, 1e3, 1e9] {
            let b = bin_of(v);
            assert!(b >= last, "{v}");
            last = b;
            if v > 1e-7 && v < 6e4 {
                assert!(edge(b) <= v && v < edge(b + 1), "{v} in [{}, {})", edge(b), edge(b + 1));
            }
        }
        let mut h = Histogram::new();
        let values: Vec<f32> = (1..=1000).map(|i| i as f32 / 1000.0).collect();
        h.add(&values);
        assert_eq!(h.quantile(0.0), 0.0);
        for q in [0.1, 0.25, 0.5, 0.9] {
            let got = h.quantile(q) as f64;
            assert!((got - q).abs() < 0.015 * q, "q {q}: {got}");
        }
        assert!(h.quantile(1.0) >= 1.0);
    }
}
