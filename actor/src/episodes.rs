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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::action::Action;
use casrap_common::config::RunConfig;
use casrap_common::prompts::{stable_hash, Prompt, Split};
use casrap_common::qnet::{self, QNet};
use casrap_common::record::{self, EpisodeRecord};
use casrap_common::state::{self, Complexity};
use casrap_common::telemetry::{Hardware, Telemetry};
use casrap_proto::v1;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::client::{self, Identity, Outbox, PolicyBytes};
use crate::prune::harness::{self, MeasureOptions};
use crate::prune::setup::{Calibration, Setup, SetupOptions};
use casrap_common::repo_path;
use casrap_engine::error::{Error, Result};

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
}

/// What an actor exports at `/metrics`.
#[derive(Debug, Default)]
pub struct ActorMetrics {
    pub episodes: u64,
    pub actions: std::collections::BTreeMap<String, u64>,
    pub reward_sum: f64,
    pub dense_tokens_per_s: f64,
    pub pruned_tokens_per_s: f64,
    pub policy_version: u64,
}

impl ActorMetrics {
    /// Counts one finished episode.
    fn count(&mut self, action: &str, reward: f64, policy_version: u64, record: &EpisodeRecord) {
        self.episodes += 1;
        *self.actions.entry(action.to_string()).or_insert(0) += 1;
        self.reward_sum += reward;
        self.policy_version = policy_version;
        self.dense_tokens_per_s = record.dense.decode_tokens_per_s;
        self.pruned_tokens_per_s = record.pruned.decode_tokens_per_s;
    }

    /// The exposition, with the outbox's state and the hardware profile as a label.
    pub fn render(&self, hardware: &str, outbox: client::OutboxStats) -> String {
        use casrap_common::metrics::Exposition;
        let hw = || vec![("hardware", hardware.to_string())];
        let actions: Vec<(Vec<(&str, String)>, f64)> = self
            .actions
            .iter()
            .map(|(a, n)| {
                (vec![("action", a.clone()), ("hardware", hardware.to_string())], *n as f64)
            })
            .collect();
        Exposition::new()
            .labeled(
                "casrap_actor_episodes_total",
                "Episodes sent to the learner.",
                "counter",
                &[(hw(), self.episodes as f64)],
            )
            .labeled(
                "casrap_actor_actions_total",
                "Episodes per action chosen.",
                "counter",
                &actions,
            )
            .labeled(
                "casrap_actor_reward_sum",
                "Sum of the rewards of the episodes sent (mean = sum / episodes).",
                "counter",
                &[(hw(), self.reward_sum)],
            )
            .labeled(
                "casrap_actor_dense_tokens_per_second",
                "Dense decode tokens/s in the last episode.",
                "gauge",
                &[(hw(), self.dense_tokens_per_s)],
            )
            .labeled(
                "casrap_actor_pruned_tokens_per_second",
                "Pruned decode tokens/s in the last episode.",
                "gauge",
                &[(hw(), self.pruned_tokens_per_s)],
            )
            .labeled(
                "casrap_actor_policy_version",
                "Version of the policy acting.",
                "gauge",
                &[(hw(), self.policy_version as f64)],
            )
            .labeled(
                "casrap_actor_unacknowledged",
                "Transitions waiting for the learner's acknowledgement.",
                "gauge",
                &[(hw(), outbox.pending as f64)],
            )
            .labeled(
                "casrap_actor_reconnects_total",
                "Registrations after the first.",
                "counter",
                &[(hw(), outbox.reconnects as f64)],
            )
            .finish()
    }
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

struct Policy {
    version: u64,
    epsilon: f32,
    net: QNet,
}

impl Policy {
    /// A pushed policy, when it decodes to a network for this state layout and `actions`
    /// actions; otherwise it is logged and the actor keeps the one it has.
    fn accept(p: &PolicyBytes, actions: usize) -> Option<Self> {
        match QNet::decode(&p.weights, None) {
            Ok(net)
                if net.dims().first() == Some(&state::FEATURES.len())
                    && net.actions() == actions =>
            {
                tracing::debug!(version = p.version, epsilon = p.epsilon, "new policy");
                Some(Policy { version: p.version, epsilon: p.epsilon, net })
            }
            Ok(net) => {
                tracing::error!(version = p.version, dims = ?net.dims(), "policy has the wrong shape; keeping the previous one");
                None
            }
            Err(e) => {
                tracing::error!(version = p.version, error = %e, "policy does not decode; keeping the previous one");
                None
            }
        }
    }
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
        sparsity: cfg.checked_actions().iter().any(|a| a.sparsity().is_some()),
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
    };
    let conn = casrap_proto::connect::Connection::new(&o.learner, &cfg.security)?;
    let id = Identity { url: o.learner.clone(), conn, info, batch: a.batch };

