//! Prefill then decode, with the two phases timed apart.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::{Llama, Logits};
use crate::sampling::{Sampler, Sampling};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Keep decoding past EOS (fixed-length decode for timing).
    pub ignore_eos: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Eos,
    MaxTokens,
}

/// The new tokens and how long each phase took.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Newly generated tokens (the prompt excluded), EOS included when it stopped generation.
    pub tokens: Vec<u32>,
    pub stop: StopReason,
    /// Prompt forward pass plus choosing the first new token.
    pub prefill: Duration,
    /// Every later forward pass (one token each) plus choosing its token.
    pub decode: Duration,
    /// Number of decode forward passes (`tokens.len() - 1`).
    pub decode_steps: usize,
}

impl Generation {
    /// Decode throughput; `None` when nothing was decoded after prefill.
    pub fn decode_tokens_per_s(&self) -> Option<f64> {
        (self.decode_steps > 0).then(|| self.decode_steps as f64 / self.decode.as_secs_f64())
    }
}

/// Waits for queued device work so the clock reads finished work.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// `tokens` as a `[1, T]` int64 tensor on `device`.
pub fn token_batch(tokens: &[u32], device: Device) -> Tensor {
    let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
    Tensor::from_slice(&ids).to_device(device).view([1, -1])
}

/// Checks that `prompt` and `opts` fit `model` (non-empty, in the vocabulary, within its positions).
pub fn check(model: &Llama, prompt: &[u32], opts: &GenerateOptions) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::arg("prompt", "is empty after tokenization"));
    }
    if opts.max_new_tokens == 0 {
        return Err(Error::arg("max-new-tokens", "must be at least 1"));
    }
    let cfg = model.config();
    let total = prompt.len() + opts.max_new_tokens;
    if total > cfg.max_position_embeddings {
        return Err(Error::arg(
            "max-new-tokens",
            format!(
                "prompt ({}) + new tokens ({}) exceed max_position_embeddings {}",
                prompt.len(),
                opts.max_new_tokens,
                cfg.max_position_embeddings
            ),
        ));
    }
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= cfg.vocab_size) {
        return Err(Error::arg(
            "prompt",
            format!("token id {bad} is outside the vocabulary ({})", cfg.vocab_size),
        ));
    }
    Ok(())
}

/// Greedy or sampled generation for one prompt (batch 1).
pub fn generate(model: &Llama, prompt: &[u32], opts: &GenerateOptions) -> Result<Generation> {
    check(model, prompt, opts)?;
    let cfg = model.config();
    let total = prompt.len() + opts.max_new_tokens;
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let mut cache = model.new_cache(1, total);
    let mut sampler = Sampler::new(opts.sampling.clone());
    let is_eos = |t: u32| !opts.ignore_eos && cfg.eos_token_ids.contains(&t);

    synchronize(device);
    let start = Instant::now();
    let logits = model.forward(&token_batch(prompt, device), &mut cache, Logits::Last);
    let first = sampler.sample(&logits)[0];
    let prefill = start.elapsed();

    let mut tokens = vec![first];
    let mut stop = if is_eos(first) { StopReason::Eos } else { StopReason::MaxTokens };
    let start = Instant::now();
    let mut last = first;
    while stop != StopReason::Eos && tokens.len() < opts.max_new_tokens {
        let logits = model.forward(&token_batch(&[last], device), &mut cache, Logits::Last);
        last = sampler.sample(&logits)[0];
        tokens.push(last);
        if is_eos(last) {
            stop = StopReason::Eos;
        }
    }
    synchronize(device);
    let decode = start.elapsed();
    Ok(Generation { decode_steps: tokens.len() - 1, tokens, stop, prefill, decode })
}

/// Logits (`[T, V]`, f32, on CPU) of every position of `tokens` in one forward pass.
pub fn full_logits(model: &Llama, tokens: &[u32]) -> Tensor {
    let _guard = tch::no_grad_guard();
    let mut cache = model.new_cache(1, tokens.len());
    model
        .forward(&token_batch(tokens, model.device()), &mut cache, Logits::All)
        .squeeze_dim(0)
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
}
