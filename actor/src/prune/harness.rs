//! The measurement harness: dense and pruned runs of the same prompt, by DESIGN.md's rules.
//!
//! - Every profile (the dense one included) is warmed up once before its first timed use.
//! - Dense and pruned decode alternate step by step on the same positions, each with its own KV
//!   cache, and the speedup is the median of the per-step time ratios ([`Timing::Interleaved`],
//!   the default): bandwidth drifts slower than one step cancel. Which side goes first flips from
//!   step to step. The seed's whole-run ABBA pairs remain as [`Timing::Runs`].
//! - Decode has a fixed length (EOS ignored); prefill, decode, apply, restore and the restore
//!   check are timed apart.
//! - Quality is judged on the dense model's tokens: perplexity of each model on prompt + dense
//!   continuation (teacher forced), and top-1 agreement with the dense continuation.
//! - Each side's bytes read per decoded token (weights plus K/V at the mean context) give the
//!   ceiling of the speedup.

use std::collections::HashSet;

use std::time::Instant;

use casrap_common::config::Timing;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::profiles::{profile_action, ProfileCache, Restore};
use casrap_common::action::Action;
use casrap_engine::error::{Error, Result};
use casrap_engine::generate::{self, GenerateOptions, Lookup};
use casrap_engine::model::ProfileId;
use casrap_engine::sampling::Sampler;
use casrap_engine::sampling::Sampling;
use casrap_engine::{KvCache, Llama, Logits};

/// How to measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasureOptions {
    /// Tokens decoded per run (fixed; EOS ignored).
    pub new_tokens: usize,
    /// Dense/pruned pairs per measurement (interleaved passes with [`Timing::Interleaved`]).
    pub pairs: usize,
    #[serde(default = "Timing::runs")]
    pub timing: Timing,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self { new_tokens: 32, pairs: 2, timing: Timing::default() }
    }
}

/// One timed generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub pruned: bool,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub decode_steps: usize,
    /// Pruned runs: switching to the profile.
    pub apply_s: Option<f64>,
    /// Pruned runs: switching back.
    pub restore_s: Option<f64>,
    /// Pruned runs: checking the probe after restoring.
    pub verify_s: Option<f64>,
}

impl Run {
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.decode_steps as f64 / self.decode_s.max(1e-12)
    }
}

/// Everything measured for one action on one prompt (the raw record; summaries derive from it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    pub action: String,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub runs: Vec<Run>,
    /// Seconds spent building the profile, when this measurement built it.
    pub build_s: Option<f64>,
    /// Bytes of pruned weights the profile holds beyond the dense model.
    pub profile_bytes: usize,
    pub dense_bytes_per_token: usize,
    pub pruned_bytes_per_token: usize,
    /// Perplexity on prompt + dense continuation, teacher forced.
    pub ppl_dense: f64,
    pub ppl_pruned: f64,
    /// Share of continuation positions where the pruned model's top-1 token is the dense model's
    /// (both teacher forced on prompt + dense continuation).
    pub top1_agreement: f64,
    /// Every checked restore's probe matched the dense reference bit for bit (or the model was rebuilt).
    pub restore_identical: bool,
    /// Restores checked against the probe (see [`Harness::check_restores`]).
    #[serde(default)]
    pub restores_checked: usize,
    pub rebuilt: bool,
    /// [`Timing::Interleaved`]: every decode step's seconds, `[dense, pruned]`, in order (the
    /// speedup is recomputed from these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<[f64; 2]>,
    /// Wall seconds of the whole measurement (warm-up, timed runs, quality, restores; 0 in
    /// records written before it was kept).
    #[serde(default)]
    pub wall_s: f64,
    /// Prompt-lookup actions: what the speculation did in the timed runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookup: Option<LookupStats>,
}

/// What prompt lookup did over an action's timed runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupStats {
    /// Verification passes after the prefill, tokens drafted and drafted tokens accepted.
    pub passes: usize,
    pub drafted: usize,
    pub accepted: usize,
    /// Every lookup run emitted the tokens of the same profile's greedy decode (lookup alone is
    /// lossless: these are the dense model's tokens).
    pub identical: bool,
}

impl LookupStats {
    /// Tokens decoded (after the prefill's) per verification pass.
    pub fn tokens_per_pass(&self, new_tokens: usize, runs: usize) -> f64 {
        (new_tokens.saturating_sub(1) * runs) as f64 / self.passes.max(1) as f64
    }
}

/// The median of owned values (see [`casrap_common::stats::median`]).
pub fn median(v: Vec<f64>) -> f64 {
    casrap_common::stats::median(&v)
}

