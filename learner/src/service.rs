//! The `casrap.v1.Learner` gRPC service: registration, durable transition ingest with in-band
//! rejections, policy broadcast and status.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use casrap_common::record::EpisodeRecord;
use casrap_common::rl::Transition;
use casrap_common::telemetry::Hardware;
use casrap_proto::v1;
use casrap_proto::MAX_WEIGHT_CHUNK;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

use casrap_store::replay::Replay;

use crate::identity::{self, Identity};

/// What every actor must agree on with the learner.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    pub state_layout_version: u32,
    pub state_dim: usize,
    /// Action labels in policy order.
    pub actions: Vec<String>,
    /// Most transitions in one batch.
    pub max_batch: usize,
    /// `[low, high]` of an acceptable reward (the run's `reward.clip`); without it, rewards
    /// beyond +-[`MAX_ABS_REWARD`] are refused.
    pub reward_bounds: Option<[f32; 2]>,
}

/// Largest reward magnitude accepted when the run does not clip rewards.
pub const MAX_ABS_REWARD: f32 = 1e3;

/// An actor is listed as connected this long after registering, even without a stream.
const RECENTLY_REGISTERED: std::time::Duration = std::time::Duration::from_secs(60);

/// Registrations kept before idle ones (no stream, not recent) are forgotten; beyond it, with
/// none idle, a registration is refused.
const MAX_REGISTRATIONS: usize = 20_000;

/// Longest text of a registration's hardware and model fields, in bytes.
const MAX_REGISTRATION_TEXT: usize = 256;

/// Largest registration message, in bytes (its action labels included).
const MAX_REGISTRATION_BYTES: usize = 64 << 10;

/// Actors one Status lists by default, and at most.
const STATUS_PAGE: usize = 1_000;
const MAX_STATUS_PAGE: usize = 10_000;

/// One actor's registration (what Status lists of it; the rest of its message is checked and
/// dropped).
struct Registered {
    hardware: Option<v1::HardwareProfile>,
    /// Batches must carry it; a newer registration of the id replaces it.
    session: u64,
    /// Listed as connected until then even without a stream.
    recent_until: std::time::Instant,
    /// Without a stream, the id stays held by `session` until then (see [`crate::identity`]).
    held_until: std::time::Instant,
    /// Transition streams open for this actor.
    streams: usize,
}

impl Registered {
    fn connected(&self) -> bool {
        self.streams > 0 || std::time::Instant::now() < self.recent_until
    }

    /// How much longer `session` holds the id at least (`None`: not held); an open stream
    /// holds it for as long as it stays open, at least the hold time.
    fn held_for(&self, hold: std::time::Duration) -> Option<std::time::Duration> {
        if self.streams > 0 {
            return Some(hold);
        }
        let left = self.held_until.saturating_duration_since(std::time::Instant::now());
        (!left.is_zero()).then_some(left)
    }
}

/// A published policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: u64,
    pub epsilon: f32,
    /// Shared by every watcher: each sends slices of it, never a copy.
    pub weights: prost::bytes::Bytes,
}

/// State shared by the service, the trainer and the tests.
pub struct Shared {
    pub contract: Contract,
    pub replay: Arc<Replay>,
    /// Who may use an actor id.
    pub identity: Identity,
    /// Least time between two pushes to one watcher, ms (`learner.push_interval_ms`).
    push_interval_ms: AtomicU64,
    policy: watch::Sender<Option<Policy>>,
    actors: Mutex<HashMap<String, Registered>>,
    /// Why the trainer stopped, once it has (the learner then shuts down).
    trainer_error: Mutex<Option<String>>,
    pub updates: AtomicU64,
    /// The last update's loss (f64 bits; NaN before the first).
    pub loss_bits: AtomicU64,
    /// When each recent version was published (for push-latency measurements).
    published_at: Mutex<std::collections::VecDeque<(u64, std::time::Instant, u64)>>,
    /// Rewards of the most recent stored transitions (for progress displays).
    recent: Mutex<std::collections::VecDeque<f32>>,
}

/// Transitions the recent mean reward covers.
const RECENT: usize = 100;

