//! `casrap-learner bench`: a learner in-process (trainer included) and M simulated actors that
//! stream synthetic transitions as fast as acks allow and watch the policy. One table: durable
//! ingest rate, ack latency, and how long each published policy took to reach each actor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_common::state;
use casrap_proto::{v1, LearnerClient};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::server;
use crate::service::Shared;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Run config whose action set, learner and trainer settings are used.
    #[arg(long, default_value = "deploy/local.yaml")]
    pub config: PathBuf,
    /// Simulated actors.
    #[arg(long, default_value_t = 64)]
    pub actors: usize,
    /// Transitions per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Batches each actor keeps in flight (sent, not yet acked).
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Store folder (default: a fresh temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

struct ActorResult {
    acked: u64,
    ack_ms: Vec<f64>,
    push_ms: Vec<f64>,
}

async fn actor(url: String, id: usize, args: BenchArgs, labels: Vec<String>, shared: Arc<Shared>, until: Instant) -> Result<ActorResult, String> {
    let mut client = LearnerClient::connect(url.clone()).await.map_err(|e| e.to_string())?;
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
    // Policy watcher, on its own connection so policy frames do not queue behind transition
    // batches on one TCP stream: time from publish to the last chunk arriving here.
    let mut watch = LearnerClient::connect(url.clone()).await.map_err(|e| e.to_string())?;
    let policy_shared = shared.clone();
    let watcher = tokio::spawn(async move {
        let mut push_ms = Vec::new();
        let Ok(resp) = watch.watch_policy(v1::PolicyRequest { actor_id: format!("bench-{id}"), have_version: 0 }).await else { return push_ms };
        let mut updates = resp.into_inner();
        while let Some(Ok(u)) = updates.next().await {
            if u.chunk + 1 == u.chunks {
                if let Some(t) = policy_shared.published_at(u.version) {
                    push_ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            if Instant::now() > until {
                break;
            }
        }
        push_ms
    });
    // At most `in_flight` batches between send and ack (tonic would otherwise buffer far more).
    let permits = Arc::new(tokio::sync::Semaphore::new(args.in_flight.max(1)));
    let (tx, rx) = mpsc::channel::<v1::TransitionBatch>(1);
    let mut acks = client.stream_transitions(ReceiverStream::new(rx)).await.map_err(|e| e.to_string())?.into_inner();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Instant>();
    let batch = args.batch;
    let session = reg.session;
    let actions = labels.len() as u32;
    let sender_permits = permits.clone();
    let sender = tokio::spawn(async move {
        let mut rng = SmallRng::seed_from_u64(id as u64);
        let mut seq = 0u64;
        while Instant::now() < until {
            let Ok(permit) = sender_permits.clone().acquire_owned().await else { break };
            permit.forget();
            let transitions = (0..batch)
                .map(|_| {
                    seq += 1;
                    let state: Vec<f32> = (0..dim).map(|_| rng.gen()).collect();
                    v1::Transition {
                        seq,
                        next_state: state.clone(),
                        state,
                        action: rng.gen_range(0..actions),
                        reward: rng.gen_range(-1.0..1.0),
                        done: true,
                        metrics: None,
                    }
                })
                .collect();
            let _ = sent_tx.send(Instant::now());
            if tx.send(v1::TransitionBatch { actor_id: format!("bench-{id}"), transitions, session }).await.is_err() {
                break;
            }
        }
    });
    let mut acked = 0u64;
    let mut ack_ms = Vec::new();
    while let Some(ack) = acks.next().await {
        let ack = ack.map_err(|e| e.to_string())?;
        if let Some(r) = ack.rejected {
            return Err(r.message);
        }
        if let Some(t) = sent_rx.recv().await {
            ack_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        permits.add_permits(1);
        acked += u64::from(ack.stored);
        if sender.is_finished() && sent_rx.is_empty() {
            break;
        }
    }
    let push_ms = watcher.await.unwrap_or_default();
    Ok(ActorResult { acked, ack_ms, push_ms })
}

/// Runs the benchmark and prints its table.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::from_file(&args.config)?;
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let learner = server::start(&cfg, "127.0.0.1:0", &dir, async {
        let _ = stop_rx.await;
    })
    .await?;
    let url = format!("http://{}", learner.addr);
    let shared = learner.shared.clone();
    let labels = cfg.action_labels();
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let updates_before = shared.updates.load(std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = (0..args.actors)
        .map(|i| tokio::spawn(actor(url.clone(), i, args.clone(), labels.clone(), shared.clone(), until)))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(r) => results.push(r),
            Err(e) => anyhow::bail!("a simulated actor failed: {e}"),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let updates = shared.updates.load(std::sync::atomic::Ordering::Relaxed) - updates_before;
    let versions = shared.policy_version();
    let stored = shared.replay.total()?;
    let _ = stop_tx.send(());
    learner.wait().await?;
    let acked: u64 = results.iter().map(|r| r.acked).sum();
    let mut ack: Vec<f64> = results.iter().flat_map(|r| r.ack_ms.iter().copied()).collect();
    let mut push: Vec<f64> = results.iter().flat_map(|r| r.push_ms.iter().copied()).collect();
    println!(
        "casrap-learner bench: {} actors, batches of {}, {} in flight per actor, {:.1} s, learner with trainer in-process, store {}",
        args.actors, args.batch, args.in_flight, elapsed, if args.dir.is_some() { dir.display().to_string() } else { "in a temp folder".into() }
    );
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| durable ingest (acked transitions/s) | {:.0} | >= 50,000 (Ape-X's learner: ~10,000) |", acked as f64 / elapsed);
    println!("| transitions acked / stored | {acked} / {stored} | equal |");
    println!("| ack latency p50 / p99 (ms, send to durable ack) | {:.2} / {:.2} | |", quantile(&mut ack, 0.5), quantile(&mut ack, 0.99));
    println!("| policy versions published | {versions} | |");
    println!("| policy pushes received (version x actor) | {} | |", push.len());
    println!("| policy push latency p50 / p99 / max (ms) | {:.2} / {:.2} / {:.2} | p99 <= 50 |", quantile(&mut push, 0.5), quantile(&mut push, 0.99), quantile(&mut push, 1.0));
    println!("| trainer updates/s during the load | {:.0} | |", updates as f64 / elapsed);
    Ok(())
}
