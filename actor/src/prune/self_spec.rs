//! Self-speculation measured: a sparse profile of the model drafts a few tokens, the dense model
//! verifies them in one pass (lossless: the output is the dense greedy text). Per prompt and
//! setting, whole generations in the order dense, self-speculation, sparse alone, then the
//! reverse (ABBA), so drift cancels; the tokens are checked against dense greedy's. The record
//! says whether it pays on any request, which decides whether it becomes an action.

use serde::{Deserialize, Serialize};

use super::sparsity::Thresholds;
use casrap_common::action::Allocation;
use casrap_common::stats::{ci95, mean};
use casrap_engine::error::{Error, Result};
use casrap_engine::generate::{self, GenerateOptions};
use casrap_engine::sampling::Sampling;
use casrap_engine::Llama;

/// One prompt under one setting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Case {
    pub prompt: usize,
    pub category: String,
    pub prompt_tokens: usize,
    /// Decode seconds of each side, both runs (ABBA).
    pub dense_s: [f64; 2],
    pub spec_s: [f64; 2],
    pub sparse_s: [f64; 2],
    pub passes: usize,
    pub draft_steps: usize,
    pub drafted: usize,
    pub accepted: usize,
    /// Whether self-speculation's tokens were dense greedy's.
    pub identical: bool,
}

/// One draft sparsity and draft length.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Setting {
    pub level: f64,
    pub draft: usize,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub model: String,
    pub dtype: String,
    pub threads: usize,
    pub format: String,
    pub new_tokens: usize,
    pub allocation: Allocation,
    pub settings: Vec<Setting>,
}

/// A prompt to measure: its index, category and token ids as served.
pub struct Prompt {
    pub index: usize,
    pub category: String,
    pub tokens: Vec<u32>,
}

/// Measures every (level, draft) of `levels` x `drafts` on every prompt.
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &mut Llama,
    thresholds: &Thresholds,
    allocation: Allocation,
    prompts: &[Prompt],
    levels: &[f64],
    drafts: &[usize],
    new_tokens: usize,
    mut progress: impl FnMut(&Setting, &Case),
) -> Result<Vec<Setting>> {
    let opts = GenerateOptions {
        max_new_tokens: new_tokens,
        sampling: Sampling::Greedy,
        ignore_eos: true,
    };
    if new_tokens < 2 {
        return Err(Error::arg("new-tokens", "self-speculation needs at least two new tokens"));
    }
    let mut out = Vec::new();
    for &level in levels {
        let id = model
            .add_sparse_profile(&format!("sparsity:{level}"), thresholds.at(level, allocation)?)?;
        for &draft in drafts {
            let mut setting = Setting { level, draft, cases: Vec::new() };
            for p in prompts {
                let (mut dense_s, mut spec_s, mut sparse_s) = ([0.0; 2], [0.0; 2], [0.0; 2]);
                let mut reference = Vec::new();
                let mut spec = None;
                // Warm-up run of each side, then dense, spec, sparse, sparse, spec, dense.
                model.activate_dense();
                let _ = generate::generate(model, &p.tokens, &opts)?;
                let _ = generate::generate_self_spec(model, id, &p.tokens, &opts, draft)?;
                for (run, side) in [0, 1, 2, 2, 1, 0].into_iter().enumerate() {
                    let half = run / 3;
                    match side {
                        0 => {
                            model.activate_dense();
                            let g = generate::generate(model, &p.tokens, &opts)?;
                            dense_s[half] = g.decode.as_secs_f64();
                            reference = g.tokens;
                        }
                        1 => {
                            let g =
                                generate::generate_self_spec(model, id, &p.tokens, &opts, draft)?;
                            spec_s[half] = g.generation.decode.as_secs_f64();
                            spec = Some(g);
                        }
                        _ => {
                            model.activate(id)?;
                            let g = generate::generate(model, &p.tokens, &opts);
                            model.activate_dense();
                            sparse_s[half] = g?.decode.as_secs_f64();
                        }
                    }
                }
                let g = spec.expect("self-speculation ran");
                let case = Case {
                    prompt: p.index,
                    category: p.category.clone(),
                    prompt_tokens: p.tokens.len(),
                    dense_s,
                    spec_s,
                    sparse_s,
                    passes: g.generation.decode_steps,
                    draft_steps: g.draft_steps,
                    drafted: g.drafted,
                    accepted: g.accepted,
                    identical: g.generation.tokens == reference,
                };
                progress(&setting, &case);
                setting.cases.push(case);
            }
            out.push(setting);
        }
        model.activate_dense();
        model.remove_profile(id)?;
    }
    Ok(out)
}

/// Per case, dense decode time over the other side's (both runs summed).
fn speedups(cases: &[Case], side: impl Fn(&Case) -> [f64; 2]) -> Vec<f64> {
    cases.iter().map(|c| c.dense_s.iter().sum::<f64>() / side(c).iter().sum::<f64>()).collect()
}

impl Record {
    pub fn table(&self) -> String {
        let mut s = format!(
            "Self-speculation on {} ({}, {} threads, {} prompts, {} new tokens, {} allocation): \
             the sparse profile drafts, the dense model verifies; speedups are dense decode time \
             over the other side's per prompt (ABBA), means with 95% CI\n\n\
             | draft sparsity | draft length | accepted | tokens per pass | draft steps per token | sparse alone | self-speculation | best prompt | prompts above 1x | identical to dense |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            self.model,
            self.dtype,
            self.threads,
            self.settings.first().map_or(0, |s| s.cases.len()),
            self.new_tokens,
            self.allocation.name()
        );
        for st in &self.settings {
            let c = &st.cases;
            let sum = |f: fn(&Case) -> usize| c.iter().map(f).sum::<usize>() as f64;
            let decoded = (c.len() * (self.new_tokens - 1)) as f64;
            let spec = speedups(c, |c| c.spec_s);
            let sparse = speedups(c, |c| c.sparse_s);
            s += &format!(
                "| {} | {} | {:.1}% | {:.2} | {:.2} | {:.3}x ± {:.3} | {:.3}x ± {:.3} | {:.3}x | {} of {} | {} of {} |\n",
                st.level,
                st.draft,
                sum(|c| c.accepted) / sum(|c| c.drafted).max(1.0) * 100.0,
                decoded / sum(|c| c.passes).max(1.0),
                sum(|c| c.draft_steps) / decoded,
                mean(&sparse),
                ci95(&sparse),
                mean(&spec),
                ci95(&spec),
                spec.iter().copied().fold(0.0, f64::max),
                spec.iter().filter(|&&x| x > 1.0).count(),
                c.len(),
                c.iter().filter(|c| c.identical).count(),
                c.len()
            );
        }
        s
    }
}