impl Shared {
    /// Shared state with a session key of this process only, the default hold time and no
    /// operator token (tests and tools; [`crate::server`] loads the learner's key).
    pub fn new(contract: Contract, replay: Arc<Replay>) -> Arc<Self> {
        let identity = Identity::ephemeral(
            std::time::Duration::from_secs(
                casrap_common::config::LearnerConfig::default().session_hold_s,
            ),
            None,
        );
        Self::with_identity(contract, replay, identity)
    }

    pub fn with_identity(contract: Contract, replay: Arc<Replay>, identity: Identity) -> Arc<Self> {
        let (policy, _) = watch::channel(None);
        if let Err(e) = replay.start_committer() {
            tracing::error!(error = %e, "cannot start the replay store's committer");
        }
        Arc::new(Self {
            contract,
            replay,
            identity,
            push_interval_ms: AtomicU64::new(0),
            policy,
            actors: Mutex::new(HashMap::new()),
            trainer_error: Mutex::new(None),
            updates: AtomicU64::new(0),
            loss_bits: AtomicU64::new(f64::NAN.to_bits()),
            published_at: Mutex::new(Default::default()),
            recent: Mutex::new(Default::default()),
        })
    }

    /// Sets the least time between two pushes to one watcher (0: none).
    pub fn set_push_interval(&self, interval: std::time::Duration) {
        self.push_interval_ms.store(interval.as_millis() as u64, Ordering::Relaxed);
    }