impl Measurement {
    fn side(&self, pruned: bool) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.pruned == pruned)
    }
    pub fn decode_tokens_per_s(&self, pruned: bool) -> f64 {
        median(self.side(pruned).map(Run::decode_tokens_per_s).collect())
    }
    /// Decode speedup. Interleaved: the median over decode steps of dense over pruned step time.
    /// Runs: the geometric mean over pairs of pruned tokens/s over the adjacent dense run's (runs
    /// are stored pair by pair, so adjacent runs share the machine's state).
    pub fn speedup(&self) -> f64 {
        if !self.steps.is_empty() {
            return median(self.steps.iter().map(|[d, p]| d / p.max(1e-12)).collect());
        }
        let logs: Vec<f64> = self
            .runs
            .chunks_exact(2)
            .filter_map(|pair| {
                let (d, p) = match pair {
                    [a, b] if !a.pruned && b.pruned => (a, b),
                    [a, b] if a.pruned && !b.pruned => (b, a),
                    _ => return None,
                };
                Some((p.decode_tokens_per_s() / d.decode_tokens_per_s()).ln())
            })
            .collect();
        (logs.iter().sum::<f64>() / logs.len().max(1) as f64).exp()
    }
    /// Bytes ratio: the speedup a memory-bound decode could reach at best.
    pub fn ceiling(&self) -> f64 {
        self.dense_bytes_per_token as f64 / self.pruned_bytes_per_token as f64
    }
    pub fn ppl_change(&self) -> f64 {
        (self.ppl_pruned - self.ppl_dense) / self.ppl_dense
    }
}

/// Runs measurements against one model, keeping its profiles and warm-up state.
pub struct Harness {
    pub cache: ProfileCache,
    /// Check each restore against the probe (a forward pass); when false a restore only switches
    /// back, and the measurement says its restores went unchecked.
    pub check_restores: bool,
    warmed: HashSet<String>,
    reload: Box<dyn FnMut() -> Result<Llama>>,
    /// The dense side of the last judgement: its sequence, NLLs and argmaxes. Test mode judges
    /// every action of a prompt on the same prompt + continuation, so the dense forward runs once.
    dense_judged: Option<(Vec<u32>, Tensor, Tensor)>,
}

/// An episode's dense reference run: one prefill over the prompt that keeps every position's
/// logits (the prompt's perplexity, a complexity feature) and the greedy continuation decoded from
/// it (the tokens every pruned run is judged on). Untimed for speed comparisons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// Perplexity of the dense model on the prompt (positions 1.. predicted from their prefix).
    pub prompt_ppl: f64,
    pub continuation: Vec<u32>,
    pub prefill_s: f64,
    pub decode_s: f64,
}

/// The reference an episode needs before it measures with `o`: interleaved timing decodes the
/// dense continuation as its dense side anyway (the same greedy tokens), so only the prefill runs
/// here; whole runs take the continuation from here.
pub fn reference_for(model: &Llama, prompt: &[u32], o: &MeasureOptions) -> Result<Reference> {
    match o.timing {
        Timing::Interleaved => reference(model, prompt, 0),
        Timing::Runs => reference(model, prompt, o.new_tokens),
    }
}

impl Reference {
    /// The continuation to judge quality on, when this reference decoded one.
    pub fn continuation(&self) -> Option<&[u32]> {
        (!self.continuation.is_empty()).then_some(self.continuation.as_slice())
    }
}

/// Runs the dense model (whatever profile is active) as [`Reference`] says; with `new_tokens` 0
/// only the prefill (the continuation then comes from the measurement's own dense side, see
/// [`reference_for`]).
pub fn reference(model: &Llama, prompt: &[u32], new_tokens: usize) -> Result<Reference> {
    if prompt.len() < 2 {
        return Err(Error::arg("reference", "needs a prompt of at least two tokens"));
    }
    if prompt.len() + new_tokens > model.config().max_position_embeddings {
        return Err(Error::arg(
            "reference",
            format!(
                "prompt ({}) + new tokens ({new_tokens}) exceed the model's positions",
                prompt.len()
            ),
        ));
    }
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let mut cache = model.new_cache(1, prompt.len() + new_tokens);
    let t = std::time::Instant::now();
    let ids = generate::token_batch(prompt, device);
    let logits = model.forward(&ids, &mut cache, Logits::All).squeeze_dim(0).to_kind(Kind::Float);
    let n = prompt.len() as i64;
    let logp = logits.narrow(0, 0, n - 1).log_softmax(-1, Kind::Float);
    let targets = ids.squeeze_dim(0).narrow(0, 1, n - 1).unsqueeze(-1);
    let nll = -logp.gather(-1, &targets, false).mean(Kind::Double).double_value(&[]);
    let mut last = logits.get(n - 1).argmax(-1, false).int64_value(&[]) as u32;
    generate::synchronize(device);
    let prefill_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let mut continuation = if new_tokens > 0 { vec![last] } else { Vec::new() };
    while !continuation.is_empty() && continuation.len() < new_tokens {
        let logits =
            model.forward(&generate::token_batch(&[last], device), &mut cache, Logits::Last);
        last = logits.reshape([-1]).argmax(-1, false).int64_value(&[]) as u32;
        continuation.push(last);
    }
    generate::synchronize(device);
    Ok(Reference {
        prompt_ppl: nll.exp(),
        continuation,
        prefill_s,
        decode_s: t.elapsed().as_secs_f64(),
    })
}

