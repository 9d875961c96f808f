//! Training a small LLaMA with the engine's own model code ([`Llama::from_weights`]) and autograd.
//!
//! Mixed precision as on a GPU, done by hand because tch exposes no CPU autocast: the parameters
//! and AdamW's state stay in f32; each step casts them to bf16 (a differentiable cast, so the
//! gradients arrive in f32), runs the bf16 model, and takes the loss in f32. On CPUs with bf16 dot
//! products this doubles the step rate over f32.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tch::nn::{self, Init, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::block::LayerWeights;
use crate::error::{Error, Result, TorchContext};
use crate::model::{Logits, Weights};
use crate::{Config, Llama};

/// Optimisation settings. Defaults are what the committed model was trained with.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOptions {
    pub seed: u64,
    pub steps: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Tokens per sequence (the context the model is trained for).
    pub seq_len: usize,
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    pub warmup_steps: usize,
    /// Decoupled weight decay on matrices (norm weights are not decayed).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this.
    pub grad_clip: f64,
    /// Compute dtype of the forward/backward pass (`bf16` mixed precision or `f32`).
    pub compute: &'static str,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 850,
            batch: 16,
            seq_len: 256,
            lr: 2e-3,
            min_lr: 2e-4,
            warmup_steps: 50,
            weight_decay: 0.1,
            grad_clip: 1.0,
            compute: "bf16",
        }
    }
}

/// One logged step.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub elapsed_s: f64,
}

