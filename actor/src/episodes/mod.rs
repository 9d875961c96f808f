//! The episode loop of `casrap-actor run`.
//!
//! One episode is one prompt from the train split (shuffled per actor by the run's seed and the
//! actor id; episode `seq` takes the prompt at position `seq - 1`, so a restarted actor continues
//! where its durable records end; a prompt whose episode fails is skipped, which shifts the later
//! prompts of that process by one):
//! 1. telemetry snapshot;
//! 2. the dense reference run (prefill with every position's logits), which gives the prompt's
//!    token count and perplexity, i.e. the complexity features; with `timing: runs` it also
//!    decodes the greedy continuation quality is judged on (interleaved timing's dense side
//!    decodes the same tokens);
//! 3. the request's quality budget class (`budget:`; drawn per episode or from the prompt), the
//!    state vector, then an ε-greedy action from the newest policy's Q-network (uniform while
//!    no policy has arrived);
//! 4. the harness: dense and pruned decode interleaved step by step (or whole runs, ABBA),
//!    teacher-forced quality, restore (checked against the probe every `restore_check_every`
//!    episodes);
//! 5. the reward (under the episode's budget class); the transition (its `next_state` is the next
//!    episode's state within a trajectory of `horizon` episodes, `done` on the last) and the
//!    episode's record go to the outbox; new policy weights are taken between episodes.
//!
//! This file holds the loop; one episode is `episode.rs`, the wire (sender, policy watcher,
//! metrics endpoint, policy acceptance) `wire.rs`, the exported counts `metrics.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_common::prompts::{stable_hash, Prompt, Split};
use casrap_common::state;
use casrap_common::telemetry::Telemetry;
use casrap_proto::v1;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::client::Identity;
use crate::prune::harness::MeasureOptions;
use crate::prune::setup::{Calibration, Setup, SetupOptions};
use casrap_common::repo_path;
use casrap_engine::error::{Error, Result};

mod episode;
mod metrics;
mod wire;

use episode::Episode;
pub use metrics::ActorMetrics;
use wire::{Policy, Wire};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The learner, e.g. `http://127.0.0.1:50051`.
    pub learner: String,
    pub config: RunConfig,
    pub actor_id: String,
    /// Run episodes until this actor's seq reaches this (resuming after its durable seq).
    pub episodes: u64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Kernel/torch threads (0: one per core).
    pub threads: usize,
    /// How long to wait at the end for the learner to acknowledge everything.
    pub drain_timeout: Duration,
    /// Serve Prometheus metrics at `http://ADDR/metrics`.
    pub metrics: Option<String>,
    /// The run's operator token, to take this actor id from a session that holds it (an
    /// operator's take-over; sent with the first registration only).
    pub operator_token: Option<String>,
    /// Where the actor keeps its learner session across restarts.
    pub session_file: Option<std::path::PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub actor_id: String,
    pub resumed_after: u64,
    pub episodes_run: u64,
    pub last_seq: u64,
    pub policy_version: u64,
    pub reconnects: u64,
    pub interrupted: bool,
    pub seconds: f64,
}

/// The actor's hostname-and-device id (stable across restarts on one machine).
pub fn default_actor_id(device: &str) -> String {
    format!("{}-{}", casrap_common::telemetry::host_name(), device.replace(':', ""))
}

/// Sets the thread budget ([`casrap_engine::configure_threads`]; 0: one per core) and returns
/// the CUDA device index of `device` (`None` for the CPU), as every command that runs the model needs.
pub fn prepare(threads: usize, device: &str) -> Result<Option<u32>> {
    casrap_engine::configure_threads(threads);
    Ok(match casrap_engine::parse_device(device)? {
        tch::Device::Cuda(i) => Some(i as u32),
        _ => None,
    })
}

/// The train/test split of a run's prompts is fixed (seed 0), whatever the run's own seed, so
/// training and test mode never share a prompt.
pub const SPLIT_SEED: u64 = 0;

/// The run's model with its importances (calibrated on the train split, cached) and harness, and
/// the prompt split.
pub fn open_setup(cfg: &RunConfig, device: &str) -> Result<(Setup, Split)> {
    let a = &cfg.actors;
    let set = casrap_common::config::check_run_prompts(cfg)?;
    let split = set.split(a.test_fraction, SPLIT_SEED);
    if split.train.is_empty() || split.test.is_empty() {
        return Err(Error::arg(
            "actors.prompts",
            format!("{}: a split is empty", set.path.display()),
        ));
    }
    let setup = Setup::open(&SetupOptions {
        model: cfg.model.clone(),
        dtype: a.dtype.clone(),
        device: device.to_string(),
        seed: 0,
        calibration: train_calibration(&split.train, &a.prompts),
        max_profile_bytes: (a.max_profile_mb > 0.0).then_some((a.max_profile_mb * 1e6) as usize),
        sparsity: cfg
            .checked_actions()
            .iter()
            .any(|a| a.sparsity().is_some())
            .then_some(a.sparsity_allocation),
    })?;
    Ok((setup, split))
}

