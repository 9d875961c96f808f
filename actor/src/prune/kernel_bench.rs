//! The decode kernels side by side, on one model in one process (`casrap-lab bench-kernels`):
//!
//! - a verification pass over `k` positions against one decode step, at the same cache position
//!   (each is rolled back after it is timed), alternating which goes first;
//! - sparse decode at each sparsity level against dense decode, step by step in turn on their own
//!   caches (as episodes time actions), with the weight bytes each side's kernel read;
//! - dense decode against its bandwidth ceiling (a large reduction timed before and after).
//!
//! The record keeps every timing; [`table`] renders it, so the table can be reprinted from the
//! record alone.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::prune::sparsity::Thresholds;
use casrap_common::action::Allocation;
use casrap_engine::bandwidth::BandwidthProbe;
use casrap_engine::error::{Error, Result};
use casrap_engine::generate::{self, synchronize};
use casrap_engine::model::ProfileId;
use casrap_engine::{KvCache, Llama, Logits};

/// What to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Positions per verification pass.
    pub ks: Vec<usize>,
    /// Rounds of (step, pass) per `k`.
    pub rounds: usize,
    /// Sparsity levels.
    pub levels: Vec<f64>,
    /// Decode steps per side per level.
    pub steps: usize,
    /// How each level is shared among a block's matrices.
    #[serde(default)]
    pub allocation: Allocation,
}

/// One `k`: every round's step and pass seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyCase {
    pub k: usize,
    pub step_s: Vec<f64>,
    pub pass_s: Vec<f64>,
}

/// One sparsity level: every step's seconds, `[dense, sparse]`, and the bytes each read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SparseCase {
    pub level: f64,
    pub steps: Vec<[f64; 2]>,
    /// Weight bytes per decoded token as the kernels counted them.
    pub dense_weight_bytes: f64,
    pub sparse_weight_bytes: f64,
    /// K/V bytes one step reads at the mean context (both sides).
    pub kv_bytes: f64,
}

/// The raw record of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub model: String,
    pub dtype: String,
    pub threads: usize,
    pub prompt_tokens: usize,
    pub options: Options,
    /// Read bandwidth (bytes/s) before and after the measurements.
    pub bandwidth: [f64; 2],
    /// Weight bytes of one dense step (LM head included) and of the input-major copies the sparse
    /// kernel reads.
    pub dense_weight_bytes: usize,
    pub input_major_bytes: usize,
    pub verify: Vec<VerifyCase>,
    pub sparse: Vec<SparseCase>,
}

fn median(v: &[f64]) -> f64 {
    casrap_common::stats::median(v)
}

fn timed<T>(device: tch::Device, f: impl FnOnce() -> T) -> (T, f64) {
    synchronize(device);
    let t = Instant::now();
    let out = f();
    synchronize(device);
    (out, t.elapsed().as_secs_f64())
}

fn argmax(logits: &tch::Tensor) -> u32 {
    logits.reshape([-1]).argmax(-1, false).int64_value(&[]) as u32
}

/// Runs every measurement of `o` on `model` (dense profile active) after `prompt`.
pub fn run(
    model: &mut Llama,
    describe: &str,
    dtype: &str,
    thresholds: &Thresholds,
    prompt: &[u32],
    o: &Options,
) -> Result<Record> {
    let kmax = o.ks.iter().copied().max().unwrap_or(1);
    if o.ks.iter().any(|&k| k == 0 || k > casrap_engine::model::MAX_VERIFY) || o.rounds == 0 {
        return Err(Error::arg("bench-kernels", "each k in 1..=16 and at least one round"));
    }
    if prompt.len() + o.steps.max(kmax) + 2 > model.config().max_position_embeddings {
        return Err(Error::arg("bench-kernels", "the prompt leaves no room to decode"));
    }
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let probe = BandwidthProbe::new(device);
    let before = probe.measure(5);
    model.activate_dense();
    let dense_weight_bytes = model.weight_bytes_per_token();
    let ids = generate::token_batch(prompt, device);
    let step = |model: &Llama, cache: &mut KvCache, token: u32| {
        model.forward(&generate::token_batch(&[token], device), cache, Logits::Last)
    };

    // Verification passes against single steps at one position.
    let mut verify = Vec::new();
    let mut cache = model.new_cache(1, prompt.len() + kmax + 1);
    let first = argmax(&model.forward(&ids, &mut cache, Logits::Last));
    let at = cache.len();
    let tokens: Vec<u32> = generate::generate(
        model,
        prompt,
        &generate::GenerateOptions {
            max_new_tokens: kmax,
            sampling: casrap_engine::sampling::Sampling::Greedy,
            ignore_eos: true,
        },
    )?
    .tokens;
    for &k in &o.ks {
        let (mut step_s, mut pass_s) = (Vec::new(), Vec::new());
        for round in 0..o.rounds + 1 {
            let (mut s1, mut s2) = (0.0, 0.0);
            for first_pass in [round % 2 == 1, round % 2 == 0] {
                if first_pass {
                    let (r, s) = timed(device, || model.verify(&tokens[..k], &mut cache));
                    let _ = r?;
                    s2 = s;
                } else {
                    let (_, s) = timed(device, || step(model, &mut cache, first));
                    s1 = s;
                }
                cache.truncate(at);
            }
            // Round 0 warms both up.
            if round > 0 {
                step_s.push(s1);
                pass_s.push(s2);
            }
        }
        verify.push(VerifyCase { k, step_s, pass_s });
    }

    // Sparse against dense, step by step in turn.
    let mut sparse = Vec::new();
    let context = prompt.len() + o.steps / 2;
    let kv_bytes = model.kv_bytes_per_token(context) as f64;
    for &level in &o.levels {
        let id = model.add_sparse_profile(
            &format!("sparsity:{level}"),
            thresholds.at(level, o.allocation)?,
        )?;
        let sides = [ProfileId::DENSE, id];
        let mut caches: Vec<KvCache> = Vec::new();
        let mut last = [0u32; 2];
        for (k, &side) in sides.iter().enumerate() {
            model.activate(side)?;
            let mut c = model.new_cache(1, prompt.len() + o.steps + 2);
            last[k] = argmax(&model.forward(&ids, &mut c, Logits::Last));
            // Warm-up step.
            last[k] = argmax(&step(model, &mut c, last[k]));
            caches.push(c);
        }
        let reads: Vec<Option<(u64, u64)>> = sides.iter().map(|&s| model.decode_reads(s)).collect();
        let mut steps = Vec::with_capacity(o.steps);
        for i in 0..o.steps {
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            let mut s = [0.0; 2];
            for k in order {
                model.activate(sides[k])?;
                let (logits, secs) = timed(device, || step(model, &mut caches[k], last[k]));
                last[k] = argmax(&logits);
                s[k] = secs;
            }
            steps.push(s);
        }
        let per = |k: usize| -> f64 {
            match (reads[k], model.decode_reads(sides[k])) {
                (Some((b0, p0)), Some((b1, p1))) if p1 > p0 => (b1 - b0) as f64 / (p1 - p0) as f64,
                _ => f64::NAN,
            }
        };
        let (dense_b, sparse_b) = (per(0), per(1));
        model.activate_dense();
        model.remove_profile(id)?;
        sparse.push(SparseCase {
            level,
            steps,
            dense_weight_bytes: dense_b,
            sparse_weight_bytes: sparse_b,
            kv_bytes,
        });
    }
    let after = probe.measure(5);
    Ok(Record {
        model: describe.into(),
        dtype: dtype.into(),
        threads: casrap_engine::gemv::threads(),
        prompt_tokens: prompt.len(),
        options: o.clone(),
        bandwidth: [before, after],
        dense_weight_bytes,
        input_major_bytes: model.input_major_bytes(),
        verify,
        sparse,
    })
}