    /// Makes `policy` the current one; every watcher receives it. Versions must increase, and
    /// each is durable in the store before any actor sees it (a version that cannot be recorded
    /// is not published: the trainer's next one is).
    pub fn publish(&self, policy: Policy) {
        let version = policy.version;
        if self.policy.borrow().as_ref().is_some_and(|c| c.version >= version) {
            tracing::warn!(version, "ignoring a policy version that does not increase");
            return;
        }
        if let Err(e) = self.replay.note_policy_version(version) {
            tracing::error!(version, error = %e, "cannot record the policy version in the store; not publishing it");
            return;
        }
        let sent = self.policy.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.version >= policy.version) {
                tracing::warn!(
                    version = policy.version,
                    "ignoring a policy version that does not increase"
                );
                return false;
            }
            *cur = Some(policy);
            true
        });
        if sent {
            let mut log = self.published_at.lock().unwrap_or_else(|e| e.into_inner());
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            log.push_back((version, std::time::Instant::now(), unix));
            while log.len() > 4096 {
                log.pop_front();
            }
        }
    }

    /// When `version` was published, if it is recent.
    pub fn published_at(&self, version: u64) -> Option<std::time::Instant> {
        self.published_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|(v, ..)| *v == version)
            .map(|(_, t, _)| *t)
    }

    /// When `version` was published, in microseconds since the Unix epoch (0: not recent).
    pub fn published_unix_micros(&self, version: u64) -> u64 {
        self.published_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|(v, ..)| *v == version)
            .map_or(0, |(.., u)| *u)
    }

    pub fn policy_version(&self) -> u64 {
        self.policy.borrow().as_ref().map_or(0, |p| p.version)
    }

    fn note_rewards(&self, rewards: impl IntoIterator<Item = f32>) {
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for x in rewards {
            r.push_back(x);
        }
        while r.len() > RECENT {
            r.pop_front();
        }
    }

    /// Mean of the recent rewards and their count.
    pub fn recent_reward(&self) -> (f64, usize) {
        let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let n = r.len();
        (if n == 0 { 0.0 } else { r.iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64 }, n)
    }

    /// Records why the trainer stopped.
    pub fn set_trainer_error(&self, reason: String) {
        *self.trainer_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// Why the trainer stopped, if it has.
    pub fn trainer_error(&self) -> Option<String> {
        self.trainer_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Connected actors per hardware profile label (as the actors' own records name them).
    pub fn actors_by_hardware(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for a in
            self.actors.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|a| a.connected())
        {
            let label =
                a.hardware.as_ref().map_or_else(|| "unknown".into(), |h| Hardware::from(h).label());
            *out.entry(label).or_insert(0) += 1;
        }
        out
    }

    /// The learner's metrics as they stand, for a collector (`ingest_per_s`: transitions stored per
    /// second since the previous scrape).
    pub fn encode_metrics(
        &self,
        ingest_per_s: f64,
        encoder: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        use casrap_common::metrics::{label, scraped_counter, scraped_gauge, scraped_gauges};
        #[derive(
            Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet,
        )]
        struct Hw {
            hardware: String,
        }
        let (reward, n) = self.recent_reward();
        let hw: Vec<(Hw, f64)> = self
            .actors_by_hardware()
            .into_iter()
            .map(|(h, c)| (Hw { hardware: label(&h) }, c as f64))
            .collect();
        let e = encoder;
        scraped_counter(
            e,
            "casrap_learner_transitions_stored",
            "Transitions stored durably (resends not counted).",
            self.replay.total().unwrap_or(0),
        )?;
        scraped_gauge(
            e,
            "casrap_learner_ingest_per_second",
            "Transitions stored per second since the previous scrape.",
            ingest_per_s,
        )?;
        scraped_gauge(
            e,
            "casrap_learner_replay_size",
            "Transitions kept in the replay store.",
            self.replay.len().unwrap_or(0) as f64,
        )?;
        scraped_counter(
            e,
            "casrap_learner_updates",
            "Double-DQN updates.",
            self.updates.load(Ordering::Relaxed),
        )?;
        scraped_gauge(
            e,
            "casrap_learner_loss",
            "Loss of the last update (Huber).",
            f64::from_bits(self.loss_bits.load(Ordering::Relaxed)),
        )?;
        scraped_gauge(
            e,
            "casrap_learner_policy_version",
            "Newest published policy version.",
            self.policy_version() as f64,
        )?;
        scraped_gauge(
            e,
            "casrap_learner_recent_mean_reward",
            "Mean reward of the last (up to) 100 stored transitions.",
            if n > 0 { reward } else { f64::NAN },
        )?;
        scraped_gauge(
            e,
            "casrap_learner_trainer_up",
            "1 while the trainer runs, 0 once it has stopped on an error.",
            if self.trainer_error().is_some() { 0.0 } else { 1.0 },
        )?;
        scraped_gauge(
            e,
            "casrap_learner_store_up",
            "1 while the replay store accepts writes, 0 while it recovers from a failed one.",
            if self.replay.broken().is_some() { 0.0 } else { 1.0 },
        )?;
        scraped_gauges(e, "casrap_learner_actors", "Connected actors by hardware profile.", &hw)
    }

    fn registrations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Registered>> {
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks that `batch` may be taken from the stream bound to `bound` (binding it on its
    /// first batch); the rejection's code and message otherwise.
    fn admit(
        &self,
        batch: &v1::TransitionBatch,
        bound: &mut Option<String>,
    ) -> Result<(), (Code, String)> {
        let actor = &batch.actor_id;
        casrap_common::rl::check_actor_id(actor).map_err(|e| (Code::InvalidArgument, e))?;
        if let Some(b) = bound.as_deref() {
            if b != actor {
                return Err((
                    Code::InvalidArgument,
                    format!(
                        "this stream carries actor `{b}`, not `{actor}`: open one stream per actor"
                    ),
                ));
            }
        }
        let mut regs = self.registrations();
        let Some(r) = regs.get_mut(actor) else {
            return Err((Code::FailedPrecondition, format!("actor `{actor}` is not registered")));
        };
        if batch.session != r.session {
            return Err((
                Code::Aborted,
                format!("session {} of actor `{actor}` was superseded by a newer registration of this id (another process uses it?)", batch.session),
            ));
        }
        if bound.is_none() {
            r.streams += 1;
            *bound = Some(actor.clone());
        }
        Ok(())
    }

    /// Transition streams open for `actor`.
    pub fn open_streams(&self, actor: &str) -> usize {
        self.registrations().get(actor).map_or(0, |r| r.streams)
    }

    /// Makes every registration old (tests of what "recent" means).
    #[doc(hidden)]
    pub fn age_registrations(&self) {
        let now = std::time::Instant::now();
        for r in self.registrations().values_mut() {
            r.recent_until = now;
        }
    }

    /// A stream bound to `actor` ended: its session holds the id for the hold time from now.
    fn stream_closed(&self, actor: &str) {
        if let Some(r) = self.registrations().get_mut(actor) {
            r.streams = r.streams.saturating_sub(1);
            r.held_until = std::time::Instant::now() + self.identity.hold;
        }
    }
}

/// Decrements the actor's stream count when a transition stream ends, however it ends.
struct StreamGuard {
    shared: Arc<Shared>,
    actor: Option<String>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(a) = &self.actor {
            self.shared.stream_closed(a);
        }
    }
}

