//! The run configuration (`deploy/*.yaml`): the model, the action set, the learner and the trainer.
//! A bad file fails with the path of the offending key (`trainer.lr`, `actions[2].intensity`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionSpec, Allocation};
use crate::budget::{BudgetConfig, Class};
use crate::error::{Error, Result};
use crate::state::{self, StateConfig};

/// ε decays linearly from `start` to `end` over `decay_updates` updates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Epsilon {
    pub start: f64,
    pub end: f64,
    pub decay_updates: u64,
}

/// Proportional prioritised replay (Schaul et al., 2016): transition i is drawn with probability
/// `p_i^alpha / sum p^alpha`, where `p_i = |TD error| + eps` (new ones enter at the highest
/// priority seen), and its loss is weighted by `(N * P(i))^-beta`, normalised by the largest weight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prioritized {
    pub alpha: f64,
    pub beta: f64,
    #[serde(default = "default_priority_eps")]
    pub eps: f64,
}

fn default_priority_eps() -> f64 {
    1e-3
}

/// Trainer settings (the `trainer:` section of a run config).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainerConfig {
    pub hidden: Vec<usize>,
    pub gamma: f64,
    pub batch: usize,
    pub lr: f64,
    /// Copy online to target every this many updates.
    pub target_update: u64,
    pub huber_delta: f64,
    pub grad_clip: f64,
    pub samples_per_insert: f64,
    /// Samples the learner may run ahead of `samples_per_insert * inserted`.
    pub spi_tolerance: f64,
    pub min_replay: u64,
    /// Publish the online weights every this many updates.
    pub publish_every: u64,
    /// Write a checkpoint every this many updates (0: only on shutdown).
    pub checkpoint_every: u64,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    pub epsilon: Epsilon,
    /// Prioritised sampling; uniform when absent.
    pub prioritized: Option<Prioritized>,
    pub seed: u64,
    /// The trainer thread's nice value (0 to 19; Linux). Training is throughput work and
    /// acknowledging is latency work: above 0, the trainer takes the cores the ingest path
    /// leaves, instead of delaying every acknowledgement on a machine it shares.
    pub nice: i32,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            gamma: 0.9,
            batch: 64,
            lr: 1e-3,
            target_update: 100,
            huber_delta: 1.0,
            grad_clip: 10.0,
            samples_per_insert: 8.0,
            spi_tolerance: 4096.0,
            min_replay: 64,
            publish_every: 10,
            checkpoint_every: 1000,
            keep_checkpoints: 3,
            epsilon: Epsilon { start: 1.0, end: 0.05, decay_updates: 5000 },
            prioritized: None,
            seed: 0,
            nice: 0,
        }
    }
}

impl TrainerConfig {
    /// The Q-network's layer widths: `state_dim`, `hidden`, one output per action.
    pub fn qnet_dims(&self, state_dim: usize, actions: usize) -> Vec<usize> {
        std::iter::once(state_dim).chain(self.hidden.iter().copied()).chain([actions]).collect()
    }

    /// Checks values a config file could get wrong; the message names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        let bad = |f: &str, why: &str| Err(format!("trainer.{f}: {why}"));
        if !(0.0..=1.0).contains(&self.gamma) {
            return bad("gamma", "must be in [0, 1]");
        }
        if self.batch == 0 {
            return bad("batch", "must be positive");
        }
        if self.hidden.len() > 14 || self.hidden.iter().any(|&w| w == 0 || w > 1 << 16) {
            return bad("hidden", "at most 14 layers, each 1 to 65536 wide");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be positive");
        }
        if self.target_update == 0 || self.publish_every == 0 {
            return bad("target_update / publish_every", "must be positive");
        }
        if self.samples_per_insert.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            || self.spi_tolerance < self.batch as f64
        {
            return bad(
                "samples_per_insert / spi_tolerance",
                "ratio must be positive and the tolerance at least one batch",
            );
        }
        if let Some(p) = &self.prioritized {
            if !(0.0..=1.0).contains(&p.alpha)
                || !(0.0..=1.0).contains(&p.beta)
                || p.eps.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
            {
                return bad("prioritized", "alpha and beta must be in [0, 1] and eps positive");
            }
        }
        if !(0..=19).contains(&self.nice) {
            return bad(
                "nice",
                "must be in 0 to 19 (a learner may lower its trainer, not raise it)",
            );
        }
        let e = &self.epsilon;
        if !(0.0..=1.0).contains(&e.start) || !(0.0..=1.0).contains(&e.end) {
            return bad("epsilon", "start and end must be in [0, 1]");
        }
        Ok(())
    }
}