/// Model NLL summed over positions `from..n-1` predicting `seq[from+1..]`, and the argmaxes there.
fn teacher_forced(model: &Llama, seq: &[u32]) -> (Tensor, Tensor) {
    let _guard = tch::no_grad_guard();
    let ids = generate::token_batch(seq, model.device());
    let logits =
        model.forward(&ids, &mut model.new_cache(1, seq.len()), Logits::All).squeeze_dim(0);
    let logp = logits.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
    let n = seq.len() as i64;
    let targets = ids.squeeze_dim(0).narrow(0, 1, n - 1).unsqueeze(-1);
    let nll = -logp.narrow(0, 0, n - 1).gather(-1, &targets, false).squeeze_dim(-1);
    (nll, logits.argmax(-1, false))
}

impl Harness {
    /// `reload` rebuilds the dense model from its files if a restore check fails.
    pub fn new(cache: ProfileCache, reload: Box<dyn FnMut() -> Result<Llama>>) -> Self {
        Self { cache, check_restores: true, warmed: HashSet::new(), reload, dense_judged: None }
    }

    fn restore(&mut self, model: &mut Llama) -> Result<Restore> {
        if !self.check_restores {
            return Ok(self.cache.switch_back(model));
        }
        let r = self.cache.restore(model, &mut self.reload)?;
        if r.rebuilt {
            self.warmed.clear();
            self.dense_judged = None;
        }
        Ok(r)
    }

    fn warm(
        &mut self,
        model: &mut Llama,
        action: &Action,
        prompt: &[u32],
        opts: &GenerateOptions,
    ) -> Result<()> {
        if self.warmed.insert("none".into()) {
            generate::generate(model, prompt, opts)?;
        }
        if self.warmed.insert(action.label()) {
            self.cache.apply(model, action)?;
            let out = generate::generate(model, prompt, opts);
            self.restore(model)?;
            out?;
        }
        Ok(())
    }