/// The status a transition stream ends with when a message could not be read; says why and
/// that the stream's later batches were not read.
fn stream_error(status: &Status) -> Status {
    let code = match status.code() {
        Code::Internal if status.message().contains("decode") => Code::InvalidArgument,
        c => c,
    };
    Status::new(code, format!("transition stream ended: {}; batches after it on this stream were not read, resend them on a new stream", status.message()))
}

/// Bounds on what a registration may carry (a learner keeps registrations in memory).
fn check_registration(info: &v1::ActorInfo) -> Result<(), String> {
    use prost::Message;
    let bytes = info.encoded_len();
    if bytes > MAX_REGISTRATION_BYTES {
        return Err(format!(
            "registration is {bytes} bytes, over the limit of {MAX_REGISTRATION_BYTES}"
        ));
    }
    let h = info.hardware.clone().unwrap_or_default();
    for (field, text) in [
        ("model_identity", &info.model_identity),
        ("hardware.device_kind", &h.device_kind),
        ("hardware.device_name", &h.device_name),
        ("hardware.cpu_model", &h.cpu_model),
    ] {
        if text.len() > MAX_REGISTRATION_TEXT {
            return Err(format!(
                "`{field}` is {} bytes, over the limit of {MAX_REGISTRATION_TEXT}",
                text.len()
            ));
        }
    }
    Ok(())
}

/// Checks a batch against the contract and takes its transitions (moved, not copied); the
/// message names the transition and the field.
pub fn validate(
    contract: &Contract,
    batch: v1::TransitionBatch,
) -> Result<Vec<Transition>, String> {
    if batch.transitions.len() > contract.max_batch {
        return Err(format!(
            "batch of {} transitions is over the limit of {}",
            batch.transitions.len(),
            contract.max_batch
        ));
    }
    let actor = batch.actor_id;
    let mut out = Vec::with_capacity(batch.transitions.len());
    let mut last = 0u64;
    let [lo, hi] = contract.reward_bounds.unwrap_or([-MAX_ABS_REWARD, MAX_ABS_REWARD]);
    for (i, t) in batch.transitions.into_iter().enumerate() {
        let at =
            |field: &str, why: String| format!("transition {i} (seq {}): `{field}` {why}", t.seq);
        if t.seq == 0 || t.seq > casrap_proto::MAX_SEQ {
            return Err(at("seq", format!("must be in 1..={}", casrap_proto::MAX_SEQ)));
        }
        if last != 0 && t.seq != last + 1 {
            return Err(at("seq", format!("must follow seq {last} by one within a batch")));
        }
        last = t.seq;
        for (field, v) in [("state", &t.state), ("next_state", &t.next_state)] {
            if v.len() != contract.state_dim {
                return Err(at(
                    field,
                    format!("has {} values, the state layout has {}", v.len(), contract.state_dim),
                ));
            }
            // Every feature is normalised to [0, 1] (casrap_common::state); NaN fails this too.
            if let Some(j) = v.iter().position(|x| !(0.0..=1.0).contains(x)) {
                return Err(at(field, format!("value {j} is {}, outside [0, 1]", v[j])));
            }
        }
        if t.action as usize >= contract.actions.len() {
            return Err(at(
                "action",
                format!("{} is out of range (0..{})", t.action, contract.actions.len()),
            ));
        }
        if !(lo..=hi).contains(&t.reward) {
            return Err(at("reward", format!("is {}, outside [{lo}, {hi}]", t.reward)));
        }
        match &t.metrics {
            Some(m) if m.json.len() > casrap_proto::MAX_EPISODE_BYTES => {
                return Err(at(
                    "metrics",
                    format!(
                        "is {} bytes, over the limit of {}",
                        m.json.len(),
                        casrap_proto::MAX_EPISODE_BYTES
                    ),
                ));
            }
            // The typed record reports and export read, and the episode of this transition.
            Some(m) => {
                let r = EpisodeRecord::from_json(&m.json)
                    .map_err(|e| at("metrics", format!("is not an episode record: {e}")))?;
                if r.actor_id != actor || r.seq != t.seq {
                    return Err(at(
                        "metrics",
                        format!(
                            "is the record of actor `{}` seq {}, not of this transition (actor `{actor}` seq {})",
                            r.actor_id, r.seq, t.seq
                        ),
                    ));
                }
            }
            None => {}
        }
        out.push(Transition::from(t));
    }
    Ok(out)
}

