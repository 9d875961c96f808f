//! The Double-DQN trainer: it learns a contextual bandit fed through the real gRPC path, and its
//! checkpoints resume exactly, skipping a corrupt one.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::{Epsilon, TrainerConfig};
use casrap_common::qnet::QNet;
use casrap_common::rl::Transition;
use casrap_learner::service::{Contract, LearnerService, Shared};
use casrap_learner::trainer::{self, Trainer};
use casrap_proto::v1;
use casrap_proto::{LearnerClient, LearnerServer};
use casrap_store::replay::Replay;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::Server;

const CONTEXTS: usize = 4;
const ACTIONS: usize = 3;
const BEST: [usize; CONTEXTS] = [0, 1, 2, 1];

fn contract() -> Contract {
    Contract {
        state_layout_version: 1,
        state_dim: CONTEXTS,
        actions: (0..ACTIONS).map(|a| format!("a{a}")).collect(),
        max_batch: 100,
        reward_bounds: Some([-1.0, 1.0]),
    }
}

fn context_state(c: usize, rng: &mut SmallRng) -> Vec<f32> {
    // Every feature in [0, 1], as the state layout requires.
    (0..CONTEXTS).map(|i| if i == c { 0.9 } else { 0.0 } + rng.gen_range(0.0..0.1)).collect()
}