    /// Measures `action` against the dense model on `prompt`. `episode` sets which side goes first.
    /// Quality is judged on `continuation` when given (an episode's [`Reference`]), else on the
    /// first timed dense run's tokens.
    pub fn measure(
        &mut self,
        model: &mut Llama,
        action: &Action,
        prompt: &[u32],
        continuation: Option<&[u32]>,
        o: &MeasureOptions,
        episode: usize,
    ) -> Result<Measurement> {
        if o.pairs == 0 || o.new_tokens < 2 {
            return Err(Error::arg("measure", "needs at least one pair and two new tokens"));
        }
        if let Some((draft, ngram)) = action.lookup() {
            let lookup = Lookup { draft, ngram };
            return self.measure_lookup(model, action, lookup, prompt, continuation, o, episode);
        }
        let started = Instant::now();
        let gen = GenerateOptions {
            max_new_tokens: o.new_tokens,
            sampling: Sampling::Greedy,
            ignore_eos: true,
        };
        let built = self.cache.ensure(model, action)?;
        self.warm(model, action, prompt, &gen)?;
        let mut runs = Vec::with_capacity(2 * o.pairs);
        let mut steps = Vec::new();
        let mut dense_tokens: Option<Vec<u32>> = continuation.map(<[u32]>::to_vec);
        let (mut identical, mut rebuilt, mut checked) = (true, false, 0);
        let (passes, pairs) = match o.timing {
            Timing::Interleaved => (o.pairs, 0),
            Timing::Runs => (0, o.pairs),
        };
        let pruned_id = self.cache.ensure(model, action)?.map_or(ProfileId::DENSE, |b| b.id);
        let reads_before = model.decode_reads(pruned_id);
        for pass in 0..passes {
            let pruned_id = self.cache.ensure(model, action)?.map_or(ProfileId::DENSE, |b| b.id);
            let dense_first = (pass + episode).is_multiple_of(2);
            let p = interleaved(model, pruned_id, prompt, o.new_tokens, dense_first);
            // Switching back is a pointer swap; the restore after the quality pass below is the
            // one that is checked.
            let r = self.cache.switch_back(model);
            let p = p?;
            let side = |pruned: bool| {
                let k = usize::from(pruned);
                Run {
                    pruned,
                    prefill_s: p.prefill_s[k],
                    decode_s: p.steps.iter().map(|s| s[k]).sum(),
                    decode_steps: p.steps.len(),
                    apply_s: pruned.then_some(p.apply_s),
                    restore_s: pruned.then_some(r.restore.as_secs_f64()),
                    verify_s: pruned.then_some(r.verify.as_secs_f64()),
                }
            };
            if dense_first {
                runs.extend([side(false), side(true)]);
            } else {
                runs.extend([side(true), side(false)]);
            }
            steps.extend(p.steps);
            dense_tokens.get_or_insert(p.dense_tokens);
        }
        for pair in 0..pairs {
            let order =
                if (pair + episode).is_multiple_of(2) { [false, true] } else { [true, false] };
            for pruned in order {
                if !pruned {
                    let g = generate::generate(model, prompt, &gen)?;
                    runs.push(Run {
                        pruned,
                        prefill_s: g.prefill.as_secs_f64(),
                        decode_s: g.decode.as_secs_f64(),
                        decode_steps: g.decode_steps,
                        apply_s: None,
                        restore_s: None,
                        verify_s: None,
                    });
                    dense_tokens.get_or_insert(g.tokens);
                    continue;
                }
                let apply = self.cache.apply(model, action)?;
                let g = generate::generate(model, prompt, &gen);
                let r = self.restore(model)?;
                let g = g?;
                identical &= r.identical;
                rebuilt |= r.rebuilt;
                checked += usize::from(r.checked);
                runs.push(Run {
                    pruned,
                    prefill_s: g.prefill.as_secs_f64(),
                    decode_s: g.decode.as_secs_f64(),
                    decode_steps: g.decode_steps,
                    apply_s: Some(apply.as_secs_f64()),
                    restore_s: Some(r.restore.as_secs_f64()),
                    verify_s: Some(r.verify.as_secs_f64()),
                });
            }
        }
        let continuation = dense_tokens.unwrap_or_default();
        // A sparse profile's weight bytes are the rows its steps read in the passes above.
        let measured = match (action.sparsity(), reads_before, model.decode_reads(pruned_id)) {
            (Some(_), Some((b0, p0)), Some((b1, p1))) if p1 > p0 => {
                Some(((b1 - b0) as f64 / (p1 - p0) as f64).round() as usize)
            }
            _ => None,
        };
        let q = self.judge(model, action, prompt, &continuation, o, |weights, kv| {
            measured.unwrap_or(weights) + kv
        })?;
        identical &= q.restore.identical;
        rebuilt |= q.restore.rebuilt;
        checked += usize::from(q.restore.checked);
        Ok(Measurement {
            action: action.label(),
            prompt_tokens: prompt.len(),
            new_tokens: o.new_tokens,
            runs,
            build_s: built.and_then(|b| b.build).map(|d| d.as_secs_f64()),
            profile_bytes: built.map_or(0, |b| b.bytes),
            dense_bytes_per_token: q.dense_bytes,
            pruned_bytes_per_token: q.pruned_bytes,
            ppl_dense: q.ppl_dense,
            ppl_pruned: q.ppl_pruned,
            top1_agreement: q.top1_agreement,
            restore_identical: identical,
            restores_checked: checked,
            rebuilt,
            steps,
            wall_s: started.elapsed().as_secs_f64(),
            lookup: None,
        })
    }