/// The learning rate at `step`: linear warm-up, then cosine decay to `min_lr`.
pub fn learning_rate(o: &TrainOptions, step: usize) -> f64 {
    if step < o.warmup_steps {
        return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
    }
    let span = (o.steps - o.warmup_steps).max(1) as f64;
    let progress = ((step - o.warmup_steps) as f64 / span).min(1.0);
    o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Parameters in f32, registered with a VarStore (group 0: decayed matrices, group 1: norms).
pub struct Params {
    pub vs: nn::VarStore,
    pub weights: Weights,
}

impl Params {
    /// GPT-2/LLaMA style init: N(0, 0.02), output projections scaled by 1/sqrt(2 * layers), norms 1.
    /// Drawn from torch's generator, which [`train`] seeds.
    pub fn init(cfg: &Config) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let norms = vs.root().set_group(1);
        let (d, f, v) =
            (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
        let qkv_rows = ((cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim) as i64;
        let attn_width = (cfg.num_heads * cfg.head_dim) as i64;
        let std = 0.02;
        let out_std = std / (2.0 * cfg.num_layers as f64).sqrt();
        let randn = |stdev| Init::Randn { mean: 0.0, stdev };
        let embed = root.var("embed", &[v, d], randn(std));
        let lm_head = (!cfg.tie_word_embeddings).then(|| root.var("lm_head", &[v, d], randn(std)));
        let layers = (0..cfg.num_layers)
            .map(|i| LayerWeights {
                input_norm: norms.var(&format!("l{i}_input_norm"), &[d], Init::Const(1.0)),
                qkv: root.var(&format!("l{i}_qkv"), &[qkv_rows, d], randn(std)),
                o: root.var(&format!("l{i}_o"), &[d, attn_width], randn(out_std)),
                post_norm: norms.var(&format!("l{i}_post_norm"), &[d], Init::Const(1.0)),
                gate_up: root.var(&format!("l{i}_gate_up"), &[2 * f, d], randn(std)),
                down: root.var(&format!("l{i}_down"), &[d, f], randn(out_std)),
            })
            .collect();
        let norm = norms.var("norm", &[d], Init::Const(1.0));
        Self { vs, weights: Weights { embed, lm_head, layers, norm } }
    }
}

/// Draws `batch` windows of `seq_len + 1` tokens at random offsets of `stream`.
fn sample_batch(stream: &[u16], batch: usize, seq_len: usize, rng: &mut SmallRng) -> Tensor {
    let mut flat = Vec::with_capacity(batch * (seq_len + 1));
    for _ in 0..batch {
        let start = rng.gen_range(0..stream.len() - seq_len);
        flat.extend(stream[start..start + seq_len + 1].iter().map(|&t| i64::from(t)));
    }
    Tensor::from_slice(&flat).view([batch as i64, seq_len as i64 + 1])
}

/// Mean next-token cross-entropy of `model` on `windows` (`[B, T+1]`).
pub fn lm_loss(model: &Llama, windows: &Tensor) -> Tensor {
    let (b, t1) = (windows.size()[0], windows.size()[1]);
    let inputs = windows.narrow(1, 0, t1 - 1);
    let targets = windows.narrow(1, 1, t1 - 1).reshape([-1]);
    let mut cache = model.new_cache(b as usize, (t1 - 1) as usize);
    let logits = model.forward(&inputs, &mut cache, Logits::All);
    logits.to_kind(Kind::Float).view([b * (t1 - 1), -1]).cross_entropy_for_logits(&targets)
}

/// Trains a model of shape `cfg` on the token `stream` (documents joined, each `<s> … </s>`).
/// `progress` sees every step's log. Returns the f32 parameters and the log.
pub fn train(
    cfg: &Config,
    stream: &[u16],
    o: &TrainOptions,
    mut progress: impl FnMut(&StepLog, Duration),
) -> Result<(Params, Vec<StepLog>)> {
    if stream.len() <= o.seq_len + 1 {
        return Err(Error::arg(
            "corpus",
            format!("{} tokens is too few for sequences of {}", stream.len(), o.seq_len),
        ));
    }
    if o.steps == 0 || o.batch == 0 || o.warmup_steps == 0 {
        return Err(Error::arg("steps", "steps, batch and warmup must be positive"));
    }
    let compute = match o.compute {
        "bf16" => Kind::BFloat16,
        "f32" => Kind::Float,
        other => return Err(Error::arg("compute", format!("`{other}`; expected bf16 or f32"))),
    };
    tch::manual_seed(o.seed as i64);
    let params = Params::init(cfg);
    let mut opt =
        nn::AdamW { beta1: 0.9, beta2: 0.95, wd: o.weight_decay, eps: 1e-8, amsgrad: false }
            .build(&params.vs, o.lr)
            .ctx(|| "building AdamW".into())?;
    opt.set_weight_decay_group(1, 0.0);
    let mut rng = SmallRng::seed_from_u64(o.seed);
    let mut log = Vec::with_capacity(o.steps);
    let t0 = Instant::now();
    for step in 0..o.steps {
        let lr = learning_rate(o, step);
        opt.set_lr(lr);
        let windows = sample_batch(stream, o.batch, o.seq_len, &mut rng);
        let model = Llama::from_weights(
            cfg,
            params.weights.map(|t| t.to_kind(compute)),
            compute,
            Device::Cpu,
        );
        let loss = lm_loss(&model, &windows);
        opt.zero_grad();
        loss.f_backward().ctx(|| format!("backward at step {step}"))?;
        let grad_norm = global_grad_norm(&params.vs);
        opt.clip_grad_norm(o.grad_clip);
        opt.step();
        let loss = loss.double_value(&[]);
        if !loss.is_finite() {
            return Err(Error::arg(
                "lr",
                format!("loss became {loss} at step {step}; lower the learning rate"),
            ));
        }
        let entry = StepLog { step, loss, lr, grad_norm, elapsed_s: t0.elapsed().as_secs_f64() };
        let eta = t0.elapsed().mul_f64((o.steps - step - 1) as f64 / (step + 1) as f64);
        progress(&entry, eta);
        log.push(entry);
    }
    Ok((params, log))
}

fn global_grad_norm(vs: &nn::VarStore) -> f64 {
    let _guard = tch::no_grad_guard();
    vs.trainable_variables()
        .iter()
        .map(|v| {
            let g = v.grad();
            if g.defined() {
                g.square().sum(Kind::Double).double_value(&[])
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_min() {
        let o = TrainOptions {
            steps: 100,
            warmup_steps: 10,
            lr: 1.0,
            min_lr: 0.1,
            ..Default::default()
        };
        assert!((learning_rate(&o, 0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&o, 9) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&o, 10) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&o, 99) - 0.1).abs() < 1e-3);
        assert!(
            (1..100).all(|s| s < 10 || learning_rate(&o, s) <= learning_rate(&o, s - 1) + 1e-12)
        );
    }
}
