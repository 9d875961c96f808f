//! Test mode: on held-out prompts, every action of the run is measured against the dense model on
//! the same prompt, in the same process, so the greedy policy, each fixed action, uniform random and
//! the oracles (the best action per prompt in hindsight, and by expected reward) are compared on
//! identical measurements. Each prompt carries a budget class (`budget:`, fixed per prompt) that
//! its state and every action's reward use.
//! `casrap test` runs it in as many actor processes as the training run had, each with the
//! training's thread budget and its shard of the prompts, so speedups mean what they meant in
//! training.

use casrap_common::config::RunConfig;
use casrap_common::qnet::QNet;
use casrap_common::state::{self, Complexity};
use casrap_common::telemetry::Telemetry;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::episodes::open_setup;
use crate::prune::harness::{self, MeasureOptions};
use casrap_engine::error::{Error, Result};

use casrap_common::record::{ActionResult, PromptResult};

/// How to test.
pub struct TestOptions {
    pub config: RunConfig,
    pub policy: QNet,
    /// Held-out prompts measured (spread evenly over the test split; 0 or more than it: all).
    pub prompts: usize,
    /// This process measures the prompts whose index is `shard` modulo `shards`.
    pub shard: usize,
    pub shards: usize,
    pub device: String,
    pub threads: usize,
    /// Seed of the random baseline and of budget classes drawn at random (`budget.assign: random`).
    pub seed: u64,
}

/// Measures every action on `o.prompts` held-out prompts; `progress` is called after each. When
/// `stop` is raised it returns after the prompt being measured, with what it has.
pub fn run(
    o: &TestOptions,
    stop: &std::sync::atomic::AtomicBool,
    mut progress: impl FnMut(usize, usize, &PromptResult),
) -> Result<Vec<PromptResult>> {
    let cfg = &o.config;
    let labels = cfg.action_labels();
    let actions = cfg.checked_actions();
    if o.policy.dims().first() != Some(&state::FEATURES.len())
        || o.policy.actions() != actions.len()
    {
        return Err(Error::arg(
            "checkpoint",
            format!(
                "the policy's widths {:?} do not fit {} features and {} actions",
                o.policy.dims(),
                state::FEATURES.len(),
                actions.len()
            ),
        ));
    }
    let cuda = crate::episodes::prepare(o.threads, &o.device)?;
    let (mut setup, split) = open_setup(cfg, &o.device)?;
    if o.shards == 0 || o.shard >= o.shards {
        return Err(Error::arg("shard", format!("{} of {} does not exist", o.shard, o.shards)));
    }
    let n = if o.prompts == 0 { split.test.len() } else { o.prompts.min(split.test.len()) };
    let chosen: Vec<_> = (0..n).map(|i| &split.test[i * split.test.len() / n]).collect();
    let (max, format) = (cfg.actors.max_prompt_tokens, cfg.actors.prompt_format);
    let probe = setup.tokenizer.prompt(&chosen[0].prompt, format, max)?;
    setup.set_probe(&probe);
    let mut telemetry = Telemetry::open(cuda);
    let hardware = telemetry.hardware(cuda).label();
    let opts = MeasureOptions {
        new_tokens: cfg.actors.new_tokens,
        pairs: cfg.actors.pairs,
        timing: cfg.actors.timing,
    };
    let mine: Vec<(usize, _)> =
        chosen.iter().enumerate().filter(|(i, _)| i % o.shards == o.shard).collect();
    let mut out = Vec::with_capacity(mine.len());
    for (done, (i, p)) in mine.iter().copied().enumerate() {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        // The random baseline's draw depends on the prompt, not on how prompts were sharded.
        let mut rng =
            SmallRng::seed_from_u64(o.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let class = cfg.budget.test_class(p, o.seed).map_err(|reason| Error::Line {
            path: casrap_common::repo_path(&cfg.actors.prompts),
            line: p.line as usize,
            reason,
        })?;
        let budget = &cfg.budget.classes[class];
        let tokens = setup.tokenizer.prompt(&p.prompt, format, max)?;
        let snapshot = telemetry.snapshot();
        let reference = harness::reference_for(&setup.model, &tokens, &opts)?;
        let complexity = Complexity::of(&tokens, reference.prompt_ppl, &cfg.state);
        let state = state::vector(&snapshot, &complexity, cfg.budget.feature(class));
        let q_values =
            o.policy.q_values(&state).map_err(|e| Error::arg("checkpoint", e.to_string()))?;
        let greedy = casrap_common::qnet::argmax(&q_values);
        let random = rng.gen_range(0..actions.len());
        let mut results = Vec::with_capacity(actions.len());
        let mut ok = true;
        for (k, action) in actions.iter().enumerate() {
            setup.harness.check_restores = true;
            let m = setup.harness.measure(
                &mut setup.model,
                action,
                &tokens,
                reference.continuation(),
                &opts,
                i + k,
            )?;
            let Some(reward) = cfg.reward.reward_for(m.speedup(), m.ppl_change(), budget) else {
                tracing::warn!(prompt = p.id, action = %labels[k], "non-finite measurement; leaving this prompt out");
                ok = false;
                break;
            };
            results.push(ActionResult {
                action: labels[k].clone(),
                reward,
                speedup: m.speedup(),
                ceiling: m.ceiling(),
                ppl_change: m.ppl_change(),
                top1_agreement: m.top1_agreement,
                dense_tokens_per_s: m.decode_tokens_per_s(false),
                pruned_tokens_per_s: m.decode_tokens_per_s(true),
            });
        }
        if !ok {
            continue;
        }
        let r = PromptResult {
            index: i,
            prompt_id: p.id,
            category: p.category.clone(),
            budget: budget.name.clone(),
            prompt_tokens: tokens.len(),
            prompt_perplexity: reference.prompt_ppl,
            state,
            q_values,
            greedy,
            random,
            results,
            hardware_label: hardware.clone(),
        };
        progress(done + 1, mine.len(), &r);
        out.push(r);
    }
    Ok(out)
}