fn config() -> TrainerConfig {
    TrainerConfig {
        hidden: vec![32],
        lr: 1e-2,
        batch: 64,
        target_update: 20,
        samples_per_insert: 8.0,
        spi_tolerance: 4096.0,
        min_replay: 64,
        publish_every: 10,
        epsilon: Epsilon { start: 1.0, end: 0.1, decay_updates: 200 },
        ..TrainerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_learns_a_contextual_bandit_through_grpc() {
    learn_bandit(config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_with_prioritised_replay_learns_it_too() {
    let prioritized = Some(casrap_common::config::Prioritized { alpha: 0.6, beta: 0.4, eps: 1e-3 });
    learn_bandit(TrainerConfig { prioritized, ..config() }).await;
}

async fn learn_bandit(cfg: TrainerConfig) {
    let dir = tempfile::tempdir().unwrap();
    let replay = Arc::new(Replay::open(&dir.path().join("replay"), 100_000).unwrap());
    let shared = Shared::new(contract(), replay);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let svc = LearnerServer::new(LearnerService { shared: shared.clone() });
    tokio::spawn(
        Server::builder().add_service(svc).serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (shared.clone(), stop.clone());
    let ckpt = dir.path().join("checkpoints");
    let trainer = std::thread::spawn(move || {
        trainer::run(Trainer::new(cfg, CONTEXTS, ACTIONS), s, Some(ckpt), None, st)
    });

    // Two actors explore uniformly and stream 1,500 one-step episodes each.
    let mut actors = Vec::new();
    for actor in 0..2u64 {
        let url = url.clone();
        actors.push(tokio::spawn(async move {
            let mut client = LearnerClient::connect(url).await.unwrap();
            let name = format!("actor-{actor}");
            let reg = client
                .register(v1::ActorInfo {
                    actor_id: name.clone(),
                    actions: contract().actions,
                    state_layout_version: 1,
                    state_dim: CONTEXTS as u32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(reg.accepted, "{}", reg.reason);
            let mut rng = SmallRng::seed_from_u64(actor);
            let batches: Vec<v1::TransitionBatch> = (0..30)
                .map(|b| v1::TransitionBatch {
                    actor_id: name.clone(),
                    transitions: (0..50)
                        .map(|i| {
                            let c = rng.gen_range(0..CONTEXTS);
                            let a = rng.gen_range(0..ACTIONS);
                            let state = context_state(c, &mut rng);
                            v1::Transition {
                                seq: b * 50 + i + 1,
                                next_state: state.clone(),
                                state,
                                action: a as u32,
                                reward: if a == BEST[c] { 1.0 } else { 0.0 },
                                done: true,
                                metrics: None,
                            }
                        })
                        .collect(),
                    session: reg.session,
                })
                .collect();
            let mut acks =
                client.stream_transitions(tokio_stream::iter(batches)).await.unwrap().into_inner();
            let mut last = 0;
            while let Some(ack) = acks.next().await {
                let ack = ack.unwrap();
                assert!(ack.rejected.is_none());
                last = ack.durable_seq;
            }
            assert_eq!(last, 1500);
        }));
    }
    for a in actors {
        a.await.unwrap();
    }
    let t0 = Instant::now();
    while shared.updates.load(Ordering::Relaxed) < 300 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "trainer stalled at {} updates",
            shared.updates.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let trained = trainer.join().unwrap().unwrap();
    // The rate limiter held the learner to samples_per_insert (8) per insert, plus its tolerance.
    assert!(trained.sampled as f64 <= 8.0 * 3000.0 + 4096.0, "sampled {}", trained.sampled);

    // What an actor receives: the newest published policy, over gRPC.
    let mut client = LearnerClient::connect(url).await.unwrap();
    let mut updates = client
        .watch_policy(v1::PolicyRequest { actor_id: "eval".into(), have_version: 0 })
        .await
        .unwrap()
        .into_inner();
    let first = updates.next().await.unwrap().unwrap();
    let mut weights = first.weights.to_vec();
    for _ in 1..first.chunks {
        weights.extend(updates.next().await.unwrap().unwrap().weights);
    }
    assert!(
        first.version > 1 && first.epsilon < 0.5,
        "version {}, epsilon {}",
        first.version,
        first.epsilon
    );
    let policy = QNet::decode(&weights, Some(&[CONTEXTS, 32, ACTIONS])).unwrap();
    let mut rng = SmallRng::seed_from_u64(99);
    let trials = 1000;
    let hits = (0..trials)
        .filter(|_| {
            let c = rng.gen_range(0..CONTEXTS);
            policy.greedy(&context_state(c, &mut rng)).unwrap() == BEST[c]
        })
        .count();
    assert!(hits * 100 >= 95 * trials, "best action in {hits} of {trials}");
    assert!(
        !casrap_store::checkpoint::list(&dir.path().join("checkpoints")).is_empty(),
        "a checkpoint on stop"
    );
}

fn records(n: u64) -> Vec<casrap_store::replay::Record> {
    let mut rng = SmallRng::seed_from_u64(5);
    (1..=n)
        .map(|seq| {
            let c = rng.gen_range(0..CONTEXTS);
            let state = context_state(c, &mut rng);
            casrap_store::replay::Record {
                index: seq,
                actor: "a".into(),
                transition: Transition {
                    seq,
                    next_state: state.clone(),
                    state,
                    action: (seq % 3) as u32,
                    reward: 0.5,
                    done: seq % 2 == 0,
                    metrics: None,
                },
            }
        })
        .collect()
}

#[test]
fn checkpoints_resume_exactly_and_a_corrupt_one_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainerConfig { keep_checkpoints: 5, ..config() };
    let data = records(64);
    let mut t = Trainer::new(cfg.clone(), CONTEXTS, ACTIONS);
    for _ in 0..5 {
        t.update(&data);
    }
    t.version = 3;
    let first = t.save_checkpoint(dir.path()).unwrap();
    let weights_at_5 = t.online().encode().unwrap();
    // Readers without libtorch (test mode, eval, policy-fit) see the same online network.
    let (plain, state) = casrap_store::checkpoint::read_policy(&first, Some(t.dims())).unwrap();
    assert_eq!((plain.encode(), state.updates, state.version), (weights_at_5.clone(), 5, 3));
    // Continuing from the checkpoint must give the same next step as continuing in memory.
    let mut resumed = Trainer::resume(dir.path(), &cfg, CONTEXTS, ACTIONS).unwrap().0;
    assert_eq!((resumed.updates, resumed.version, resumed.sampled), (5, 3, 5 * 64));
    assert_eq!(resumed.online().encode().unwrap(), weights_at_5);
    t.update(&data);
    resumed.update(&data);
    assert_eq!(
        resumed.online().encode().unwrap(),
        t.online().encode().unwrap(),
        "Adam state and target network resumed too"
    );

    let second = t.save_checkpoint(dir.path()).unwrap();
    assert!(second > first);
    // A half-written checkpoint (temp folder) is ignored and removed; a corrupt one is skipped.
    let partial = dir.path().join("ckpt-999999999999.tmp");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("tensors.safetensors"), vec![0u8; 4096]).unwrap();
    let tensors = second.join("tensors.safetensors");
    let mut bytes = std::fs::read(&tensors).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    std::fs::write(&tensors, bytes).unwrap();
    let (back, path) = Trainer::resume(dir.path(), &cfg, CONTEXTS, ACTIONS).unwrap();
    assert_eq!(path, first);
    assert!(!partial.exists(), "the half-written checkpoint is still there");
    let e = casrap_store::checkpoint::read_policy(&second, None).unwrap_err().to_string();
    assert!(e.contains("does not match the hash"), "{e}");
    assert_eq!(back.online().encode().unwrap(), weights_at_5);
    // A config with other widths cannot resume from these.
    let other = TrainerConfig { hidden: vec![16], ..cfg };
    assert!(Trainer::resume(dir.path(), &other, CONTEXTS, ACTIONS).is_none());
}