/// The learner's section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Address the gRPC service binds (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// Folder of the run's learner state: `replay/` (sled) and `checkpoints/`.
    pub dir: String,
    pub replay_capacity: u64,
    /// Most transitions one batch may carry.
    pub max_batch: usize,
    /// Address of the Prometheus endpoint (`GET /metrics`); none when absent.
    pub metrics: Option<String>,
    /// Page cache of the replay store in MiB (bounds the learner's memory; sled's own default
    /// is 1 GiB).
    pub cache_mb: u64,
    /// Seconds an actor id stays held by its session after its last transition stream closed
    /// (and after the learner starts, for ids with stored transitions): meanwhile only the
    /// actor's own reconnect or the operator token may register it.
    pub session_hold_s: u64,
    /// Least time between two policy pushes to one watcher, in milliseconds (0: every version
    /// as soon as it is published). A watcher then gets the newest version once the interval
    /// since its last push has passed, and the versions in between are skipped: a fleet's
    /// pushes stop growing with the publish rate.
    pub push_interval_ms: u64,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            dir: "runs/learner".into(),
            replay_capacity: 1_000_000,
            max_batch: 1024,
            metrics: None,
            cache_mb: 64,
            session_hold_s: 60,
            push_interval_ms: 0,
        }
    }
}

/// The reward of an episode (DESIGN.md's seed, generalised):
/// `speed_gain = decode speedup - 1` (pruned over dense tokens/s, paired ABBA runs),
/// `ppl_deg = (ppl_pruned - ppl_dense) / ppl_dense` (teacher forced on the dense continuation),
/// `r = alpha * speed_gain - beta * max(0, ppl_deg) - slowdown_penalty * max(0, -speed_gain)`,
/// then clipped to `clip` when given. A request's budget class ([`crate::budget::Class`]) may
/// replace `beta` and add `- over_penalty * max(0, ppl_deg - limit)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    pub alpha: f64,
    pub beta: f64,
    /// Extra weight on a slowdown (pruned slower than dense).
    pub slowdown_penalty: f64,
    /// `[low, high]` bounds of the reward.
    pub clip: Option<[f64; 2]>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self { alpha: 0.7, beta: 0.3, slowdown_penalty: 0.0, clip: Some([-1.0, 1.0]) }
    }
}

impl RewardConfig {
    /// The seed's reward of a measured speedup and perplexity change; `None` when either is not
    /// finite.
    pub fn reward(&self, speedup: f64, ppl_change: f64) -> Option<f64> {
        self.reward_for(speedup, ppl_change, &Class::seed("any"))
    }

    /// The reward under budget class `class`; `None` when an input is not finite.
    pub fn reward_for(&self, speedup: f64, ppl_change: f64, class: &Class) -> Option<f64> {
        if !speedup.is_finite() || !ppl_change.is_finite() {
            return None;
        }
        let gain = speedup - 1.0;
        let over = class.limit.map_or(0.0, |l| class.over_penalty * (ppl_change - l).max(0.0));
        let mut r = self.alpha * gain
            - class.beta.unwrap_or(self.beta) * ppl_change.max(0.0)
            - over
            - self.slowdown_penalty * (-gain).max(0.0);
        if let Some([lo, hi]) = self.clip {
            r = r.clamp(lo, hi);
        }
        Some(r)
    }

    fn check(&self) -> std::result::Result<(), String> {
        for (f, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("slowdown_penalty", self.slowdown_penalty),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("reward.{f}: must be finite and not negative, got {v}"));
            }
        }
        if let Some([lo, hi]) = self.clip {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(format!(
                    "reward.clip: needs finite [low, high] with low < high, got [{lo}, {hi}]"
                ));
            }
        }
        Ok(())
    }
}

/// How an episode times the dense and the pruned model against each other.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Whole generations in ABBA pairs; the speedup is the geometric mean of the pairs' ratios.
    /// Drift of memory bandwidth between the two runs of a pair is not cancelled.
    Runs,
    /// Dense and pruned decode alternate step by step on the same positions, each with its own
    /// KV cache (switching profiles is a pointer swap); the speedup is the median of the per-step
    /// time ratios, so drifts slower than a step cancel.
    #[default]
    Interleaved,
}

impl Timing {
    /// The method of records written before timing was recorded.
    pub fn runs() -> Self {
        Timing::Runs
    }
}