/// The importances' calibration a run uses: activation statistics on the train split of the
/// prompt file `prompts` (as the config names it, which keys the cached importances), so every
/// command that calibrates this way shares them.
pub fn train_calibration(train: &[Prompt], prompts: &str) -> Calibration {
    Calibration::Texts {
        texts: train.iter().map(|p| p.prompt.clone()).collect(),
        description: format!("the train split of {prompts}"),
        windows: 64,
        seq: 128,
    }
}

/// Runs episodes until `o.episodes` is reached or `stop` is raised (the current episode is then
/// abandoned: nothing of it is sent, and a restart runs it again).
pub fn run(o: &RunOptions, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let started = Instant::now();
    let cfg = &o.config;
    let a = &cfg.actors;
    let actions = cfg.checked_actions();
    let labels = cfg.action_labels();
    let cuda = prepare(o.threads, &o.device)?;

    // Prompts: the train split, in this actor's order.
    let (mut setup, split) = open_setup(cfg, &o.device)?;
    let mut train = split.train;
    let order_seed = a.seed ^ stable_hash(0, o.actor_id.as_bytes());
    train.shuffle(&mut SmallRng::seed_from_u64(order_seed));
    let probe = setup.tokenizer.prompt(&train[0].prompt, a.prompt_format, a.max_prompt_tokens)?;
    setup.set_probe(&probe);

    let mut telemetry = Telemetry::open(cuda);
    let hardware = telemetry.hardware(cuda);
    let info = v1::ActorInfo {
        actor_id: o.actor_id.clone(),
        hardware: Some(v1::HardwareProfile::from(&hardware)),
        model_identity: setup.identity.clone(),
        actions: labels.clone(),
        state_layout_version: state::LAYOUT_VERSION,
        state_dim: state::FEATURES.len() as u32,
        previous_session: 0,
        operator_token: o.operator_token.clone().unwrap_or_default(),
    };
    let conn = casrap_proto::connect::Connection::new(&o.learner, &cfg.security)?;
    let id = Identity {
        url: o.learner.clone(),
        conn,
        info,
        batch: a.batch,
        session_file: o.session_file.clone(),
    };

    let (mut wire, resumed_after) = Wire::start(
        &o.learner,
        cfg.actors.max_unacked,
        o.metrics.as_deref(),
        id,
        &hardware,
        &stop,
    )?;
    tracing::info!(actor = %o.actor_id, learner = %o.learner, resumed_after, target = o.episodes, hardware = %hardware.label(), "registered; running episodes");

    // Exploration draws differ after a restart (mixing in where it resumes), the prompt order does not.
    let mut rng = SmallRng::seed_from_u64(
        order_seed ^ 0x5eed ^ resumed_after.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let mut policy: Option<Policy> = None;
    let opts = MeasureOptions { new_tokens: a.new_tokens, pairs: a.pairs, timing: a.timing };
    let mut trajectory = Trajectory::default();
    let mut seq = resumed_after;
    let mut skipped = 0u64;
    let mut interrupted = false;
    let mut rewards = 0.0f64;
    let run_start = Instant::now();
    let first = seq + 1;
    let mut outcome: Result<()> = Ok(());
    while seq < o.episodes {
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if wire.policy_rx.has_changed().unwrap_or(false) {
            let update = wire.policy_rx.borrow_and_update().clone();
            if let Some(p) = update.and_then(|p| Policy::accept(&p, actions.len())) {
                policy = Some(p);
            }
        }
        let next = seq + 1;
        let cursor = ((next - 1 + skipped) % train.len() as u64) as usize;
        let prompt = &train[cursor];
        let draw = stable_hash(order_seed ^ 0x00b0_d6e7, &next.to_le_bytes());
        let budget = cfg.budget.class_of(prompt, draw).map_err(|reason| Error::Line {
            path: repo_path(&a.prompts),
            line: prompt.line as usize,
            reason,
        })?;
        let episode = Episode {
            seq: next,
            prompt,
            budget,
            actions: &actions,
            labels: &labels,
            hardware: &hardware,
            actor_id: &o.actor_id,
        };
        let tokens =
            setup.tokenizer.prompt(&prompt.prompt, a.prompt_format, a.max_prompt_tokens)?;
        setup.harness.check_restores =
            a.restore_check_every > 0 && next % a.restore_check_every == 0;
        let (t, record) = match episode.run(
            &mut setup,
            &mut telemetry,
            &tokens,
            &opts,
            cfg,
            policy.as_ref(),
            &mut rng,
        ) {
            Ok(s) => s,
            Err(e) => {
                // Bad input from one prompt (e.g. too long for the model) must not end the run.
                tracing::warn!(seq = next, prompt = prompt.id, error = %e, "episode failed; skipping its prompt");
                skipped += 1;
                if skipped > 100 + next / 2 {
                    outcome = Err(e);
                    break;
                }
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            tracing::info!(
                seq = next,
                "interrupted: abandoning this episode (it runs again on restart)"
            );
            interrupted = true;
            break;
        }
        rewards += f64::from(t.reward);
        wire.metrics.count(
            &labels[t.action as usize],
            f64::from(t.reward),
            policy.as_ref().map_or(0, |p| p.version),
            &record,
        );
        let done = next % a.horizon == 0 || next == o.episodes;
        let mut sent = true;
        for ready in trajectory.push(t, done) {
            if !wire.outbox.push(ready, &stop)? {
                sent = false;
                break;
            }
        }
        if !sent {
            interrupted = true;
            break;
        }
        seq = next;
        let n = seq - first + 1;
        if n % 10 == 0 || seq == o.episodes {
            let s = wire.outbox.stats();
            tracing::info!(
                seq,
                of = o.episodes,
                episodes_per_s = format!("{:.2}", n as f64 / run_start.elapsed().as_secs_f64()),
                mean_reward = format!("{:.4}", rewards / n as f64),
                policy = policy.as_ref().map_or(0, |p| p.version),
                durable = s.durable,
                unacknowledged = s.pending,
                "progress"
            );
        }
    }
    // A trajectory cut short by a stop ends here.
    if let Some(last) = trajectory.cut() {
        let _ = wire.outbox.push(last, &stop);
    }
    let drain =
        if interrupted { o.drain_timeout.min(Duration::from_secs(10)) } else { o.drain_timeout };
    let (drained, stats) = wire.close(drain);
    outcome?;
    drained?;
    let summary = RunSummary {
        actor_id: o.actor_id.clone(),
        resumed_after,
        episodes_run: seq - resumed_after,
        last_seq: stats.durable,
        policy_version: policy.as_ref().map_or(0, |p| p.version),
        reconnects: stats.reconnects,
        interrupted,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok(summary)
}

/// The transitions of one trajectory of `horizon` episodes. Each waits for the next episode's
/// state (its `next_state`); the last is `done` and its `next_state` is its own state.
#[derive(Default)]
struct Trajectory {
    pending: Option<v1::Transition>,
}

impl Trajectory {
    /// Takes an episode's transition (`done`: the trajectory's last); returns those now complete,
    /// in order: the one before it, and this one when it is the last.
    fn push(&mut self, mut t: v1::Transition, done: bool) -> Vec<v1::Transition> {
        let mut ready = Vec::with_capacity(2);
        if let Some(mut prev) = self.pending.take() {
            prev.next_state = t.state.clone();
            ready.push(prev);
        }
        t.done = done;
        if done {
            t.next_state = t.state.clone();
            ready.push(t);
        } else {
            self.pending = Some(t);
        }
        ready
    }

    /// Ends a trajectory cut short: its waiting transition, if any, as the last.
    fn cut(&mut self) -> Option<v1::Transition> {
        self.pending.take().map(|mut t| {
            t.done = true;
            t.next_state = t.state.clone();
            t
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transition(seq: u64) -> v1::Transition {
        v1::Transition {
            seq,
            state: vec![seq as f32; 3],
            action: 0,
            reward: 0.0,
            next_state: Vec::new(),
            done: false,
            metrics: None,
        }
    }

    #[test]
    fn a_trajectory_links_each_transition_to_the_next_state_and_ends_done() {
        let mut t = Trajectory::default();
        assert!(t.push(transition(1), false).is_empty());
        let ready = t.push(transition(2), false);
        assert_eq!(ready.len(), 1);
        assert_eq!((ready[0].seq, ready[0].done), (1, false));
        assert_eq!(ready[0].next_state, vec![2.0; 3]);
        let ready = t.push(transition(3), true);
        let got: Vec<(u64, bool, f32)> =
            ready.iter().map(|r| (r.seq, r.done, r.next_state[0])).collect();
        assert_eq!(got, [(2, false, 3.0), (3, true, 3.0)]);
        assert!(t.cut().is_none());
        // Cut short: the waiting transition ends the trajectory, pointing at its own state.
        assert!(t.push(transition(4), false).is_empty());
        let last = t.cut().unwrap();
        assert_eq!((last.seq, last.done, last.next_state.clone()), (4, true, vec![4.0; 3]));
        assert!(t.cut().is_none());
    }
}