/// Takes one batch from a stream bound to `bound`: admits, validates and stores it; the ack (a
/// rejection says why and names the code the client acts on).
async fn ingest(
    shared: &Arc<Shared>,
    batch: v1::TransitionBatch,
    bound: &mut Option<String>,
) -> v1::Ack {
    let actor = batch.actor_id.clone();
    if let Err((code, message)) = shared.admit(&batch, bound) {
        let durable = if code == Code::InvalidArgument {
            0
        } else {
            shared.replay.durable_seq(&actor).unwrap_or(0)
        };
        return rejection(&actor, durable, code, message);
    }
    let transitions = match validate(&shared.contract, batch) {
        Ok(t) => t,
        Err(message) => {
            return rejection(
                &actor,
                shared.replay.durable_seq(&actor).unwrap_or(0),
                Code::InvalidArgument,
                message,
            )
        }
    };
    let rewards: Vec<f32> = transitions.iter().map(|t| t.reward).collect();
    let failed = |e: &casrap_store::Error| {
        let code = match e {
            casrap_store::Error::InvalidTransition { .. } => Code::InvalidArgument,
            e if e.is_transient() => Code::Unavailable,
            _ => Code::Internal,
        };
        rejection(&actor, shared.replay.durable_seq(&actor).unwrap_or(0), code, e.to_string())
    };
    match shared.replay.insert_async(&actor, transitions).await {
        Ok(s) => {
            // Resent transitions come first in a batch; the new ones are its tail.
            shared.note_rewards(
                rewards[rewards.len() - (s.stored as usize).min(rewards.len())..].iter().copied(),
            );
            v1::Ack {
                actor_id: actor,
                durable_seq: s.durable_seq,
                stored: s.stored,
                duplicates: s.duplicates,
                rejected: None,
            }
        }
        Err(e) => failed(&e),
    }
}

/// The service.
#[derive(Clone)]
pub struct LearnerService {
    pub shared: Arc<Shared>,
}

