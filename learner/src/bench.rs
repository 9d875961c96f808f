//! `casrap-learner bench`: M simulated actors against a learner, each with its transition stream
//! and its policy watch. The learner runs in-process (trainer included) or is any running one
//! (`--connect URL`, a separate process: what a fleet looks like to it). Actors send as fast as
//! their acks allow, or at a fixed rate (`--rate`, transitions per actor per second) with episode
//! records of a realistic size. One table: durable ingest, ack latency, policy push latency to
//! every watcher, and the learner's memory (sampled from `/proc`) per connected actor; `--record`
//! keeps the raw figures (and the memory curve) as JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_common::record::EpisodeRecord;
use casrap_common::state;
use casrap_proto::{v1, LearnerClient};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use casrap_store::fleet::{BenchArgs, MemorySample, Quantiles, Record, Steady, Window};

use crate::server;
use crate::service::Shared;

/// Length of the steady part's windows (`Steady::windows`).
const WINDOW_S: f64 = 5.0;

struct ActorResult {
    acked: u64,
    ack_ms: Vec<f64>,
    /// Of those, the transitions sent once the ramp was over, and their ack latencies.
    acked_steady: u64,
    /// Each with its send time, in seconds after the ramp.
    ack_ms_steady: Vec<(f64, f64)>,
    push_ms: Vec<f64>,
}

/// What all actors count together while they run.
struct Live {
    connected: AtomicU64,
    acked: AtomicU64,
    /// Actors with every ack in (or that failed).
    drained: AtomicU64,
    /// Set once every actor is drained: only then are the watchers and connections closed.
    finished: tokio::sync::watch::Sender<bool>,
}

impl Live {
    fn new() -> Self {
        let (finished, _) = tokio::sync::watch::channel(false);
        Self { connected: 0.into(), acked: 0.into(), drained: 0.into(), finished }
    }

