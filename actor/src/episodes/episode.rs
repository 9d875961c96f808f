//! One episode: the dense reference, the state, the ε-greedy action, the measurement, the reward,
//! and the transition with its episode record.

use casrap_common::action::Action;
use casrap_common::config::RunConfig;
use casrap_common::prompts::Prompt;
use casrap_common::qnet;
use casrap_common::record::{self, EpisodeRecord};
use casrap_common::state::{self, Complexity};
use casrap_common::telemetry::{Hardware, Telemetry};
use casrap_proto::v1;
use rand::rngs::SmallRng;
use rand::Rng;

use super::wire::Policy;
use crate::prune::harness::{self, MeasureOptions};
use crate::prune::setup::Setup;
use casrap_engine::error::{Error, Result};

/// What one episode needs besides the model.
pub(super) struct Episode<'a> {
    pub(super) seq: u64,
    pub(super) prompt: &'a Prompt,
    /// Index of the episode's budget class in `budget.classes`.
    pub(super) budget: usize,
    pub(super) actions: &'a [Action],
    pub(super) labels: &'a [String],
    pub(super) hardware: &'a Hardware,
    pub(super) actor_id: &'a str,
}

impl Episode<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        &self,
        setup: &mut Setup,
        telemetry: &mut Telemetry,
        tokens: &[u32],
        opts: &MeasureOptions,
        cfg: &RunConfig,
        policy: Option<&Policy>,
        rng: &mut SmallRng,
    ) -> Result<(v1::Transition, EpisodeRecord)> {
        let snapshot = telemetry.snapshot();
        let reference = harness::reference_for(&setup.model, tokens, opts)?;
        let complexity = Complexity::of(tokens, reference.prompt_ppl, &cfg.state);
        let state = state::vector(&snapshot, &complexity, cfg.budget.feature(self.budget));
        let (epsilon, version) =
            policy.map_or((cfg.trainer.epsilon.start as f32, 0), |p| (p.epsilon, p.version));
        let q_values: Option<Vec<f32>> = policy
            .map(|p| p.net.q_values(&state))
            .transpose()
            .map_err(|e| Error::arg("policy", format!("its Q-values: {e}")))?;
        let explored = q_values.is_none() || rng.gen::<f32>() < epsilon;
        let index = match (&q_values, explored) {
            (Some(q), false) => qnet::argmax(q),
            _ => rng.gen_range(0..self.actions.len()),
        };
        let action = &self.actions[index];
        let m = setup.harness.measure(
            &mut setup.model,
            action,
            tokens,
            reference.continuation(),
            opts,
            self.seq as usize,
        )?;
        let speedup = m.speedup();
        let ppl_change = m.ppl_change();
        let class = &cfg.budget.classes[self.budget];
        let reward = cfg.reward.reward_for(speedup, ppl_change, class).ok_or_else(|| {
            Error::arg(
                "reward",
                format!(
                    "not finite (speedup {speedup}, perplexity change {ppl_change}) for `{}`",
                    self.labels[index]
                ),
            )
        })?;
        let side = |pruned: bool| {
            let runs: Vec<&harness::Run> = m.runs.iter().filter(|r| r.pruned == pruned).collect();
            record::Side {
                prefill_s: harness::median(runs.iter().map(|r| r.prefill_s).collect()),
                decode_s: harness::median(runs.iter().map(|r| r.decode_s).collect()),
                decode_tokens_per_s: m.decode_tokens_per_s(pruned),
                ppl: if pruned { m.ppl_pruned } else { m.ppl_dense },
                bytes_per_token: if pruned {
                    m.pruned_bytes_per_token
                } else {
                    m.dense_bytes_per_token
                } as u64,
            }
        };
        let median_of = |f: &dyn Fn(&harness::Run) -> Option<f64>| {
            harness::median(m.runs.iter().filter_map(f).collect())
        };
        let p = self.prompt;
        let record = EpisodeRecord {
            actor_id: self.actor_id.to_string(),
            seq: self.seq,
            hardware: self.hardware.clone(),
            hardware_label: self.hardware.label(),
            prompt: record::PromptRef {
                id: p.id,
                line: p.line,
                category: p.category.clone(),
                context_dependency: p.context_dependency.clone(),
            },
            budget: class.name.clone(),
            prompt_tokens: tokens.len(),
            prompt_perplexity: reference.prompt_ppl,
            complexity,
            telemetry: snapshot,
            state: state.clone(),
            action: self.labels[index].clone(),
            action_index: index,
            explored,
            epsilon,
            policy_version: version,
            q_values,
            reward,
            speedup,
            ceiling: m.ceiling(),
            ppl_change,
            top1_agreement: m.top1_agreement,
            dense: side(false),
            pruned: side(true),
            reference: record::Reference {
                prefill_s: reference.prefill_s,
                decode_s: reference.decode_s,
            },
            apply_s: median_of(&|r| r.apply_s),
            restore_s: median_of(&|r| r.restore_s),
            verify_s: median_of(&|r| r.verify_s.filter(|&v| v > 0.0)),
            restores_checked: m.restores_checked as u64,
            restore_identical: m.restore_identical,
            rebuilt: m.rebuilt,
            memory: record::Memory {
                profile_bytes: m.profile_bytes as u64,
                profiles_cached_bytes: setup.harness.cache.bytes() as u64,
            },
            measurement: serde_json::to_value(&m).map_err(|e| {
                Error::arg("measurement", format!("cannot be written as JSON: {e}"))
            })?,
            time_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        };
        let line = record
            .to_line()
            .map_err(|e| Error::arg("episode record", format!("cannot be written as JSON: {e}")))?;
        let transition = v1::Transition {
            seq: self.seq,
            state: state.clone(),
            action: index as u32,
            reward: reward as f32,
            next_state: state,
            done: true,
            metrics: Some(v1::EpisodeMetrics { json: line }),
        };
        Ok((transition, record))
    }
}