    /// Quality and bytes of `action` against the dense model, both teacher forced on prompt +
    /// `continuation`, then a checked restore. `pruned_bytes(weights, kv)` turns the adapted
    /// profile's nominal weight bytes and mean K/V bytes per decode step into its bytes
    /// per decoded token.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &mut self,
        model: &mut Llama,
        action: &Action,
        prompt: &[u32],
        continuation: &[u32],
        o: &MeasureOptions,
        pruned_bytes: impl FnOnce(usize, usize) -> usize,
    ) -> Result<Quality> {
        let seq: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
        // K/V bytes averaged over the decode's steps, each at its own context: a window saves
        // nothing while the context fits in it and more with every step after, which the bytes
        // at the mean context would miss (min(mean, w) is not the mean of min(context, w)).
        let steps = o.new_tokens.max(1);
        let kv = |m: &Llama| {
            (0..steps).map(|i| m.kv_bytes_per_token(prompt.len() + i)).sum::<usize>() / steps
        };
        let (dense_nll, dense_top) = match &self.dense_judged {
            Some((s, nll, top)) if *s == seq => (nll.shallow_clone(), top.shallow_clone()),
            _ => {
                let (nll, top) = teacher_forced(model, &seq);
                self.dense_judged = Some((seq.clone(), nll.shallow_clone(), top.shallow_clone()));
                (nll, top)
            }
        };
        let dense_bytes = model.weight_bytes_per_token() + kv(model);
        self.cache.apply(model, action)?;
        let (pruned_nll, pruned_top) = teacher_forced(model, &seq);
        let pruned_bytes = pruned_bytes(model.weight_bytes_per_token(), kv(model));
        let restore = self.restore(model)?;
        let ppl = |nll: &Tensor| nll.mean(Kind::Double).double_value(&[]).exp();
        let from = prompt.len() as i64 - 1;
        let k = continuation.len() as i64;
        // Both sides teacher forced on the same tokens, so `none` agrees exactly.
        let top1_agreement = pruned_top
            .narrow(0, from, k)
            .eq_tensor(&dense_top.narrow(0, from, k))
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        Ok(Quality {
            dense_bytes,
            pruned_bytes,
            ppl_dense: ppl(&dense_nll),
            ppl_pruned: ppl(&pruned_nll),
            top1_agreement,
            restore,
        })
    }

    /// Prompt lookup (on the dense model, or on a sparse profile) against dense greedy decode:
    /// whole fixed-length runs in ABBA order (a verification pass decodes several tokens, so the
    /// two sides cannot alternate step by step), speed as decoded tokens per second. Quality as
    /// for any action, teacher forced on the dense continuation under the profile lookup runs on;
    /// each lookup run's tokens are checked against that profile's greedy decode.
    #[allow(clippy::too_many_arguments)]
    fn measure_lookup(
        &mut self,
        model: &mut Llama,
        action: &Action,
        lookup: Lookup,
        prompt: &[u32],
        continuation: Option<&[u32]>,
        o: &MeasureOptions,
        episode: usize,
    ) -> Result<Measurement> {
        let started = Instant::now();
        let gen = GenerateOptions {
            max_new_tokens: o.new_tokens,
            sampling: Sampling::Greedy,
            ignore_eos: true,
        };
        let base = profile_action(action);
        let built = self.cache.ensure(model, action)?;
        self.warm(model, &base, prompt, &gen)?;
        // The tokens lookup must reproduce: the greedy decode of the profile it runs on. On the
        // dense model those are the dense runs' own (below); a sparse profile decodes them once.
        let expected = if base == Action::None {
            None
        } else {
            self.cache.apply(model, &base)?;
            let g = generate::generate(model, prompt, &gen);
            self.restore(model)?;
            Some(g?.tokens)
        };
        // The verification path warms once per action, as [`Harness::warm`] warms the others.
        if self.warmed.insert(format!("{}/verify", action.label())) {
            self.cache.apply(model, action)?;
            let w = generate::generate_lookup(model, prompt, &gen, lookup);
            self.restore(model)?;
            w?;
        }
        let mut lookup_tokens = Vec::with_capacity(o.pairs);
        // The first dense run's greedy tokens: what lookup must reproduce on the dense model and,
        // without an episode's continuation, what quality is judged on.
        let mut dense_run: Option<Vec<u32>> = None;
        let mut runs = Vec::with_capacity(2 * o.pairs);
        let (mut identical, mut rebuilt, mut checked) = (true, false, 0);
        let mut stats = LookupStats { passes: 0, drafted: 0, accepted: 0, identical: true };
        for pair in 0..o.pairs {
            let order =
                if (pair + episode).is_multiple_of(2) { [false, true] } else { [true, false] };
            for pruned in order {
                if !pruned {
                    let g = generate::generate(model, prompt, &gen)?;
                    runs.push(Run {
                        pruned,
                        prefill_s: g.prefill.as_secs_f64(),
                        decode_s: g.decode.as_secs_f64(),
                        decode_steps: g.decode_steps,
                        apply_s: None,
                        restore_s: None,
                        verify_s: None,
                    });
                    dense_run.get_or_insert(g.tokens);
                    continue;
                }
                let apply = self.cache.apply(model, action)?;
                let g = generate::generate_lookup(model, prompt, &gen, lookup);
                let r = self.restore(model)?;
                let g = g?;
                identical &= r.identical;
                rebuilt |= r.rebuilt;
                checked += usize::from(r.checked);
                stats.passes += g.generation.decode_steps;
                stats.drafted += g.drafted;
                stats.accepted += g.accepted;
                lookup_tokens.push(g.generation.tokens.clone());
                runs.push(Run {
                    pruned,
                    prefill_s: g.generation.prefill.as_secs_f64(),
                    decode_s: g.generation.decode.as_secs_f64(),
                    // Tokens decoded after the prefill's, as on the dense side.
                    decode_steps: g.generation.tokens.len().saturating_sub(1),
                    apply_s: Some(apply.as_secs_f64()),
                    restore_s: Some(r.restore.as_secs_f64()),
                    verify_s: Some(r.verify.as_secs_f64()),
                });
            }
        }
        let continuation = continuation.map(<[u32]>::to_vec).or_else(|| dense_run.clone());
        let expected = expected.or(dense_run).unwrap_or_default();
        stats.identical = lookup_tokens.iter().all(|t| *t == expected);
        let continuation = continuation.unwrap_or_default();
        // A verification pass reads the weights once (and the cache) and decodes several tokens.
        let tpp = stats.tokens_per_pass(o.new_tokens, o.pairs).max(1.0);
        let q = self.judge(model, action, prompt, &continuation, o, |weights, kv| {
            ((weights + kv) as f64 / tpp).round() as usize
        })?;
        identical &= q.restore.identical;
        rebuilt |= q.restore.rebuilt;
        checked += usize::from(q.restore.checked);
        Ok(Measurement {
            action: action.label(),
            prompt_tokens: prompt.len(),
            new_tokens: o.new_tokens,
            runs,
            build_s: built.and_then(|b| b.build).map(|d| d.as_secs_f64()),
            profile_bytes: built.map_or(0, |b| b.bytes),
            dense_bytes_per_token: q.dense_bytes,
            pruned_bytes_per_token: q.pruned_bytes,
            ppl_dense: q.ppl_dense,
            ppl_pruned: q.ppl_pruned,
            top1_agreement: q.top1_agreement,
            restore_identical: identical,
            restores_checked: checked,
            rebuilt,
            steps: Vec::new(),
            wall_s: started.elapsed().as_secs_f64(),
            lookup: Some(stats),
        })
    }
}

