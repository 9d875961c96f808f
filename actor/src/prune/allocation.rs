//! Uniform against greedy allocation of activation sparsity, level by level, on served requests.
//! For each level and allocation: each request's perplexity change (judged as `calibrate-actions
//! --served` judges, on prompt + dense continuation), and the share of the blocks' weight bytes
//! the decode kernel would skip on the decoded positions (the dense model's block inputs there
//! against the allocation's thresholds), so the two are compared at the bytes they actually
//! save, not only at the level they were fitted to. `casrap-lab calibrate-actions
//! --compare-allocation` prints the table and keeps the record.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::setup::Setup;
use casrap_common::action::Allocation;
use casrap_common::stats::{ci95, mean};
use casrap_engine::error::{Error, Result};
use casrap_engine::perplexity;

/// One allocation at one level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    /// Mean over the requests of each one's relative perplexity change.
    pub ppl_change: f64,
    /// Each request's change, in request order.
    pub changes: Vec<f64>,
    /// Share of the blocks' weight bytes skipped on the decoded positions.
    pub skipped: f64,
    /// Bytes read per decode step, dense over sparse (tied head and KV cache included).
    pub ceiling: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub level: f64,
    pub uniform: Side,
    pub greedy: Side,
    /// Greedy minus uniform, request by request: the mean change and its 95% half-width.
    pub diff: f64,
    pub diff_ci: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub model: String,
    pub text: String,
    pub requests: usize,
    pub tokens: usize,
    /// Decoded positions per request (the tail of each sequence) the skipped bytes are counted on.
    pub decoded: usize,
    /// Calibration tokens the greedy search measured block errors on.
    pub greedy_tokens: usize,
    pub rows: Vec<Row>,
}

/// Per layer, the elements of each block matrix's input and output (qkv, o, gate_up, down).
fn shapes(setup: &Setup) -> Vec<[(i64, i64); 4]> {
    setup
        .model
        .dense_blocks()
        .iter()
        .map(|b| {
            [b.qkv_weight(), b.o_weight(), b.gate_up_weight(), b.down_weight()].map(|w| {
                let s = w.size();
                (s[1], s[0])
            })
        })
        .collect()
}