impl std::str::FromStr for Timing {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "runs" => Ok(Timing::Runs),
            "interleaved" => Ok(Timing::Interleaved),
            other => Err(format!("unknown timing `{other}` (expected `interleaved` or `runs`)")),
        }
    }
}

/// How a prompt's text becomes the model's input (`actors.prompt_format`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PromptFormat {
    /// The text as it is, with the tokenizer's special tokens (BOS for LLaMA).
    #[default]
    Raw,
    /// The text as one user turn of the model's chat template (its `chat_template.jinja` or
    /// `tokenizer_config.json`'s `chat_template`), ending with the assistant's header, as
    /// transformers' `apply_chat_template` writes it; the template writes the special tokens.
    Chat,
}

impl PromptFormat {
    /// The name a config and the command lines use (`raw`, `chat`).
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::Raw => "raw",
            PromptFormat::Chat => "chat",
        }
    }
}

/// The actors of a run (`actors:`): how many, where, and what each episode does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ActorsConfig {
    /// Actor processes started by `casrap run`.
    pub count: usize,
    /// Devices, given to actors in turn (`cpu`, `cuda:0`, ...).
    pub devices: Vec<String>,
    /// Episodes (one prompt each) of the whole run, shared evenly between the actors.
    pub episodes: u64,
    /// Episodes per RL trajectory: `done` is set on every `horizon`-th (1: each prompt stands alone).
    pub horizon: u64,
    /// Prompt CSV; episodes draw from its train split, shuffled per actor.
    pub prompts: String,
    /// Fraction of each category held out as the test split.
    pub test_fraction: f64,
    /// Prompts longer than this are cut (tokens; the default leaves room for 64 new tokens in a
    /// model of 1024 positions, such as the embedded one).
    pub max_prompt_tokens: usize,
    /// How the prompt's text reaches the model: `raw`, or `chat` (an instruct model's template;
    /// the model must ship one). Truncation to `max_prompt_tokens` applies to the result.
    pub prompt_format: PromptFormat,
    /// Tokens decoded per timed run (fixed length, EOS ignored).
    pub new_tokens: usize,
    /// Dense/pruned pairs per episode (ABBA); with `timing: interleaved`, interleaved passes.
    pub pairs: usize,
    /// How dense and pruned decode are timed against each other.
    pub timing: Timing,
    /// Weight dtype: f32, bf16 or f16.
    pub dtype: String,
    /// Torch/kernel threads per actor (0: one per core divided by the actors on this machine).
    pub threads: usize,
    /// Transitions sent per batch (at most; a batch leaves as soon as one is ready).
    pub batch: usize,
    /// Transitions kept until the learner acknowledges them; when full the actor pauses.
    pub max_unacked: usize,
    /// Check the restored model against the dense reference every this many episodes (0: never).
    pub restore_check_every: u64,
    /// Budget for cached pruned profiles in MB (0: twice the dense weights).
    pub max_profile_mb: f64,
    /// How a `sparsity` action's level is shared among each block's matrices: `uniform` (each
    /// skips that share of its inputs) or `greedy` (TEAL's per-block search: each block skips
    /// that share of its weight bytes, spread to keep its output error lowest).
    pub sparsity_allocation: Allocation,
    /// Seed of prompt order and exploration (mixed with the actor id).
    pub seed: u64,
}

impl Default for ActorsConfig {
    fn default() -> Self {
        Self {
            count: 2,
            devices: vec!["cpu".into()],
            episodes: 200,
            horizon: 1,
            prompts: "data/prompts/prompts.csv".into(),
            test_fraction: 0.2,
            max_prompt_tokens: 960,
            prompt_format: PromptFormat::Raw,
            new_tokens: 16,
            pairs: 1,
            timing: Timing::default(),
            dtype: "f32".into(),
            threads: 0,
            batch: 8,
            max_unacked: 4096,
            restore_check_every: 1,
            max_profile_mb: 0.0,
            sparsity_allocation: Allocation::default(),
            seed: 0,
        }
    }
}

