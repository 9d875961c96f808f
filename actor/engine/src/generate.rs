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

/// The greedy token of each row of `logits`.
fn argmax(logits: &Tensor) -> Vec<u32> {
    let ids = logits.argmax(-1, false).reshape([-1]).to_device(Device::Cpu);
    Vec::<i64>::try_from(&ids).unwrap_or_default().into_iter().map(|i| i as u32).collect()
}

/// One verification pass of speculative decoding: the last token of `text` (not yet in `cache`)
/// and `draft` in one [`Llama::verify`]. Returns how many drafted tokens greedy decoding agrees
/// with and the tokens to keep (those plus the model's own next one); `cache` keeps exactly the
/// accepted positions.
fn verify_draft(
    model: &Llama,
    cache: &mut crate::model::KvCache,
    text: &[u32],
    draft: &[u32],
) -> Result<(usize, Vec<u32>)> {
    let last = *text.last().ok_or_else(|| Error::arg("verify", "no text to continue"))?;
    let input: Vec<u32> = std::iter::once(last).chain(draft.iter().copied()).collect();
    let before = cache.len();
    let mut predicted = argmax(&model.verify(&input, cache)?);
    let ok = draft.iter().zip(&predicted).take_while(|(d, p)| d == p).count();
    cache.truncate(before + 1 + ok);
    predicted.truncate(ok + 1);
    Ok((ok, predicted))
}

/// Appends `tokens` to `text`, counting them in `new`, up to and including the first EOS;
/// returns whether one was appended.
fn append_until_eos(
    text: &mut Vec<u32>,
    tokens: &[u32],
    new: &mut usize,
    is_eos: impl Fn(u32) -> bool,
) -> bool {
    for &t in tokens {
        text.push(t);
        *new += 1;
        if is_eos(t) {
            return true;
        }
    }
    false
}

/// Prompt-lookup speculation: drafts come from the text itself, not from a second model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lookup {
    /// Tokens drafted per verification pass (at most [`crate::model::MAX_VERIFY`] - 1).
    pub draft: usize,
    /// Longest n-gram matched (the last n tokens, n from this down to 1).
    pub ngram: usize,
}

impl Lookup {
    /// Checks the settings against the verifier's limit.
    pub fn check(&self) -> Result<()> {
        let max = crate::model::MAX_VERIFY - 1;
        if self.draft == 0 || self.draft > max {
            return Err(Error::arg(
                "lookup",
                format!("draft length {} is outside 1..={max} (the verifier's limit)", self.draft),
            ));
        }
        if self.ngram == 0 {
            return Err(Error::arg("lookup", "the n-gram length must be at least 1"));
        }
        Ok(())
    }

    /// Up to `max` tokens to draft after `text`: what followed the most recent earlier occurrence
    /// of its last n tokens, for the longest n (up to [`Lookup::ngram`]) that occurs earlier.
    pub fn draft_for(&self, text: &[u32], max: usize) -> Vec<u32> {
        let len = text.len();
        for n in (1..=self.ngram.min(len.saturating_sub(1))).rev() {
            let tail = &text[len - n..];
            // Most recent earlier start of the n-gram, with at least one token after it.
            if let Some(start) = (0..len - n).rev().find(|&s| &text[s..s + n] == tail) {
                let from = start + n;
                return text[from..(from + max.min(self.draft)).min(len)].to_vec();
            }
        }
        Vec::new()
    }
}

/// A greedy generation by prompt lookup, with what the speculation did.
#[derive(Debug, Clone)]
pub struct LookupGeneration {
    pub generation: Generation,
    /// Tokens drafted and how many of them the verification accepted.
    pub drafted: usize,
    pub accepted: usize,
}

impl LookupGeneration {
    /// New tokens after the first per decode forward pass (1 without any accepted draft).
    pub fn tokens_per_pass(&self) -> f64 {
        let g = &self.generation;
        (g.tokens.len().saturating_sub(1)) as f64 / g.decode_steps.max(1) as f64
    }
}

/// Greedy generation with prompt-lookup speculation: each pass drafts up to `lookup.draft`
/// tokens by n-gram matching over prompt + output, verifies them in one [`Llama::verify`] pass and
/// keeps the longest prefix greedy decoding would produce plus the model's own next token. The
/// tokens are the dense greedy ones (bit for bit on the CPU decode path, whose verification
/// logits equal single steps'). `opts.sampling` must be greedy.
pub fn generate_lookup(
    model: &Llama,
    prompt: &[u32],
    opts: &GenerateOptions,
    lookup: Lookup,
) -> Result<LookupGeneration> {
    check(model, prompt, opts)?;
    lookup.check()?;
    if opts.sampling != Sampling::Greedy {
        return Err(Error::arg("lookup", "prompt lookup verifies greedy decoding only"));
    }
    let cfg = model.config();
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let mut cache = model.new_cache(1, prompt.len() + opts.max_new_tokens);
    let is_eos = |t: u32| !opts.ignore_eos && cfg.eos_token_ids.contains(&t);

    synchronize(device);
    let start = Instant::now();
    let logits = model.forward(&token_batch(prompt, device), &mut cache, Logits::Last);
    let first = argmax(&logits)[0];
    let prefill = start.elapsed();

    let mut text: Vec<u32> = prompt.to_vec();
    text.push(first);
    let mut new = 1;
    let (mut drafted, mut accepted, mut passes) = (0, 0, 0);
    let mut stop = if is_eos(first) { StopReason::Eos } else { StopReason::MaxTokens };
    let start = Instant::now();
    while stop != StopReason::Eos && new < opts.max_new_tokens {
        let room = opts.max_new_tokens - new - 1;
        let draft = lookup.draft_for(&text, room);
        let (ok, kept) = verify_draft(model, &mut cache, &text, &draft)?;
        passes += 1;
        drafted += draft.len();
        accepted += ok;
        if append_until_eos(&mut text, &kept, &mut new, is_eos) {
            stop = StopReason::Eos;
        }
    }
    synchronize(device);
    let decode = start.elapsed();
    let tokens = text[prompt.len()..].to_vec();
    Ok(LookupGeneration {
        generation: Generation { tokens, stop, prefill, decode, decode_steps: passes },
        drafted,
        accepted,
    })
}