    async fn until_finished(&self) {
        let _ = self.finished.subscribe().wait_for(|f| *f).await;
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// An actor's episode record of about `bytes` bytes (a complete one: the learner refuses
/// others), split around its seq so each transition's costs one `format!` (made once per actor:
/// the simulated fleet should not spend the cores on formatting).
fn record_template(actor: &str, bytes: usize) -> (String, String) {
    const MARK: u64 = 987_654_321_987_654_321;
    let line = |pad| EpisodeRecord::synthetic(actor, MARK, pad).to_line().unwrap_or_default();
    let base = line(0).len();
    let line = line(bytes.saturating_sub(base + 10));
    let at = line.find(&format!("\"seq\":{MARK}")).map_or(0, |i| i + 6);
    (line[..at].to_string(), line[at + MARK.to_string().len()..].to_string())
}

/// Connects, retrying (as actors do) up to 5 times a second apart; the error with its causes.
async fn connect(url: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    let mut tries = 0;
    loop {
        match endpoint.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::debug!(error = ?e, "connect failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("connect: {e}: {:?}", std::error::Error::source(&e))),
        }
    }
}

async fn actor(
    url: String,
    id: usize,
    args: BenchArgs,
    labels: Vec<String>,
    shared: Option<Arc<Shared>>,
    live: Arc<Live>,
    (steady_from, until): (Instant, Instant),
) -> Result<ActorResult, String> {
    let channel = connect(&url).await?;
    let mut client = LearnerClient::new(channel.clone())
        .max_decoding_message_size(casrap_proto::MAX_MESSAGE_BYTES);
    let name = format!("bench-{id}");
    let dim = state::FEATURES.len();
    let reg = client
        .register(v1::ActorInfo {
            actor_id: name.clone(),
            actions: labels.clone(),
            state_layout_version: state::LAYOUT_VERSION,
            state_dim: dim as u32,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    if !reg.accepted {
        return Err(reg.reason);
    }
    live.connected.fetch_add(1, Ordering::Relaxed);
    // The policy watcher, by default on its own connection so policy frames do not queue behind
    // transition batches on one TCP stream: time from publish to the last chunk arriving here.
    let watch_channel = if args.one_connection { channel } else { connect(&url).await? };
    let mut watch = LearnerClient::new(watch_channel);
    let watch_live = live.clone();
    let watcher = tokio::spawn(async move {
        let mut push_ms = Vec::new();
        // Only versions published after the watch began count: the one current at that moment
        // arrives at once but was published before this actor existed.
        let (began, began_unix) = (Instant::now(), now_micros());
        let Ok(resp) =
            watch.watch_policy(v1::PolicyRequest { actor_id: name, have_version: 0 }).await
        else {
            return push_ms;
        };
        let mut updates = resp.into_inner();
        loop {
            let u = tokio::select! {
                u = updates.next() => u,
                () = watch_live.until_finished() => break,
            };
            let Some(Ok(u)) = u else { break };
            if u.chunk + 1 == u.chunks {
                let ms = match &shared {
                    Some(s) => s
                        .published_at(u.version)
                        .filter(|t| *t >= began)
                        .map(|t| t.elapsed().as_secs_f64() * 1e3),
                    None if u.published_unix_micros >= began_unix => {
                        Some(now_micros().saturating_sub(u.published_unix_micros) as f64 / 1e3)
                    }
                    None => None,
                };
                push_ms.extend(ms);
            }
        }
        push_ms
    });
    // At most `in_flight` batches between send and ack (tonic would otherwise buffer far more).
    let permits = Arc::new(tokio::sync::Semaphore::new(args.in_flight.max(1)));
    let (tx, rx) = mpsc::channel::<v1::TransitionBatch>(1);
    let mut acks = client
        .stream_transitions(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let batch = if args.rate > 0.0 { 1 } else { args.batch };
    let session = reg.session;
    let actions = labels.len() as u32;
    let sender_permits = permits.clone();
    let sender = tokio::spawn(async move {
        let mut rng = SmallRng::seed_from_u64(id as u64);
        let mut seq = 0u64;
        let (head, tail) = record_template(&format!("bench-{id}"), args.record_bytes);
        let mut tick = (args.rate > 0.0).then(|| {
            let period = Duration::from_secs_f64(1.0 / args.rate);
            // Actors start at random phases, as independent machines do.
            let mut t = tokio::time::interval_at(
                tokio::time::Instant::now() + period.mul_f64(rng.gen()),
                period,
            );
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        while Instant::now() < until {
            if let Some(t) = &mut tick {
                t.tick().await;
            }
            let Ok(permit) = sender_permits.clone().acquire_owned().await else { break };
            permit.forget();
            let transitions = (0..batch)
                .map(|_| {
                    seq += 1;
                    let state: Vec<f32> = (0..dim).map(|_| rng.gen()).collect();
                    let metrics = (args.record_bytes > 0)
                        .then(|| v1::EpisodeMetrics { json: format!("{head}{seq}{tail}") });
                    v1::Transition {
                        seq,
                        next_state: state.clone(),
                        state,
                        action: rng.gen_range(0..actions),
                        reward: rng.gen_range(-1.0..1.0),
                        done: true,
                        metrics,
                    }
                })
                .collect();
            let _ = sent_tx.send(Instant::now());
            if tx
                .send(v1::TransitionBatch { actor_id: format!("bench-{id}"), transitions, session })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut acked = 0u64;
    let mut ack_ms = Vec::new();
    let (mut acked_steady, mut ack_ms_steady) = (0u64, Vec::new());
    while let Some(ack) = acks.next().await {
        let ack = ack.map_err(|e| e.to_string())?;
        if let Some(r) = ack.rejected {
            return Err(r.message);
        }
        if let Some(t) = sent_rx.recv().await {
            let ms = t.elapsed().as_secs_f64() * 1e3;
            ack_ms.push(ms);
            if t >= steady_from {
                ack_ms_steady.push((t.duration_since(steady_from).as_secs_f64(), ms));
                acked_steady += u64::from(ack.stored);
            }
        }
        permits.add_permits(1);
        acked += u64::from(ack.stored);
        live.acked.fetch_add(u64::from(ack.stored), Ordering::Relaxed);
        if sender.is_finished() && sent_rx.is_empty() {
            break;
        }
    }
    live.drained.fetch_add(1, Ordering::Relaxed);
    live.until_finished().await;
    let push_ms = watcher.await.unwrap_or_default();
    Ok(ActorResult { acked, ack_ms, acked_steady, ack_ms_steady, push_ms })
}

/// Resident memory of `pid` in bytes (`VmRSS`), if readable.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// How many of the idle watchers held a stream to the end.
async fn idle_watchers_held(
    idle: Vec<tokio::task::JoinHandle<Option<tonic::Streaming<v1::PolicyUpdate>>>>,
) -> usize {
    let mut n = 0;
    for t in idle {
        n += usize::from(matches!(t.await, Ok(Some(_))));
    }
    n
}

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::from_file(&args.config)?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (learner, url, pid) = match &args.connect {
        Some(url) => (None, url.clone(), args.learner_pid),
        None => {
            let l = server::start(&cfg, "127.0.0.1:0", &dir, async {
                let _ = stop_rx.await;
            })
            .await?;
            let url = format!("http://{}", l.addr);
            (Some(l), url, Some(std::process::id()))
        }
    };
    let shared = learner.as_ref().map(|l| l.shared.clone());
    let labels = cfg.action_labels();
    let live = Arc::new(Live::new());
    let start = Instant::now();
    let rss_idle = pid.and_then(rss_bytes);
    let ramp = Duration::from_secs_f64(args.ramp.max(0.0));
    let until = start + ramp + Duration::from_secs(args.seconds);
    // The memory curve: one sample a second.
    let sampler = {
        let live = live.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let Some(pid) = pid else { return samples };
            while Instant::now() < until {
                if let Some(rss) = rss_bytes(pid) {
                    samples.push(MemorySample {
                        t_s: start.elapsed().as_secs_f64(),
                        rss_bytes: rss,
                        connected: live.connected.load(Ordering::Relaxed),
                        acked: live.acked.load(Ordering::Relaxed),
                    });
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            samples
        })
    };
    // Watchers that never read: each holds its stream open until the end.
    let mut idle = Vec::with_capacity(args.idle_watchers);
    for i in 0..args.idle_watchers {
        let (url, live) = (url.clone(), live.clone());
        idle.push(tokio::spawn(async move {
            let channel = connect(&url).await.ok()?;
            let mut c = LearnerClient::new(channel);
            let request =
                v1::PolicyRequest { actor_id: format!("idle-watcher-{i}"), have_version: 0 };
            let stream = c.watch_policy(request).await.ok()?.into_inner();
            live.until_finished().await;
            Some(stream)
        }));
    }
    let mut tasks = Vec::with_capacity(args.actors);
    for i in 0..args.actors {
        if !ramp.is_zero() {
            tokio::time::sleep_until(tokio::time::Instant::from_std(
                start + ramp.mul_f64(i as f64 / args.actors as f64),
            ))
            .await;
        }
        let run = actor(
            url.clone(),
            i,
            args.clone(),
            labels.clone(),
            shared.clone(),
            live.clone(),
            (start + ramp, until),
        );
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            let r = run.await;
            if r.is_err() {
                live.drained.fetch_add(1, Ordering::Relaxed);
            }
            r
        }));
    }
    // Memory once every actor is connected (or the ramp is over).
    let all_in = Instant::now() + Duration::from_secs(60);
    while live.connected.load(Ordering::Relaxed) < args.actors as u64
        && Instant::now() < all_in
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = pid.and_then(rss_bytes);
    // Nothing is closed until every actor has its last ack: 10,000 watchers and connections
    // closed in the same moment (which no fleet does) would hold up the last second's acks.
    let drain_by = until + Duration::from_secs(60);
    while live.drained.load(Ordering::Relaxed) < args.actors as u64 && Instant::now() < drain_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    live.finished.send_replace(true);
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(r) => results.push(r),
            Err(e) => failures.push(e),
        }
    }
    let elapsed = start.elapsed().as_secs_f64() - ramp.as_secs_f64();
    let memory = sampler.await.unwrap_or_default();
    let idle_watching = idle_watchers_held(idle).await;
    let (versions, stored) = match &shared {
        Some(s) => (s.policy_version(), Some(s.replay.total()?)),
        None => {
            // A fresh store is assumed (as scripts/bench-fleet makes): everything in it is ours.
            let mut c = LearnerClient::new(connect(&url).await.map_err(anyhow::Error::msg)?);
            let st = c.status(v1::StatusRequest::default()).await?.into_inner();
            (st.policy_version, Some(st.transitions_stored))
        }
    };
    if let Some(l) = learner {
        let _ = stop_tx.send(());
        l.wait().await?;
    }
    if failures.len() == args.actors {
        anyhow::bail!("every simulated actor failed; the first: {}", failures[0]);
    }
    let record = Record {
        actors_failed: failures.len(),
        first_failure: failures.first().cloned(),
        learner: args.connect.clone().map_or("in-process (trainer included)".into(), |u| {
            format!("at {u} (its own process)")
        }),
        elapsed_s: elapsed,
        actors_connected: live.connected.load(Ordering::Relaxed),
        acked: results.iter().map(|r| r.acked).sum(),
        stored,
        ack_ms: Quantiles::of(results.iter().flat_map(|r| r.ack_ms.iter().copied()).collect()),
        steady: Some(Steady {
            seconds: args.seconds as f64,
            acked: results.iter().map(|r| r.acked_steady).sum(),
            ack_ms: Quantiles::of(
                results.iter().flat_map(|r| r.ack_ms_steady.iter().map(|&(_, ms)| ms)).collect(),
            ),
            windows: Window::split(
                results.iter().flat_map(|r| r.ack_ms_steady.iter().copied()),
                WINDOW_S,
            ),
        }),
        push_ms: Quantiles::of(results.iter().flat_map(|r| r.push_ms.iter().copied()).collect()),
        pushes: results.iter().map(|r| r.push_ms.len()).sum(),
        policy_versions: versions,
        memory,
        rss_idle_bytes: rss_idle,
        rss_connected_bytes: rss_connected,
        idle_watchers_held: idle_watching,
        push_interval_ms: cfg.learner.push_interval_ms,
        args: args.clone(),
    };
    print!("{}", record.table());
    if let Some(path) = &args.record {
        std::fs::write(path, serde_json::to_string_pretty(&record)?)?;
        println!("record: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_template_makes_complete_records_of_about_the_size_asked() {
        let (head, tail) = super::record_template("bench-3", 3000);
        let line = format!("{head}42{tail}");
        let r = casrap_common::record::EpisodeRecord::from_json(&line).unwrap();
        assert_eq!((r.actor_id.as_str(), r.seq), ("bench-3", 42));
        assert!((2900..=3100).contains(&line.len()), "{} bytes", line.len());
    }
}