impl ActorsConfig {
    fn check(&self) -> std::result::Result<(), String> {
        let bad = |f: &str, why: &str| Err(format!("actors.{f}: {why}"));
        if self.count == 0 {
            return bad("count", "must be at least 1");
        }
        if self.devices.is_empty() {
            return bad("devices", "needs at least one device");
        }
        for (i, d) in self.devices.iter().enumerate() {
            let ok = d == "cpu"
                || d == "cuda"
                || d.strip_prefix("cuda:").is_some_and(|n| n.parse::<u32>().is_ok());
            if !ok {
                return Err(format!("actors.devices[{i}]: `{d}` is not cpu, cuda or cuda:N"));
            }
        }
        if self.horizon == 0 {
            return bad("horizon", "must be at least 1");
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return bad("test_fraction", "must be in (0, 1)");
        }
        if self.new_tokens < 2 || self.pairs == 0 {
            return bad("new_tokens / pairs", "need at least two new tokens and one pair");
        }
        if self.max_prompt_tokens < 2 {
            return bad("max_prompt_tokens", "must be at least 2");
        }
        if !matches!(self.dtype.as_str(), "f32" | "bf16" | "f16") {
            return bad("dtype", "must be f32, bf16 or f16");
        }
        if self.batch == 0 || self.max_unacked < self.batch {
            return bad(
                "batch / max_unacked",
                "batch must be positive and max_unacked at least one batch",
            );
        }
        if !(self.max_profile_mb.is_finite() && self.max_profile_mb >= 0.0) {
            return bad("max_profile_mb", "must be 0 (default) or positive");
        }
        Ok(())
    }

    /// Episodes actor `index` (0-based) of the run's `count` runs: an even share, the remainder to
    /// the first ones.
    pub fn episodes_of(&self, index: usize) -> u64 {
        let n = self.count.max(1) as u64;
        self.episodes / n + u64::from((index as u64) < self.episodes % n)
    }

    /// Device of actor `index`.
    pub fn device_of(&self, index: usize) -> &str {
        self.devices.get(index % self.devices.len().max(1)).map_or("cpu", String::as_str)
    }
}

/// TLS between actors and the learner (paths to PEM files).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The learner's certificate chain and private key.
    pub cert: String,
    pub key: String,
    /// The CA actors trust for the learner's certificate.
    pub ca: String,
    /// The name in the learner's certificate (default: the host of the learner's URL).
    #[serde(default)]
    pub domain: Option<String>,
    /// When set, the learner requires client certificates signed by this CA...
    #[serde(default)]
    pub client_ca: Option<String>,
    /// ...and actors present this certificate and key.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

/// Who may talk to the learner (the `security:` section).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// File holding the bearer token every RPC must carry (else the `CASRAP_TOKEN` environment
    /// variable; neither: no token).
    pub token_file: Option<String>,
    pub tls: Option<TlsConfig>,
    /// Let the learner listen on a non-loopback address without a token.
    pub allow_insecure: bool,
    /// File holding the run's operator token (else `CASRAP_OPERATOR_TOKEN`; neither: none). A
    /// registration carrying it may take an actor id another session holds (an operator's
    /// take-over: `casrap-actor run --take-over`). Keep it from the actors.
    pub operator_token_file: Option<String>,
}

/// The environment variable holding the bearer token when `security.token_file` is not set.
pub const TOKEN_ENV: &str = "CASRAP_TOKEN";

/// The environment variable holding the operator token when `security.operator_token_file` is
/// not set.
pub const OPERATOR_TOKEN_ENV: &str = "CASRAP_OPERATOR_TOKEN";

impl SecurityConfig {
    /// A fresh bearer token: 128 bits from the thread's CSPRNG, as 32 hex digits (what `casrap run`
    /// and `casrap k8s` generate when the config names no token file).
    pub fn random_token() -> String {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..32).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
    }

    /// The bearer token, if any: the file's first line, else `CASRAP_TOKEN`.
    pub fn token(&self) -> Result<Option<String>> {
        read_secret(self.token_file.as_deref(), TOKEN_ENV, "bearer token")
    }

    /// The operator token, if any: `operator_token_file`'s first line, else
    /// `CASRAP_OPERATOR_TOKEN`.
    pub fn operator_token(&self) -> Result<Option<String>> {
        read_secret(self.operator_token_file.as_deref(), OPERATOR_TOKEN_ENV, "operator token")
    }
}

/// Writes a secret (a key, a session) readable by its owner only: to a temporary file of mode
/// 600, synced, then renamed into place and the folder synced, so a crash leaves the old file or
/// the new one, never a part.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// A secret: the file's first line, else the environment variable `env` (neither: none).
fn read_secret(file: Option<&str>, env: &str, what: &str) -> Result<Option<String>> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Io { path: path.into(), source: e })?;
            let t = text.lines().next().unwrap_or("").trim().to_string();
            if t.is_empty() {
                return Err(Error::File {
                    path: path.into(),
                    reason: format!("the {what} file is empty"),
                });
            }
            Some(t)
        }
        None => std::env::var(env).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
    };
    if let Some(t) = &token {
        if !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::Invalid {
                what: what.into(),
                reason: "must be printable ASCII without spaces".into(),
            });
        }
    }
    Ok(token)
}