/// The record as tables: verification cost in decode steps, sparse decode speedup against its
/// bytes ceiling, and dense decode against the bandwidth ceiling.
pub fn table(r: &Record) -> String {
    let mut s = format!(
        "{} ({}), {} threads, prompt of {} tokens; read bandwidth {:.1} / {:.1} GB/s before / after\n\n",
        r.model,
        r.dtype,
        r.threads,
        r.prompt_tokens,
        r.bandwidth[0] / 1e9,
        r.bandwidth[1] / 1e9
    );
    s += "| verification pass | step ms (median) | pass ms (median) | pass / step (median of rounds) | goal |\n|---|---|---|---|---|\n";
    for v in &r.verify {
        let ratios: Vec<f64> = v.step_s.iter().zip(&v.pass_s).map(|(a, b)| b / a).collect();
        s += &format!(
            "| k = {} | {:.2} | {:.2} | {:.2} | {} |\n",
            v.k,
            median(&v.step_s) * 1e3,
            median(&v.pass_s) * 1e3,
            median(&ratios),
            if v.k == 9 { "<= 1.30" } else { "" }
        );
    }
    s += "\n| sparsity | dense ms/step | sparse ms/step | speedup (median of step ratios) | bytes ceiling | speedup / ceiling |\n|---|---|---|---|---|---|\n";
    for c in &r.sparse {
        let ratios: Vec<f64> = c.steps.iter().map(|[d, p]| d / p).collect();
        let speedup = median(&ratios);
        let ceiling = (c.dense_weight_bytes + c.kv_bytes) / (c.sparse_weight_bytes + c.kv_bytes);
        s += &format!(
            "| {:.2} | {:.2} | {:.2} | {:.3}x | {:.3}x | {:.2} |\n",
            c.level,
            median(&c.steps.iter().map(|x| x[0]).collect::<Vec<_>>()) * 1e3,
            median(&c.steps.iter().map(|x| x[1]).collect::<Vec<_>>()) * 1e3,
            speedup,
            ceiling,
            speedup / ceiling
        );
    }
    let dense: Vec<f64> = r.sparse.iter().flat_map(|c| c.steps.iter().map(|x| x[0])).collect();
    if let Some(c) = r.sparse.first() {
        let bw = r.bandwidth[0].min(r.bandwidth[1]).max(1.0);
        let ceiling = bw / (r.dense_weight_bytes as f64 + c.kv_bytes);
        let measured = 1.0 / median(&dense);
        s += &format!(
            "\nDense decode: {measured:.1} tokens/s; bandwidth ceiling {ceiling:.1} tokens/s (the lower bandwidth over {:.1} MB a step): {:.0}% of it\n",
            (r.dense_weight_bytes as f64 + c.kv_bytes) / 1e6,
            100.0 * measured / ceiling
        );
    }
    s += &format!(
        "Memory: the input-major copies the sparse kernel reads hold {:.1} MB beside {:.1} MB of dense weights read per step\n",
        r.input_major_bytes as f64 / 1e6,
        r.dense_weight_bytes as f64 / 1e6
    );
    s
}