/// A greedy generation by self-speculation, with what the speculation did.
#[derive(Debug, Clone)]
pub struct SelfSpecGeneration {
    pub generation: Generation,
    /// Draft decode steps run on the draft profile, tokens drafted, and how many the dense
    /// verification accepted.
    pub draft_steps: usize,
    pub drafted: usize,
    pub accepted: usize,
}

/// Greedy generation with self-speculation: the model's own `draft` profile (sparse or pruned,
/// sharing the dense weights) decodes `len` tokens ahead with its own KV cache, the dense model
/// verifies them in one [`Llama::verify`] pass and keeps the longest prefix greedy decoding would
/// produce plus its own next token. The tokens are the dense greedy ones, like
/// [`generate_lookup`]'s. `decode` times the drafting and the verification together. Leaves the
/// dense profile active.
pub fn generate_self_spec(
    model: &mut Llama,
    draft: crate::model::ProfileId,
    prompt: &[u32],
    opts: &GenerateOptions,
    len: usize,
) -> Result<SelfSpecGeneration> {
    use crate::model::ProfileId;
    check(model, prompt, opts)?;
    let max = crate::model::MAX_VERIFY - 1;
    if len == 0 || len > max {
        return Err(Error::arg(
            "self-speculation",
            format!("draft length {len} is outside 1..={max} (the verifier's limit)"),
        ));
    }
    if opts.sampling != Sampling::Greedy {
        return Err(Error::arg("self-speculation", "it verifies greedy decoding only"));
    }
    let eos = model.config().eos_token_ids.clone();
    let is_eos = |t: u32| !opts.ignore_eos && eos.contains(&t);
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let capacity = prompt.len() + opts.max_new_tokens + len;
    model.activate(draft)?;
    let mut draft_cache = model.new_cache(1, capacity);
    model.activate_dense();
    let mut cache = model.new_cache(1, capacity);

    synchronize(device);
    let start = Instant::now();
    let logits = model.forward(&token_batch(prompt, device), &mut cache, Logits::Last);
    let first = argmax(&logits)[0];
    let prefill = start.elapsed();
    // The draft's own prefill is set-up, timed with neither phase.
    if prompt.len() > 1 {
        model.activate(draft)?;
        let head = token_batch(&prompt[..prompt.len() - 1], device);
        let _ = model.forward(&head, &mut draft_cache, Logits::Last);
        model.activate_dense();
    }

    let mut text: Vec<u32> = prompt.to_vec();
    text.push(first);
    let mut new = 1;
    let (mut draft_steps, mut drafted, mut accepted, mut passes) = (0, 0, 0, 0);
    let mut stop = if is_eos(first) { StopReason::Eos } else { StopReason::MaxTokens };
    synchronize(device);
    let start = Instant::now();
    while stop != StopReason::Eos && new < opts.max_new_tokens {
        let room = (opts.max_new_tokens - new - 1).min(len);
        // Draft: catch the draft cache up with the text (one or two tokens), then run ahead.
        let mut proposal = Vec::with_capacity(room);
        if room > 0 {
            model.activate(draft)?;
            let mut next = 0;
            for i in draft_cache.len()..text.len() {
                let l = model.forward(
                    &token_batch(&text[i..=i], device),
                    &mut draft_cache,
                    Logits::Last,
                );
                next = argmax(&l)[0];
                draft_steps += 1;
            }
            proposal.push(next);
            while proposal.len() < room {
                let l =
                    model.forward(&token_batch(&[next], device), &mut draft_cache, Logits::Last);
                next = argmax(&l)[0];
                proposal.push(next);
                draft_steps += 1;
            }
            model.activate(ProfileId::DENSE)?;
        }
        let (ok, kept) = verify_draft(model, &mut cache, &text, &proposal)?;
        passes += 1;
        drafted += proposal.len();
        accepted += ok;
        // The draft cache keeps what it holds of the accepted text.
        draft_cache.truncate(draft_cache.len().min(cache.len()));
        if append_until_eos(&mut text, &kept, &mut new, is_eos) {
            stop = StopReason::Eos;
        }
    }
    synchronize(device);
    let decode = start.elapsed();
    let tokens = text[prompt.len()..].to_vec();
    Ok(SelfSpecGeneration {
        generation: Generation { tokens, stop, prefill, decode, decode_steps: passes },
        draft_steps,
        drafted,
        accepted,
    })
}