/// A run: what every process of it agrees on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default)]
    pub name: String,
    /// The model actors prune (default: the embedded one).
    #[serde(default = "default_model")]
    pub model: String,
    /// The policy's actions, in order.
    pub actions: Vec<ActionSpec>,
    #[serde(default)]
    pub learner: LearnerConfig,
    #[serde(default)]
    pub trainer: TrainerConfig,
    #[serde(default)]
    pub reward: RewardConfig,
    #[serde(default)]
    pub state: StateConfig,
    /// Request quality budgets (absent: one class, the seed's reward).
    #[serde(default)]
    pub budget: BudgetConfig,
    #[serde(default)]
    pub actors: ActorsConfig,
    #[serde(default)]
    pub security: SecurityConfig,
}

fn default_model() -> String {
    "models/pydoc-llama-7m".into()
}

impl RunConfig {
    /// Parses and checks a YAML run file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io { path: path.into(), source: e })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and checks YAML text; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let cfg: RunConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let reason = e.into_inner().to_string();
            // The YAML error repeats (part of) the key path in front; it is already in `field`.
            let reason = match reason.split_once(": ") {
                Some((head, rest)) if field.starts_with(head) => rest.to_string(),
                _ => reason,
            };
            Error::Config {
                path: path.into(),
                field: if field == "." { "(top level)".into() } else { field },
                reason,
            }
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad =
            |field: String, reason: String| Error::Config { path: path.into(), field, reason };
        if self.actions.is_empty() {
            return Err(bad("actions".into(), "the action list is empty".into()));
        }
        let mut labels = Vec::new();
        for (i, spec) in self.actions.iter().enumerate() {
            let action = spec.check().map_err(|e| bad(format!("actions[{i}]"), e.to_string()))?;
            let label = action.label();
            if labels.contains(&label) {
                return Err(bad(format!("actions[{i}]"), format!("`{label}` is listed twice")));
            }
            labels.push(label);
        }
        for checked in [
            self.trainer.check(),
            self.reward.check(),
            self.state.check(),
            self.budget.check(),
            self.actors.check(),
        ] {
            checked.map_err(|e| {
                let (field, reason) = e.split_once(": ").unwrap_or(("(top level)", e.as_str()));
                bad(field.into(), reason.into())
            })?;
        }
        if self.learner.max_batch == 0 || self.learner.replay_capacity == 0 {
            return Err(bad(
                "learner".into(),
                "max_batch and replay_capacity must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The config as YAML (what a run folder keeps as `config.yaml`).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(self)
            .map_err(|e| Error::Invalid { what: "run config".into(), reason: e.to_string() })
    }

    /// The checked actions, in policy order.
    pub fn checked_actions(&self) -> Vec<Action> {
        self.actions.iter().filter_map(|a| a.check().ok()).collect()
    }

    /// Action labels in policy order (what actors and the learner compare).
    pub fn action_labels(&self) -> Vec<String> {
        self.checked_actions().iter().map(Action::label).collect()
    }

    /// Size of the state vector.
    pub fn state_dim(&self) -> usize {
        state::FEATURES.len()
    }

    /// The Q-network's layer widths: the state, `trainer.hidden`, one output per action.
    pub fn qnet_dims(&self) -> Vec<usize> {
        self.trainer.qnet_dims(self.state_dim(), self.action_labels().len())
    }
}

/// Loads the run's prompt file and checks that every prompt gets a budget class (the error names
/// the row): what `casrap run` and `casrap test` check before starting anything, and every actor
/// when it opens its prompts.
pub fn check_run_prompts(cfg: &RunConfig) -> crate::Result<crate::prompts::PromptSet> {
    let set = crate::prompts::PromptSet::load(
        &crate::repo_path(&cfg.actors.prompts),
        crate::prompts::BadRows::Skip,
    )?;
    cfg.budget.check_prompts(&set.prompts).map_err(|(line, reason)| crate::Error::Line {
        path: set.path.clone(),
        line,
        reason: format!("{reason} (the run config's `budget:` section)"),
    })?;
    Ok(set)
}