    let metrics = Arc::new(std::sync::Mutex::new(ActorMetrics::default()));
    let (mut wire, resumed_after) = Wire::start(o, id, &hardware, &metrics, &stop)?;
    tracing::info!(actor = %o.actor_id, learner = %o.learner, resumed_after, target = o.episodes, hardware = %hardware.label(), "registered; running episodes");

    // Exploration draws differ after a restart (mixing in where it resumes), the prompt order does not.
    let mut rng = SmallRng::seed_from_u64(
        order_seed ^ 0x5eed ^ resumed_after.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    let mut policy: Option<Policy> = None;
    let opts = MeasureOptions { new_tokens: a.new_tokens, pairs: a.pairs, timing: a.timing };
    let mut pending: Option<v1::Transition> = None;
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
        let (mut t, record) = match episode.run(
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
        if let Some(mut prev) = pending.take() {
            prev.next_state = t.state.clone();
            if !wire.outbox.push(prev, &stop)? {
                interrupted = true;
                break;
            }
        }
        rewards += f64::from(t.reward);
        metrics.lock().unwrap_or_else(|e| e.into_inner()).count(
            &labels[t.action as usize],
            f64::from(t.reward),
            policy.as_ref().map_or(0, |p| p.version),
            &record,
        );
        let done = next % a.horizon == 0 || next == o.episodes;
        t.done = done;
        if done {
            t.next_state = t.state.clone();
            if !wire.outbox.push(t, &stop)? {
                interrupted = true;
                break;
            }
        } else {
            pending = Some(t);
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
    if let Some(mut prev) = pending.take() {
        prev.done = true;
        prev.next_state = prev.state.clone();
        let _ = wire.outbox.push(prev, &stop);
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

/// The actor's side of the wire: a runtime of its own beside the model thread, running the
/// transition sender (from the outbox), the policy watcher and the metrics endpoint.
struct Wire {
    rt: tokio::runtime::Runtime,
    outbox: Arc<Outbox>,
    sender: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    policy_rx: watch::Receiver<Option<Arc<PolicyBytes>>>,
    _metrics: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Wire {
    /// Starts the tasks and waits for the registration; returns the wire and the sequence number
    /// the learner already holds for this actor (where the run resumes).
    fn start(
        o: &RunOptions,
        id: Identity,
        hardware: &Hardware,
        metrics: &Arc<std::sync::Mutex<ActorMetrics>>,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Self, u64)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("actor-net")
            .build()
            .map_err(|e| Error::arg("runtime", e.to_string()))?;
        let outbox = Outbox::new(o.config.actors.max_unacked, &o.learner);
        let (reg_tx, reg_rx) = tokio::sync::oneshot::channel();
        let sender = rt.spawn(client::run_sender(id.clone(), outbox.clone(), reg_tx, stop.clone()));
        let (policy_tx, policy_rx) = watch::channel::<Option<Arc<PolicyBytes>>>(None);
        let watcher = rt.spawn(client::run_watcher(id, policy_tx));
        let metrics_task = match &o.metrics {
            None => None,
            Some(addr) => {
                let l = rt
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .map_err(|e| Error::io(addr, e))?;
                let bound = l.local_addr().map_err(|e| Error::io(addr, e))?;
                let (m, ob, label) = (metrics.clone(), outbox.clone(), hardware.label());
                let render: casrap_common::metrics::Render = Arc::new(move || {
                    m.lock().unwrap_or_else(|e| e.into_inner()).render(&label, ob.stats())
                });
                println!("metrics on {bound}");
                tracing::info!(addr = %bound, "metrics at /metrics");
                Some(rt.spawn(casrap_common::metrics::serve(l, render)))
            }
        };
        let resumed_after = rt.block_on(reg_rx).map_err(|_| Error::Learner {
            url: o.learner.clone(),
            reason: "the connection task ended before registering".into(),
        })??;
        let wire = Wire { rt, outbox, sender, watcher, policy_rx, _metrics: metrics_task };
        Ok((wire, resumed_after))
    }

    /// Closes the outbox, waits up to `drain` for the learner to acknowledge what it holds, and
    /// stops the tasks; returns the drain's outcome and the outbox's final counts.
    fn close(self, drain: Duration) -> (Result<()>, client::OutboxStats) {
        self.outbox.close();
        let drained = self.outbox.wait_drained(drain);
        let stats = self.outbox.stats();
        self.sender.abort();
        self.watcher.abort();
        self.rt.shutdown_timeout(Duration::from_secs(1));
        (drained, stats)
    }
}

struct Episode<'a> {
    seq: u64,
    prompt: &'a Prompt,
    /// Index of the episode's budget class in `budget.classes`.
    budget: usize,
    actions: &'a [Action],
    labels: &'a [String],
    hardware: &'a Hardware,
    actor_id: &'a str,
}

impl Episode<'_> {
    #[allow(clippy::too_many_arguments)]
    fn run(
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