fn rejection(actor: &str, durable_seq: u64, code: Code, message: String) -> v1::Ack {
    v1::Ack {
        actor_id: actor.into(),
        durable_seq,
        stored: 0,
        duplicates: 0,
        rejected: Some(v1::Rejection { code: code as i32, message }),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl casrap_proto::Learner for LearnerService {
    async fn register(
        &self,
        request: Request<v1::ActorInfo>,
    ) -> Result<Response<v1::Registration>, Status> {
        let peer_certs = request.peer_certs();
        let info = request.into_inner();
        let c = &self.shared.contract;
        let refuse = |reason: String| {
            // The actor id is checked (or refused) before it is logged: never a whole field.
            let actor: String =
                info.actor_id.chars().take(casrap_common::rl::MAX_ACTOR_ID).collect();
            tracing::warn!(actor = ?actor, %reason, "registration refused");
            Ok(Response::new(v1::Registration { accepted: false, reason, ..Default::default() }))
        };
        if let Err(e) = casrap_common::rl::check_actor_id(&info.actor_id) {
            return refuse(e);
        }
        if let Err(e) = check_registration(&info) {
            return refuse(e);
        }
        if info.state_layout_version != c.state_layout_version
            || info.state_dim as usize != c.state_dim
        {
            return refuse(format!(
                "state layout {} with {} features; the learner uses layout {} with {}",
                info.state_layout_version, info.state_dim, c.state_layout_version, c.state_dim
            ));
        }
        if info.actions != c.actions {
            // The learner's set is logged here, not handed to whoever asks.
            tracing::warn!(actor = %info.actor_id, actor_actions = %info.actions.join(", "), learner_actions = %c.actions.join(", "), "action sets differ");
            return refuse(format!(
                "its action set ({} actions) is not the learner's ({} actions): start the actor from the learner's run config (the learner's log names both sets)",
                info.actions.len(),
                c.actions.len()
            ));
        }
        // With client certificates, the certificate names the ids its holder may use.
        if let Some(certs) = &peer_certs {
            let names = certs.first().map(|c| identity::certificate_names(c)).unwrap_or_default();
            if !identity::names_allow(&names, &info.actor_id) {
                return refuse(format!(
                    "the client certificate does not name actor id `{}` (it names {:?}; a certificate names ids as DNS names or `{}ID` URIs, `*` ending a prefix)",
                    info.actor_id,
                    names,
                    identity::CERT_URI_SCHEME
                ));
            }
        }
        let durable_seq = self
            .shared
            .replay
            .durable_seq(&info.actor_id)
            .map_err(|e| Status::internal(e.to_string()))?;
        let ident = &self.shared.identity;
        let operator = ident.is_operator(&info.operator_token);
        let mut regs = self.shared.registrations();
        // Who holds the id now: a session with an open stream or one closed within the hold
        // time; just after a start, every id with stored transitions, for any session this
        // learner's key issued for it (the sessions before the restart).
        let held = match regs.get(&info.actor_id) {
            Some(r) => r
                .held_for(ident.hold)
                .map(|left| (left, info.previous_session == r.session, r.streams > 0)),
            None if durable_seq > 0 && ident.holds_earlier_sessions() => {
                Some((ident.hold, ident.issued(&info.actor_id, info.previous_session), false))
            }
            None => None,
        };
        if let Some((left, own, streaming)) = held {
            if operator && !own {
                tracing::warn!(actor = %info.actor_id, "the operator token takes over a held actor id");
            } else if !own {
                drop(regs);
                let actor: String =
                    info.actor_id.chars().take(casrap_common::rl::MAX_ACTOR_ID).collect();
                let reason = format!(
                    "actor id `{actor}` is held by another session ({}; another process uses this id?): only that session's own reconnect, or a registration with the run's operator token, may take it; the hold ends {:?} after its last stream closed",
                    if streaming { "its transition stream is open" } else { "its stream closed recently" },
                    ident.hold
                );
                tracing::warn!(actor = ?actor, %reason, "registration refused");
                return Ok(Response::new(v1::Registration {
                    accepted: false,
                    reason,
                    retry_after_ms: left.as_millis().clamp(1, u128::from(u32::MAX)) as u32,
                    ..Default::default()
                }));
            }
        }
        if regs.len() >= MAX_REGISTRATIONS && !regs.contains_key(&info.actor_id) {
            regs.retain(|_, r| r.connected() || r.held_for(ident.hold).is_some());
            if regs.len() >= MAX_REGISTRATIONS {
                drop(regs);
                return refuse(format!(
                    "the learner holds {MAX_REGISTRATIONS} live registrations, its limit; retry later"
                ));
            }
        }
        let session = ident.issue(&info.actor_id);
        tracing::info!(actor = %info.actor_id, durable_seq, "actor registered");
        let streams = regs.get(&info.actor_id).map_or(0, |r| r.streams);
        regs.insert(
            info.actor_id.clone(),
            Registered {
                hardware: info.hardware,
                session,
                recent_until: std::time::Instant::now() + RECENTLY_REGISTERED,
                held_until: std::time::Instant::now() + ident.hold,
                streams,
            },
        );
        drop(regs);
        Ok(Response::new(v1::Registration {
            accepted: true,
            reason: String::new(),
            policy_version: self.shared.policy_version(),
            durable_seq,
            max_batch: c.max_batch as u32,
            session,
            retry_after_ms: 0,
        }))
    }

    type StreamTransitionsStream = BoxStream<v1::Ack>;

    async fn stream_transitions(
        &self,
        request: Request<Streaming<v1::TransitionBatch>>,
    ) -> Result<Response<Self::StreamTransitionsStream>, Status> {
        let mut incoming = request.into_inner();
        let shared = self.shared.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut guard = StreamGuard { shared: shared.clone(), actor: None };
            while let Some(batch) = incoming.next().await {
                let batch = match batch {
                    Ok(b) => b,
                    Err(status) => {
                        let ended = stream_error(&status);
                        if matches!(status.code(), Code::Cancelled | Code::Unknown) {
                            tracing::debug!(actor = ?guard.actor, %status, "transition stream ended");
                        } else {
                            tracing::warn!(actor = ?guard.actor, code = ?ended.code(), reason = %status.message(), "transition stream ended by a message that cannot be read");
                        }
                        let _ = tx.send(Err(ended)).await;
                        break;
                    }
                };
                let ack = ingest(&shared, batch, &mut guard.actor).await;
                if let Some(r) = &ack.rejected {
                    tracing::warn!(actor = ?ack.actor_id, code = ?Code::from_i32(r.code), reason = %r.message, "batch rejected");
                }
                if tx.send(Ok(ack)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type WatchPolicyStream = BoxStream<v1::PolicyUpdate>;

    async fn watch_policy(
        &self,
        request: Request<v1::PolicyRequest>,
    ) -> Result<Response<Self::WatchPolicyStream>, Status> {
        let have = request.into_inner().have_version;
        let mut rx = self.shared.policy.subscribe();
        let (tx, out) = mpsc::channel(8);
        // Weak: a watch task must not keep the learner alive (it ends when the policy sender does).
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut sent = have;
            loop {
                let policy = rx.borrow_and_update().clone();
                if let Some(p) = policy.filter(|p| p.version > sent) {
                    let chunks: Vec<prost::bytes::Bytes> = if p.weights.is_empty() {
                        vec![prost::bytes::Bytes::new()]
                    } else {
                        (0..p.weights.len())
                            .step_by(MAX_WEIGHT_CHUNK)
                            .map(|at| {
                                p.weights.slice(at..(at + MAX_WEIGHT_CHUNK).min(p.weights.len()))
                            })
                            .collect()
                    };
                    let n = chunks.len() as u32;
                    for (i, c) in chunks.into_iter().enumerate() {
                        let update = v1::PolicyUpdate {
                            version: p.version,
                            epsilon: p.epsilon,
                            weights: c,
                            chunk: i as u32,
                            chunks: n,
                            published_unix_micros: shared
                                .upgrade()
                                .map_or(0, |s| s.published_unix_micros(p.version)),
                        };
                        if tx.send(Ok(update)).await.is_err() {
                            return;
                        }
                    }
                    sent = p.version;
                    // At most one push per interval: whatever is newest when it has passed
                    // goes next (the watch channel keeps only the newest version).
                    let wait =
                        shared.upgrade().map_or(0, |s| s.push_interval_ms.load(Ordering::Relaxed));
                    if wait > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::LearnerStatus>, Status> {
        let s = &self.shared;
        let req = request.into_inner();
        let page = match req.max_actors as usize {
            0 => STATUS_PAGE,
            n => n.min(MAX_STATUS_PAGE),
        };
        let internal = |e: casrap_store::Error| Status::internal(e.to_string());
        // One page of the connected actors, by id, copied out so the store is not read under
        // the lock.
        let (connected, total, next) = {
            let regs = s.registrations();
            let mut ids: Vec<&String> =
                regs.iter().filter(|(_, r)| r.connected()).map(|(id, _)| id).collect();
            let total = ids.len();
            ids.sort_unstable();
            let from = ids.partition_point(|id| id.as_str() <= req.after_actor.as_str());
            let shown: Vec<(String, Option<v1::HardwareProfile>)> = ids[from..]
                .iter()
                .take(page)
                .map(|id| ((*id).clone(), regs[*id].hardware.clone()))
                .collect();
            let next = if from + shown.len() < ids.len() {
                shown.last().map(|(id, _)| id.clone()).unwrap_or_default()
            } else {
                String::new()
            };
            (shown, total, next)
        };
        let actors = connected
            .into_iter()
            .map(|(actor_id, hardware)| {
                Ok(v1::ConnectedActor {
                    durable_seq: s.replay.durable_seq(&actor_id)?,
                    actor_id,
                    hardware,
                })
            })
            .collect::<casrap_store::Result<Vec<_>>>()
            .map_err(internal)?;
        let (recent_mean_reward, recent) = s.recent_reward();
        Ok(Response::new(v1::LearnerStatus {
            transitions_stored: s.replay.total().map_err(internal)?,
            replay_size: s.replay.len().map_err(internal)?,
            updates: s.updates.load(Ordering::Relaxed),
            policy_version: s.policy_version(),
            actors,
            recent_mean_reward,
            recent_rewards: recent as u32,
            actors_connected: total as u32,
            next_after_actor: next,
        }))
    }
}
