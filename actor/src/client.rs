//! The actor's side of the wire: a bounded outbox of unacknowledged transitions, the task that
//! streams it to the learner (registering, resending after every reconnect, dropping what is
//! acknowledged as durable), and the task that watches for new policy weights on a connection of
//! its own, so a large transfer never waits behind transitions.
//!
//! When the learner is unreachable both tasks retry with capped exponential backoff (100 ms
//! doubling to 5 s, with jitter). The outbox keeps at most `capacity` transitions; when it is full
//! the episode loop pauses in [`Outbox::push`] until acknowledgements make room. Memory stays
//! bounded and nothing unacknowledged is dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use casrap_proto::v1;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_stream::wrappers::ReceiverStream;

use casrap_engine::error::{Error, Result};

/// Batches sent and not yet acknowledged on one stream (the learner buffers 16 acks per stream).
const IN_FLIGHT: usize = 8;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Capped exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    seed: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Self { next: BACKOFF_START, seed: seed | 1 }
    }
    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
    /// The next wait: the current step plus up to a quarter of it at random; the step doubles up to 5 s.
    pub fn next_wait(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = self.next.mul_f64((self.seed % 1000) as f64 / 4000.0);
        let wait = self.next + jitter;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

struct Inner {
    /// Unacknowledged transitions in seq order.
    pending: VecDeque<v1::Transition>,
    /// Highest seq the learner holds durably.
    durable: u64,
    closed: bool,
    failed: Option<String>,
    reconnects: u64,
}

/// Transitions waiting for the learner's acknowledgement (bounded).
pub struct Outbox {
    /// The learner's URL (for messages).
    url: String,
    inner: Mutex<Inner>,
    space: Condvar,
    ready: Notify,
    capacity: usize,
}

/// What the outbox has seen, for the actor's log and records.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OutboxStats {
    pub pending: usize,
    pub durable: u64,
    pub reconnects: u64,
}