/// What [`Harness::judge`] found.
struct Quality {
    dense_bytes: usize,
    pruned_bytes: usize,
    ppl_dense: f64,
    ppl_pruned: f64,
    top1_agreement: f64,
    restore: Restore,
}

/// One interleaved pass: both sides' prefill and every decode step's seconds.
struct Interleaved {
    /// `[dense, pruned]`.
    prefill_s: [f64; 2],
    steps: Vec<[f64; 2]>,
    /// Seconds of the first switch to the pruned profile.
    apply_s: f64,
    /// The dense side's greedy tokens.
    dense_tokens: Vec<u32>,
}

/// Greedy fixed-length generation of `prompt` by the dense model and by profile `pruned`, step
/// by step in turn, each side with its own KV cache; which side goes first flips every step.
/// Leaves the model on whichever profile ran last (the caller restores).
fn interleaved(
    model: &mut Llama,
    pruned: ProfileId,
    prompt: &[u32],
    new_tokens: usize,
    dense_first: bool,
) -> Result<Interleaved> {
    let gen = GenerateOptions {
        max_new_tokens: new_tokens,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    generate::check(model, prompt, &gen)?;
    let _guard = tch::no_grad_guard();
    let device = model.device();
    let total = prompt.len() + new_tokens;
    let ids = [ProfileId::DENSE, pruned];
    let mut caches: Vec<KvCache> = Vec::with_capacity(2);
    let t = Instant::now();
    model.activate(pruned)?;
    let apply_s = t.elapsed().as_secs_f64();
    for &id in &ids {
        model.activate(id)?;
        caches.push(model.new_cache(1, total));
    }
    let mut sampler = Sampler::new(Sampling::Greedy);
    let mut tokens: [Vec<u32>; 2] = [Vec::with_capacity(new_tokens), Vec::new()];
    let mut step = |model: &mut Llama, k: usize, input: &Tensor, tokens: &mut [Vec<u32>; 2]| {
        model.activate(ids[k])?;
        generate::synchronize(device);
        let t = Instant::now();
        let logits = model.forward(input, &mut caches[k], Logits::Last);
        let next = sampler.sample(&logits)[0];
        generate::synchronize(device);
        let s = t.elapsed().as_secs_f64();
        tokens[k].push(next);
        Ok::<f64, Error>(s)
    };
    let order =
        |i: usize| if (i + usize::from(!dense_first)).is_multiple_of(2) { [0, 1] } else { [1, 0] };
    let prompt_ids = generate::token_batch(prompt, device);
    let mut prefill_s = [0.0; 2];
    for k in order(0) {
        prefill_s[k] = step(model, k, &prompt_ids, &mut tokens)?;
    }
    let mut steps = Vec::with_capacity(new_tokens - 1);
    for i in 1..new_tokens {
        let mut s = [0.0; 2];
        for k in order(i) {
            let last = *tokens[k].last().expect("each side has its first token");
            s[k] = step(model, k, &generate::token_batch(&[last], device), &mut tokens)?;
        }
        steps.push(s);
    }
    let [dense_tokens, _] = tokens;
    Ok(Interleaved { prefill_s, steps, apply_s, dense_tokens })
}

/// One row of the prune-bench table, computed from raw measurements of one action.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub action: String,
    pub prompts: usize,
    pub profile_mb: f64,
    pub dense_tok_s: f64,
    pub pruned_tok_s: f64,
    pub speedup_median: f64,
    pub speedup_min: f64,
    pub speedup_max: f64,
    pub ceiling: f64,
    /// Median speedup over the ceiling.
    pub efficiency: f64,
    /// Share of the ceiling's gain reached: (speedup - 1) / (ceiling - 1).
    pub gain_efficiency: Option<f64>,
    pub ppl_change_median: f64,
    pub top1_median: f64,
    pub apply_ms: f64,
    pub restore_ms: f64,
    pub verify_ms: f64,
    pub build_s: Option<f64>,
    pub restores_identical: bool,
}