/// Compares the two allocations at each of `levels` on `sequences` (prompt + dense continuation
/// of `decoded` tokens each). The thresholds must carry the greedy paths.
pub fn compare(
    setup: &mut Setup,
    names: (&str, &str),
    sequences: &[Vec<u32>],
    decoded: usize,
    levels: &[f64],
    mut progress: impl FnMut(&Row),
) -> Result<Comparison> {
    let thresholds = setup.harness.cache.sparsity.clone().ok_or_else(|| {
        Error::arg("sparsity", "no thresholds were fitted (the setup was opened without sparsity)")
    })?;
    let greedy_tokens = thresholds.greedy.as_ref().map(|g| g.tokens).ok_or_else(|| {
        Error::arg("sparsity", "the greedy allocation was not fitted for these thresholds")
    })?;
    if sequences.is_empty() || sequences.iter().any(|s| s.len() < decoded.max(2)) {
        return Err(Error::arg(
            "text",
            format!("{}: every request needs at least {} tokens", names.1, decoded.max(2)),
        ));
    }
    let allocations = [Allocation::Uniform, Allocation::Greedy];
    let sets: Vec<[Vec<[f32; 4]>; 2]> = levels
        .iter()
        .map(|&l| {
            let [u, g] = allocations.map(|a| thresholds.at(l, a).map(|s| s.thresholds));
            Ok([u?, g?])
        })
        .collect::<Result<_>>()?;

    // Skipped elements per (level, allocation), from the dense block inputs at decoded positions.
    let shapes = shapes(setup);
    let mut skipped = vec![[0.0f64; 2]; levels.len()];
    setup.model.activate_dense();
    for s in sequences {
        let ids: Vec<i64> = s.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::from_slice(&ids).view([1, -1]).to_device(setup.model.device());
        let t = s.len() as i64;
        for (layer, mats) in setup.model.input_magnitudes(&ids).into_iter().enumerate() {
            for (m, x) in mats.into_iter().enumerate() {
                let (inputs, outputs) = shapes[layer][m];
                let tail = x.view([t, inputs]).narrow(0, t - decoded as i64, decoded as i64);
                for (k, set) in sets.iter().enumerate() {
                    for a in 0..2 {
                        let below =
                            tail.lt(f64::from(set[a][layer][m])).sum(Kind::Int64).int64_value(&[]);
                        skipped[k][a] += below as f64 * outputs as f64;
                    }
                }
            }
        }
    }
    let per_step = (sequences.len() * decoded) as f64;
    let block_elements: f64 =
        shapes.iter().flatten().map(|(i, o)| (i * o) as f64).sum::<f64>() * per_step;
    let elt = setup.model.kind().elt_size_in_bytes() as f64;
    let context = sequences.iter().map(Vec::len).sum::<usize>() / sequences.len();
    let dense_bytes =
        (setup.model.weight_bytes_per_token() + setup.model.kv_bytes_per_token(context)) as f64;

    let perplexities = |setup: &Setup| -> Result<Vec<f64>> {
        sequences
            .iter()
            .map(|s| Ok(perplexity::evaluate(&setup.model, s, s.len(), 1)?.perplexity()))
            .collect()
    };
    let dense = perplexities(setup)?;
    let mut rows = Vec::with_capacity(levels.len());
    for (k, &level) in levels.iter().enumerate() {
        let mut sides = Vec::with_capacity(2);
        for (a, allocation) in allocations.into_iter().enumerate() {
            let label = format!("sparsity:{level}/{}", allocation.name());
            let id = setup.model.add_sparse_profile(&label, thresholds.at(level, allocation)?)?;
            setup.model.activate(id)?;
            let p = perplexities(setup);
            setup.model.activate_dense();
            setup.model.remove_profile(id)?;
            let changes: Vec<f64> = p?.iter().zip(&dense).map(|(p, d)| (p - d) / d).collect();
            let saved = skipped[k][a] / per_step * elt;
            sides.push(Side {
                ppl_change: mean(&changes),
                changes,
                skipped: skipped[k][a] / block_elements,
                ceiling: dense_bytes / (dense_bytes - saved),
            });
        }
        let greedy = sides.pop().expect("two sides");
        let uniform = sides.pop().expect("two sides");
        let diffs: Vec<f64> =
            greedy.changes.iter().zip(&uniform.changes).map(|(g, u)| g - u).collect();
        let row = Row { level, diff: mean(&diffs), diff_ci: ci95(&diffs), uniform, greedy };
        progress(&row);
        rows.push(row);
    }
    Ok(Comparison {
        model: names.0.into(),
        text: names.1.into(),
        requests: sequences.len(),
        tokens: sequences.iter().map(Vec::len).sum(),
        decoded,
        greedy_tokens,
        rows,
    })
}

impl Comparison {
    /// The side-by-side table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "Sparsity allocation, uniform against greedy (block errors on {} calibration tokens): \
             {}, {} served requests of {}, {} tokens, bytes skipped counted on each request's {} decoded positions\n\n\
             | level | uniform: change | skipped | ceiling | greedy: change | skipped | ceiling | greedy - uniform (95% CI) |\n\
             |---|---|---|---|---|---|---|---|\n",
            self.greedy_tokens, self.model, self.requests, self.text, self.tokens, self.decoded
        );
        for r in &self.rows {
            s += &format!(
                "| {} | {:+.1}% | {:.1}% | {:.3}x | {:+.1}% | {:.1}% | {:.3}x | {:+.1}% ± {:.1}% |\n",
                r.level,
                r.uniform.ppl_change * 100.0,
                r.uniform.skipped * 100.0,
                r.uniform.ceiling,
                r.greedy.ppl_change * 100.0,
                r.greedy.skipped * 100.0,
                r.greedy.ceiling,
                r.diff * 100.0,
                r.diff_ci * 100.0
            );
        }
        s
    }
}