impl Outbox {
    pub fn new(capacity: usize, url: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_string(),
            inner: Mutex::new(Inner {
                pending: VecDeque::new(),
                durable: 0,
                closed: false,
                failed: None,
                reconnects: 0,
            }),
            space: Condvar::new(),
            ready: Notify::new(),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `t`, waiting while the outbox is full. Returns false (and queues nothing) when `stop`
    /// is raised while waiting; an error when the sender has failed for good.
    pub fn push(&self, t: v1::Transition, stop: &AtomicBool) -> Result<bool> {
        let mut g = self.lock();
        let mut paused: Option<Instant> = None;
        loop {
            if let Some(f) = &g.failed {
                return Err(Error::Learner { url: self.url.clone(), reason: f.clone() });
            }
            if g.pending.len() < self.capacity {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if paused.is_none() {
                tracing::warn!(
                    unacknowledged = g.pending.len(),
                    "outbox full: pausing episodes until the learner acknowledges"
                );
                paused = Some(Instant::now());
            }
            g = self
                .space
                .wait_timeout(g, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(p) = paused {
            tracing::info!(seconds = p.elapsed().as_secs_f64(), "outbox has room again: resuming");
        }
        g.pending.push_back(t);
        drop(g);
        self.ready.notify_one();
        Ok(true)
    }

    /// No more transitions will be pushed.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Waits until every pushed transition is acknowledged, the sender failed, or `timeout` passes.
    pub fn wait_drained(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if let Some(f) = &g.failed {
                return Err(Error::Learner { url: self.url.clone(), reason: f.clone() });
            }
            if g.pending.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Learner {
                    url: self.url.clone(),
                    reason: format!(
                        "{} transitions (seq {}..) still unacknowledged after {:.0} s; a restart re-runs them from seq {}",
                        g.pending.len(),
                        g.pending.front().map_or(0, |t| t.seq),
                        timeout.as_secs_f64(),
                        g.durable + 1
                    ),
                });
            }
            g = self
                .space
                .wait_timeout(g, (deadline - now).min(Duration::from_millis(200)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn stats(&self) -> OutboxStats {
        let g = self.lock();
        OutboxStats { pending: g.pending.len(), durable: g.durable, reconnects: g.reconnects }
    }

    /// The learner holds everything up to `durable`.
    fn ack(&self, durable: u64) {
        let mut g = self.lock();
        g.durable = g.durable.max(durable);
        while g.pending.front().is_some_and(|t| t.seq <= durable) {
            g.pending.pop_front();
        }
        drop(g);
        self.space.notify_all();
    }

    fn fail(&self, reason: String) {
        self.lock().failed = Some(reason);
        self.space.notify_all();
    }

    /// Up to `n` pending transitions after seq `after` and about `max_bytes` encoded (always at
    /// least one), and whether the outbox is closed and empty.
    fn take_after(&self, after: u64, n: usize, max_bytes: usize) -> (Vec<v1::Transition>, bool) {
        use prost::Message;
        let g = self.lock();
        let (mut bytes, mut batch) = (0usize, Vec::new());
        for t in g.pending.iter().filter(|t| t.seq > after).take(n) {
            bytes += t.encoded_len();
            if bytes > max_bytes && !batch.is_empty() {
                break;
            }
            batch.push(t.clone());
        }
        (batch, g.closed && g.pending.is_empty())
    }
}

use casrap_proto::connect::Connection;

/// Who this actor is, for registration, how to reach the learner, and how many transitions it
/// sends per batch at most (the learner's `max_batch` caps it further).
#[derive(Debug, Clone)]
pub struct Identity {
    pub url: String,
    pub conn: Connection,
    pub info: v1::ActorInfo,
    pub batch: usize,
    /// Where this actor keeps its learner session (a secret, mode 600), so a restarted process
    /// reconnects as itself instead of waiting out the id's hold.
    pub session_file: Option<std::path::PathBuf>,
}

/// The session kept in `path` (0: none, or not readable as one; a bad file is logged).
pub fn read_session(path: &std::path::Path) -> u64 {
    match std::fs::read_to_string(path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16).unwrap_or_else(|_| {
            tracing::warn!(path = %path.display(), "the session file does not hold a session; registering without it");
            0
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the session file; registering without it");
            0
        }
    }
}

/// Why a stream session ended.
enum Ended {
    /// Everything pushed is acknowledged and the outbox is closed.
    Done,
    /// Worth retrying.
    Retry(String),
    /// Worth retrying after at least this long (another session holds the id).
    RetryAfter(String, Duration),
    /// Not worth retrying (refused registration, a rejected batch).
    Fatal(String),
}

/// Streams the outbox to the learner until it is closed and drained, reconnecting as needed.
/// The first successful registration is reported on `registered` (its durable seq).
pub async fn run_sender(
    id: Identity,
    outbox: Arc<Outbox>,
    registered: oneshot::Sender<Result<u64>>,
    stop: Arc<AtomicBool>,
) {
    let mut registered = Some(registered);
    let mut backoff =
        Backoff::new(casrap_common::prompts::stable_hash(1, id.info.actor_id.as_bytes()));
    let mut attempt = 0u64;
    // This process's last session: a re-registration names it, so it may supersede its own
    // stream that the learner has not yet seen close (no other client can).
    let mut last_session = id.session_file.as_deref().map_or(0, read_session);
    loop {
        attempt += 1;
        let (reason, at_least) =
            match session(&id, &outbox, &mut registered, &mut backoff, &mut last_session).await {
                Ended::Done => return,
                Ended::Fatal(reason) => {
                    tracing::error!(learner = %id.url, %reason, "giving up on the learner");
                    outbox.fail(reason.clone());
                    if let Some(r) = registered.take() {
                        let _ = r.send(Err(Error::Learner { url: id.url.clone(), reason }));
                    }
                    return;
                }
                Ended::Retry(reason) => (reason, Duration::ZERO),
                Ended::RetryAfter(reason, at_least) => (reason, at_least),
            };
        let stopped_unregistered = || registered.is_some() && stop.load(Ordering::Relaxed);
        let wait = backoff.next_wait().max(at_least);
        if at_least.is_zero() {
            tracing::warn!(learner = %id.url, %reason, attempt, retry_in_ms = wait.as_millis() as u64, unacknowledged = outbox.stats().pending, "learner unavailable");
        } else {
            tracing::warn!(learner = %id.url, %reason, attempt, retry_in_ms = wait.as_millis() as u64, "actor id held by another session; retrying when its hold ends");
        }
        // A long wait still notices, within a second, a stop that comes before the first
        // registration (there is nothing to deliver then).
        let until = Instant::now() + wait;
        while !stopped_unregistered() {
            match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => {
                    tokio::time::sleep(left.min(Duration::from_secs(1))).await
                }
                _ => break,
            }
        }
        if stopped_unregistered() {
            if let Some(r) = registered.take() {
                let _ = r.send(Err(Error::Learner {
                    url: id.url.clone(),
                    reason: format!("stopped while connecting: {reason}"),
                }));
            }
            return;
        }
    }
}

async fn session(
    id: &Identity,
    outbox: &Outbox,
    registered: &mut Option<oneshot::Sender<Result<u64>>>,
    backoff: &mut Backoff,
    last_session: &mut u64,
) -> Ended {
    let mut client = match id.conn.client().await {
        Ok(c) => c,
        Err(e) => return Ended::Retry(e),
    };
    let mut info = v1::ActorInfo { previous_session: *last_session, ..id.info.clone() };
    if *last_session != 0 {
        // Our own session takes the id back; the operator token was for the first registration.
        info.operator_token.clear();
    }
    let reg = match client.register(info).await {
        Ok(r) => r.into_inner(),
        // A learner that refuses our credentials will not change its mind.
        Err(s) if s.code() == tonic::Code::Unauthenticated => {
            return Ended::Fatal(format!("register: {}", s.message()))
        }
        Err(s) => return Ended::Retry(format!("register: {}: {}", s.code(), s.message())),
    };
    if !reg.accepted && reg.retry_after_ms > 0 {
        return Ended::RetryAfter(
            format!("registration refused: {}", reg.reason),
            Duration::from_millis(u64::from(reg.retry_after_ms)),
        );
    }
    if !reg.accepted {
        return Ended::Fatal(format!("registration refused: {}", reg.reason));
    }
    *last_session = reg.session;
    if let Some(path) = &id.session_file {
        if let Err(e) =
            casrap_common::config::write_private(path, format!("{:016x}\n", reg.session).as_bytes())
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the session; a restart will wait out the id's hold");
        }
    }
    // The backoff resets only once a batch is acknowledged: a learner that registers actors but
    // refuses every batch (a full disk) must not be retried at full speed.
    outbox.ack(reg.durable_seq);
    match registered.take() {
        Some(r) => {
            let _ = r.send(Ok(reg.durable_seq));
        }
        None => {
            outbox.lock().reconnects += 1;
            tracing::info!(learner = %id.url, durable_seq = reg.durable_seq, unacknowledged = outbox.stats().pending, "registered again; resending");
        }
    }
    let max_batch = (reg.max_batch as usize).min(id.batch).max(1);
    let (tx, rx) = mpsc::channel::<v1::TransitionBatch>(IN_FLIGHT);
    let mut acks = match client.stream_transitions(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Ended::Retry(format!("stream: {}: {}", s.code(), s.message())),
    };
    let mut sent = reg.durable_seq;
    let mut in_flight = 0usize;
    loop {
        if in_flight < IN_FLIGHT {
            let (batch, done) = outbox.take_after(sent, max_batch, casrap_proto::MAX_BATCH_BYTES);
            if done && in_flight == 0 {
                return Ended::Done;
            }
            if let Some(last) = batch.last() {
                sent = last.seq;
                in_flight += 1;
                if tx
                    .send(v1::TransitionBatch {
                        actor_id: id.info.actor_id.clone(),
                        transitions: batch,
                        session: reg.session,
                    })
                    .await
                    .is_err()
                {
                    return Ended::Retry("stream closed by the learner".into());
                }
                continue;
            }
        }
        tokio::select! {
            _ = outbox.ready.notified(), if in_flight < IN_FLIGHT => {}
            ack = acks.message() => match ack {
                Ok(Some(a)) => {
                    in_flight = in_flight.saturating_sub(1);
                    if let Some(r) = a.rejected {
                        let code = tonic::Code::from_i32(r.code);
                        if matches!(code, tonic::Code::Internal | tonic::Code::Unavailable) {
                            return Ended::Retry(format!("learner store error: {}", r.message));
                        }
                        return Ended::Fatal(format!("batch rejected ({code:?}): {}", r.message));
                    }
                    backoff.reset();
                    outbox.ack(a.durable_seq);
                    if a.duplicates > 0 {
                        tracing::debug!(duplicates = a.duplicates, "resent transitions were already stored");
                    }
                }
                Ok(None) => return Ended::Retry("the learner closed the stream".into()),
                // The learner could not read what we sent: sending it again would fail again.
                Err(s) if matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::ResourceExhausted) => {
                    return Ended::Fatal(format!("stream: {}: {}", s.code(), s.message()))
                }
                Err(s) => return Ended::Retry(format!("stream: {}: {}", s.code(), s.message())),
            },
        }
    }
}

/// A complete policy as broadcast by the learner.
#[derive(Debug, Clone)]
pub struct PolicyBytes {
    pub version: u64,
    pub epsilon: f32,
    pub weights: Vec<u8>,
}

/// Watches the learner's policy on a connection of its own, publishing each complete version.
pub async fn run_watcher(id: Identity, out: watch::Sender<Option<Arc<PolicyBytes>>>) {
    let mut backoff =
        Backoff::new(casrap_common::prompts::stable_hash(2, id.info.actor_id.as_bytes()));
    loop {
        let have = out.borrow().as_ref().map_or(0, |p| p.version);
        let reason = match watch_once(&id, have, &out, &mut backoff).await {
            Ok(()) => "the learner ended the policy stream".to_string(),
            Err(e) => e,
        };
        if out.is_closed() {
            return;
        }
        let wait = backoff.next_wait();
        tracing::debug!(learner = %id.url, %reason, retry_in_ms = wait.as_millis() as u64, "policy watch interrupted");
        tokio::time::sleep(wait).await;
    }
}

async fn watch_once(
    id: &Identity,
    have: u64,
    out: &watch::Sender<Option<Arc<PolicyBytes>>>,
    backoff: &mut Backoff,
) -> std::result::Result<(), String> {
    let mut client = id.conn.client().await?;
    let mut stream = client
        .watch_policy(v1::PolicyRequest { actor_id: id.info.actor_id.clone(), have_version: have })
        .await
        .map_err(|s| format!("watch: {}: {}", s.code(), s.message()))?
        .into_inner();
    backoff.reset();
    let mut buf: Vec<u8> = Vec::new();
    // The version being assembled and the chunk expected next (`None`: waiting for a chunk 0).
    let mut expect: Option<(u64, u32)> = None;
    while let Some(u) =
        stream.message().await.map_err(|s| format!("watch: {}: {}", s.code(), s.message()))?
    {
        if u.chunk == 0 {
            buf.clear();
            expect = Some((u.version, 0));
        }
        if expect != Some((u.version, u.chunk)) {
            // A gap, or joined mid-version: drop what was assembled and wait for a chunk 0.
            buf.clear();
            expect = None;
            continue;
        }
        buf.extend_from_slice(&u.weights);
        expect = Some((u.version, u.chunk + 1));
        if u.chunk + 1 >= u.chunks {
            expect = None;
            let p = PolicyBytes {
                version: u.version,
                epsilon: u.epsilon,
                weights: std::mem::take(&mut buf),
            };
            if out.send(Some(Arc::new(p))).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