pub fn summarize(ms: &[Measurement]) -> Vec<Summary> {
    let mut labels: Vec<&str> = Vec::new();
    for m in ms {
        if !labels.contains(&m.action.as_str()) {
            labels.push(&m.action);
        }
    }
    labels
        .into_iter()
        .map(|label| {
            let group: Vec<&Measurement> = ms.iter().filter(|m| m.action == label).collect();
            let col =
                |f: &dyn Fn(&Measurement) -> f64| median(group.iter().map(|m| f(m)).collect());
            let speedups: Vec<f64> = group.iter().map(|m| m.speedup()).collect();
            let speedup = median(speedups.clone());
            let ceiling = col(&|m| m.ceiling());
            Summary {
                action: label.to_string(),
                prompts: group.len(),
                profile_mb: group.iter().map(|m| m.profile_bytes).max().unwrap_or(0) as f64 / 1e6,
                dense_tok_s: col(&|m| m.decode_tokens_per_s(false)),
                pruned_tok_s: col(&|m| m.decode_tokens_per_s(true)),
                speedup_median: speedup,
                speedup_min: speedups.iter().copied().fold(f64::INFINITY, f64::min),
                speedup_max: speedups.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                ceiling,
                efficiency: speedup / ceiling,
                gain_efficiency: (ceiling > 1.005).then(|| (speedup - 1.0) / (ceiling - 1.0)),
                ppl_change_median: col(&|m| m.ppl_change()),
                top1_median: col(&|m| m.top1_agreement),
                apply_ms: median(
                    group.iter().flat_map(|m| m.runs.iter().filter_map(|r| r.apply_s)).collect(),
                ) * 1e3,
                restore_ms: median(
                    group.iter().flat_map(|m| m.runs.iter().filter_map(|r| r.restore_s)).collect(),
                ) * 1e3,
                verify_ms: median(
                    group.iter().flat_map(|m| m.runs.iter().filter_map(|r| r.verify_s)).collect(),
                ) * 1e3,
                build_s: group.iter().filter_map(|m| m.build_s).next(),
                restores_identical: group.iter().all(|m| m.restore_identical),
            }
        })
        .collect()
}

/// The Markdown table of [`summarize`]'s rows.
pub fn table(rows: &[Summary]) -> String {
    let mut s = String::from(
        "| action | prompts | extra MB | decode tok/s dense -> pruned | speedup median (min-max) | ceiling | speedup/ceiling | share of ceiling gain | ppl change | top-1 agree | apply ms | restore ms | check ms | build s | restore bit-identical |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.1} | {:.1} -> {:.1} | {:.3}x ({:.3}-{:.3}) | {:.3}x | {:.0}% | {} | {:+.1}% | {:.0}% | {:.4} | {:.4} | {:.2} | {} | {} |\n",
            r.action,
            r.prompts,
            r.profile_mb,
            r.dense_tok_s,
            r.pruned_tok_s,
            r.speedup_median,
            r.speedup_min,
            r.speedup_max,
            r.ceiling,
            r.efficiency * 100.0,
            r.gain_efficiency.map_or("-".into(), |g| format!("{:.0}%", g * 100.0)),
            r.ppl_change_median * 100.0,
            r.top1_median * 100.0,
            r.apply_ms,
            r.restore_ms,
            r.verify_ms,
            r.build_s.map_or("-".into(), |b| format!("{b:.2}")),
            if r.restores_identical { "yes" } else { "NO" },
        );
    }
    s
}

/// One prune-bench record as the timing comparison reads it.
pub struct TimingRecord {
    pub name: String,
    pub options: MeasureOptions,
    pub measurements: Vec<Measurement>,
}

impl TimingRecord {
    /// Reads a prune-bench record (named by its file stem); returns its header line too.
    pub fn load(path: &std::path::Path) -> Result<(String, Self)> {
        let bad = |why: String| Error::arg("record", format!("{}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let measurements: Vec<Measurement> = serde_json::from_value(v["measurements"].clone())
            .map_err(|e| bad(format!("field `measurements`: {e}")))?;
        let options: MeasureOptions = serde_json::from_value(v["options"].clone())
            .map_err(|e| bad(format!("field `options`: {e}")))?;
        let name = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let header = v["header"].as_str().unwrap_or_default().to_string();
        Ok((header, TimingRecord { name, options, measurements }))
    }
}

/// The timing comparison `prune-bench --compare RECORDS [--bias-reference R]` prints: the noise
/// table of every record, then each record's bias table against the reference.
pub fn compare(records: &[TimingRecord], reference: Option<&TimingRecord>) -> Result<String> {
    let mut s = noise_table(records);
    if let Some(reference) = reference {
        for r in records {
            s += "\n";
            s += &bias_table(reference, r)?;
        }
    }
    Ok(s)
}

/// Noise and cost of each record's timing: `none` runs the dense model in both slots, so the
/// spread of its measured speedups over prompts is the noise every other speedup carries.
pub fn noise_table(records: &[TimingRecord]) -> String {
    use casrap_common::stats::{mean, std_dev};
    let mut s = String::from(
        "| record | timing | new tokens x passes | prompts | none speedup mean | none speedup sd | none speedup min-max | ms per measurement (median) | decode steps timed per side |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in records {
        let none: Vec<&Measurement> =
            r.measurements.iter().filter(|m| m.action == "none").collect();
        let sp: Vec<f64> = none.iter().map(|m| m.speedup()).collect();
        let wall = median(r.measurements.iter().map(|m| m.wall_s).collect());
        let steps = median(
            none.iter()
                .map(|m| {
                    m.runs.iter().filter(|x| !x.pruned).map(|x| x.decode_steps).sum::<usize>()
                        as f64
                })
                .collect(),
        );
        s += &format!(
            "| {} | {:?} | {} x {} | {} | {:.4}x | {:.4} | {:.3}-{:.3} | {:.1} | {:.0} |\n",
            r.name,
            r.options.timing,
            r.options.new_tokens,
            r.options.pairs,
            sp.len(),
            mean(&sp),
            std_dev(&sp),
            sp.iter().copied().fold(f64::INFINITY, f64::min),
            sp.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            wall * 1e3,
            steps,
        );
    }
    s
}

/// Bias of a timing method against a reference record of the same prompts and actions (long
/// separate runs): per action, both mean speedups and the mean per-prompt ratio with its 95% CI.
pub fn bias_table(reference: &TimingRecord, other: &TimingRecord) -> Result<String> {
    use casrap_common::stats::{ci95, mean};
    let (a, b) = (&reference.measurements, &other.measurements);
    if a.len() != b.len()
        || a.iter().zip(b).any(|(x, y)| x.action != y.action || x.prompt_tokens != y.prompt_tokens)
    {
        return Err(Error::arg(
            "bias",
            format!(
                "{} and {} do not hold the same prompts and actions in the same order",
                reference.name, other.name
            ),
        ));
    }
    let mut labels: Vec<&str> = Vec::new();
    for m in a {
        if !labels.contains(&m.action.as_str()) {
            labels.push(&m.action);
        }
    }
    let mut s = format!(
        "| action | prompts | speedup, {} | speedup, {} | ratio {} / {} (95% CI) |\n|---|---|---|---|---|\n",
        reference.name, other.name, other.name, reference.name
    );
    for label in labels {
        let pairs: Vec<(f64, f64)> = a
            .iter()
            .zip(b)
            .filter(|(x, _)| x.action == label)
            .map(|(x, y)| (x.speedup(), y.speedup()))
            .collect();
        let ratio: Vec<f64> = pairs.iter().map(|(x, y)| y / x).collect();
        s += &format!(
            "| {label} | {} | {:.4}x | {:.4}x | {:.4} ± {:.4} |\n",
            pairs.len(),
            mean(&pairs.iter().map(|p| p.0).collect::<Vec<_>>()),
            mean(&pairs.iter().map(|p| p.1).collect::<Vec<_>>()),
            mean(&ratio),
            ci95(&ratio),
        );
    }
    Ok(s)
}
