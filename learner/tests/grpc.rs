//! The learner service over real gRPC on 127.0.0.1 (port 0): registration, durable acks, resends,
//! a restart on the same sled path, in-band rejections, and policy broadcast.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use casrap_common::record::EpisodeRecord;
use casrap_learner::identity::Identity;
use casrap_learner::service::{Contract, LearnerService, Policy, Shared};
use casrap_proto::{fixtures, v1};
use casrap_proto::{LearnerClient, LearnerServer};
use casrap_store::replay::Replay;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Server};

const DIM: usize = 4;

fn contract() -> Contract {
    Contract {
        state_layout_version: 1,
        state_dim: DIM,
        actions: vec!["none".into(), "layers:0.125".into(), "ffn:0.25".into()],
        max_batch: 64,
        reward_bounds: Some([-1.0, 1.0]),
    }
}

struct Running {
    url: String,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

async fn start(path: &Path) -> Running {
    let replay = Arc::new(Replay::open(path, 100_000).unwrap());
    serve(Shared::new(contract(), replay)).await
}

/// A learner whose session key is kept in `key` (as `casrap-learner` keeps it next to its store),
/// with this hold time and operator token.
async fn start_keyed(path: &Path, key: &Path, hold: Duration, operator: Option<&str>) -> Running {
    let replay = Arc::new(Replay::open(path, 100_000).unwrap());
    let identity = Identity::load_or_create(key, hold, operator.map(str::to_string)).unwrap();
    serve(Shared::with_identity(contract(), replay, identity)).await
}

async fn serve(shared: Arc<Shared>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let svc = LearnerServer::new(LearnerService { shared: shared.clone() });
    let handle = tokio::spawn(async move {
        Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running { url: format!("http://{addr}"), stop, handle, shared }
}

impl Running {
    /// Stops the server and waits until nothing holds the store any more.
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.handle.await.unwrap();
        let mut shared = self.shared;
        for _ in 0..200 {
            match Arc::try_unwrap(shared) {
                Ok(s) => {
                    drop(s);
                    return;
                }
                Err(s) => shared = s,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the learner's state is still referenced after shutdown");
    }
}

fn info(actor: &str) -> v1::ActorInfo {
    let c = contract();
    v1::ActorInfo {
        hardware: Some(v1::HardwareProfile {
            device_kind: "cpu".into(),
            device_name: "test".into(),
            memory_bytes: 1,
            cpu_model: "test".into(),
            cpu_cores: 2,
        }),
        model_identity: "test-model".into(),
        state_layout_version: c.state_layout_version,
        state_dim: DIM as u32,
        ..fixtures::actor_info(actor, c.actions)
    }
}

fn transition(seq: u64) -> v1::Transition {
    let x = (seq % 90) as f32 / 100.0;
    v1::Transition {
        state: vec![x; DIM],
        action: (seq % 3) as u32,
        reward: x,
        next_state: vec![x + 0.01; DIM],
        done: seq.is_multiple_of(4),
        ..fixtures::transition(seq)
    }
}

fn batch(actor: &str, seqs: std::ops::RangeInclusive<u64>) -> v1::TransitionBatch {
    let transitions = seqs
        .map(|seq| v1::Transition {
            // Every fourth ends an episode, with its record.
            metrics: seq.is_multiple_of(4).then(|| fixtures::record(actor, seq)),
            ..transition(seq)
        })
        .collect();
    fixtures::batch(actor, transitions, 0)
}

/// An open transition stream of one registration: send a batch (with the session unless it
/// names one), read its ack.
struct Stream {
    tx: mpsc::Sender<v1::TransitionBatch>,
    acks: tonic::Streaming<v1::Ack>,
    session: u64,
}

impl Stream {
    async fn open(client: &mut LearnerClient<Channel>, session: u64) -> Self {
        let (tx, rx) = mpsc::channel(4);
        let acks = client.stream_transitions(ReceiverStream::new(rx)).await.unwrap().into_inner();
        Self { tx, acks, session }
    }
    /// Registers `actor` and opens a stream for it.
    async fn register(client: &mut LearnerClient<Channel>, actor: &str) -> Self {
        let reg = client.register(info(actor)).await.unwrap().into_inner();
        assert!(reg.accepted, "{}", reg.reason);
        Self::open(client, reg.session).await
    }
    async fn send(&mut self, mut b: v1::TransitionBatch) -> v1::Ack {
        if b.session == 0 {
            b.session = self.session;
        }
        self.tx.send(b).await.unwrap();
        self.acks.next().await.unwrap().unwrap()
    }
}

/// A policy watch of `actor`, which holds `have`.
async fn watch(
    client: &mut LearnerClient<Channel>,
    actor: &str,
    have: u64,
) -> tonic::Streaming<v1::PolicyUpdate> {
    client
        .watch_policy(v1::PolicyRequest { actor_id: actor.into(), have_version: have })
        .await
        .unwrap()
        .into_inner()
}

fn stored_seqs(replay: &Replay, actor: &str) -> Vec<u64> {
    replay
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.actor == actor)
        .map(|r| r.transition.seq)
        .collect()
}

#[tokio::test]
async fn registration_checks_the_state_layout_and_action_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let ok = client.register(info("a")).await.unwrap().into_inner();
    assert!(ok.accepted && ok.durable_seq == 0 && ok.max_batch == 64);
    let mut other_layout = info("b");
    other_layout.state_layout_version = 2;
    let r = client.register(other_layout).await.unwrap().into_inner();
    assert!(!r.accepted && r.reason.contains("layout 2"), "{}", r.reason);
    let mut other_actions = info("c");
    other_actions.actions.pop();
    let r = client.register(other_actions).await.unwrap().into_inner();
    assert!(!r.accepted && r.reason.contains("action set"), "{}", r.reason);
    let status = client.status(v1::StatusRequest::default()).await.unwrap().into_inner();
    assert_eq!(status.actors.iter().map(|a| a.actor_id.as_str()).collect::<Vec<_>>(), vec!["a"]);
    server.shutdown().await;
}

#[tokio::test]
async fn acks_are_durable_and_resends_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    let ack = s.send(batch("a", 1..=5)).await;
    assert_eq!(
        (ack.durable_seq, ack.stored, ack.duplicates, ack.rejected.is_none()),
        (5, 5, 0, true)
    );
    // Acknowledged means durable: the store already holds it.
    assert_eq!(server.shared.replay.durable_seq("a").unwrap(), 5);
    s.send(batch("a", 6..=10)).await;
    // Reconnect and resend from an older point: only the new ones are stored.
    let session = s.session;
    drop(s);
    let mut s = Stream::open(&mut client, session).await;
    let ack = s.send(batch("a", 6..=15)).await;
    assert_eq!((ack.durable_seq, ack.stored, ack.duplicates), (15, 5, 5));
    assert_eq!(
        stored_seqs(&server.shared.replay, "a"),
        (1..=15).collect::<Vec<_>>(),
        "no duplicates, no gaps"
    );
    assert_eq!(server.shared.replay.episodes().unwrap().len(), 3);
    drop(s);
    server.shutdown().await;
}

#[tokio::test]
async fn a_restart_on_the_same_store_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    for k in 0..4 {
        let ack = s.send(batch("a", k * 5 + 1..=k * 5 + 5)).await;
        assert_eq!(ack.durable_seq, k * 5 + 5);
    }
    drop(s);
    drop(client);
    server.shutdown().await;

    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let reg = client.register(info("a")).await.unwrap().into_inner();
    assert_eq!(reg.durable_seq, 20, "the actor learns where to resume");
    let mut s = Stream::open(&mut client, reg.session).await;
    let ack = s.send(batch("a", 16..=25)).await;
    assert_eq!((ack.stored, ack.duplicates, ack.durable_seq), (5, 5, 25));
    assert_eq!(stored_seqs(&server.shared.replay, "a"), (1..=25).collect::<Vec<_>>());
    drop(s);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_batches_are_rejected_in_band_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    let invalid = tonic::Code::InvalidArgument as i32;
    let mut cases: Vec<(&str, v1::TransitionBatch, i32)> = Vec::new();
    let mut b = batch("a", 1..=2);
    b.transitions[1].state.pop();
    cases.push(("has 3 values", b, invalid));
    let mut b = batch("a", 1..=2);
    b.transitions[0].next_state[2] = f32::NAN;
    cases.push(("`next_state` value 2 is NaN", b, invalid));
    let mut b = batch("a", 1..=1);
    b.transitions[0].reward = f32::INFINITY;
    cases.push(("`reward` is inf", b, invalid));
    let mut b = batch("a", 1..=1);
    b.transitions[0].action = 3;
    cases.push(("`action` 3 is out of range", b, invalid));
    cases.push(("over the limit of 64", batch("a", 1..=65), invalid));
    let mut b = batch("a", 1..=1);
    b.transitions[0].metrics = Some(v1::EpisodeMetrics { json: "[1, 2]".into() });
    cases.push(("`metrics` is not an episode record", b, invalid));
    // Records export could not read: empty, deeply nested, a string reward; and one of another
    // actor's or another seq's episode.
    let record = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = serde_json::to_value(EpisodeRecord::synthetic("a", 1, 0)).unwrap();
        f(&mut v);
        let mut b = batch("a", 1..=1);
        b.transitions[0].metrics = Some(v1::EpisodeMetrics { json: v.to_string() });
        b
    };
    let mut b = batch("a", 1..=1);
    b.transitions[0].metrics = Some(v1::EpisodeMetrics { json: "{}".into() });
    cases.push(("is not an episode record: missing field `action`", b, invalid));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let mut b = batch("a", 1..=1);
    let line = EpisodeRecord::synthetic("a", 1, 0).to_line().unwrap();
    let json = line.replace("\"measurement\":{\"runs\":[]}", &format!("\"measurement\":{deep}"));
    assert_ne!(json, line);
    b.transitions[0].metrics = Some(v1::EpisodeMetrics { json });
    cases.push(("recursion limit exceeded", b, invalid));
    cases.push(("reward: invalid type: string", record(&|v| v["reward"] = "high".into()), invalid));
    cases.push((
        "is the record of actor `b` seq 1, not of this transition (actor `a` seq 1)",
        record(&|v| v["actor_id"] = "b".into()),
        invalid,
    ));
    cases.push((
        "is the record of actor `a` seq 9, not of this transition (actor `a` seq 1)",
        record(&|v| v["seq"] = 9.into()),
        invalid,
    ));
    // Values outside the state layout's [0, 1], and rewards outside the run's clip.
    let mut b = batch("a", 1..=1);
    b.transitions[0].state[0] = 1e30;
    cases.push(("`state` value 0 is 1000000000000000000000000000000, outside [0, 1]", b, invalid));
    let mut b = batch("a", 1..=1);
    b.transitions[0].next_state[1] = -5.0;
    cases.push(("`next_state` value 1 is -5, outside [0, 1]", b, invalid));
    let mut b = batch("a", 1..=1);
    b.transitions[0].reward = 7.5;
    cases.push(("`reward` is 7.5, outside [-1, 1]", b, invalid));
    // Seqs: huge, or not contiguous within a batch.
    let mut b = batch("a", 1..=1);
    b.transitions[0].seq = u64::MAX;
    cases.push(("`seq` must be in 1..=9007199254740992", b, invalid));
    let mut b = batch("a", 1..=3);
    b.transitions[2].seq = 4;
    cases.push(("must follow seq 2 by one", b, invalid));
    // An episode record over 1 MiB.
    let mut b = batch("a", 1..=1);
    b.transitions[0].metrics = Some(v1::EpisodeMetrics {
        json: EpisodeRecord::synthetic("a", 1, 1 << 20).to_line().unwrap(),
    });
    cases.push(("over the limit of 1048576", b, invalid));
    // A stream belongs to its first batch's actor.
    cases.push(("this stream carries actor `a`", batch("stranger", 1..=2), invalid));
    let mut b = batch("a", 1..=1);
    b.actor_id = "a\nforged log line".into();
    cases.push(("actor id has '\\n'", b, invalid));
    for (want, b, code) in cases {
        let ack = s.send(b).await;
        let r = ack.rejected.unwrap_or_else(|| panic!("not rejected: {want}"));
        assert_eq!(r.code, code, "{want}: {}", r.message);
        assert!(r.message.contains(want), "{want}: {}", r.message);
        assert_eq!(ack.stored, 0);
    }
    assert!(server.shared.replay.is_empty().unwrap(), "nothing stored");
    let ack = s.send(batch("a", 1..=3)).await;
    assert_eq!((ack.stored, ack.rejected.is_none()), (3, true), "the stream stays up");
    // An actor that never registered, on a stream of its own.
    let mut other = Stream::open(&mut client, 12345).await;
    let ack = other.send(batch("stranger", 1..=2)).await;
    assert_eq!(ack.rejected.map(|r| r.code), Some(tonic::Code::FailedPrecondition as i32));
    drop((s, other));
    server.shutdown().await;
}

#[tokio::test]
async fn policy_versions_arrive_in_order_and_large_weights_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut updates = watch(&mut client, "a", 0).await;
    let big: Vec<u8> =
        (0..(2 * casrap_proto::MAX_WEIGHT_CHUNK + 123)).map(|i| (i % 251) as u8).collect();
    server.shared.publish(Policy { version: 1, epsilon: 0.5, weights: vec![1, 2, 3].into() });
    let u = updates.next().await.unwrap().unwrap();
    assert_eq!((u.version, u.chunk, u.chunks, u.weights), (1, 0, 1, vec![1u8, 2, 3].into()));
    server.shared.publish(Policy { version: 2, epsilon: 0.4, weights: big.clone().into() });
    server.shared.publish(Policy { version: 2, epsilon: 0.3, weights: Vec::new().into() }); // not newer: ignored
    let mut got = Vec::new();
    for i in 0..3 {
        let u = updates.next().await.unwrap().unwrap();
        assert_eq!((u.version, u.chunk, u.chunks, u.epsilon), (2, i, 3, 0.4));
        got.extend(u.weights);
    }
    assert_eq!(got, big);
    for v in 3..=6 {
        server.shared.publish(Policy { version: v, epsilon: 0.1, weights: vec![v as u8].into() });
    }
    let mut last = 2;
    while last < 6 {
        let u = updates.next().await.unwrap().unwrap();
        assert!(u.version > last, "version {} after {last}", u.version);
        last = u.version;
    }
    // A late watcher that already has version 6 gets only newer ones.
    let mut late = watch(&mut client, "b", 6).await;
    server.shared.publish(Policy { version: 7, epsilon: 0.1, weights: vec![7].into() });
    assert_eq!(late.next().await.unwrap().unwrap().version, 7);
    drop((updates, late, client));
    server.shutdown().await;
}

#[tokio::test]
async fn gaps_are_refused_whole_and_later_fills_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    assert_eq!(s.send(batch("a", 1..=7)).await.durable_seq, 7);
    // 10 would leave 8 and 9 out: refused, nothing of the batch stored.
    let ack = s.send(batch("a", 10..=11)).await;
    let r = ack.rejected.expect("a gap is refused");
    assert_eq!(r.code, tonic::Code::InvalidArgument as i32);
    assert!(r.message.contains("leaves a gap: the next seq of this actor is 8"), "{}", r.message);
    assert_eq!(ack.durable_seq, 7);
    // 8 and 9 are then new, not duplicates.
    let ack = s.send(batch("a", 8..=9)).await;
    assert_eq!((ack.stored, ack.duplicates, ack.durable_seq), (2, 0, 9));
    // A huge seq never becomes the durable mark.
    let mut b = batch("a", 10..=10);
    b.transitions[0].seq = u64::MAX;
    assert!(s.send(b).await.rejected.is_some());
    let reg = client
        .register(v1::ActorInfo { previous_session: s.session, ..info("a") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reg.durable_seq, 9);
    assert_eq!(stored_seqs(&server.shared.replay, "a"), (1..=9).collect::<Vec<_>>());
    drop(s);
    server.shutdown().await;
}

/// Another client cannot take over a running actor's id: a registration of an id whose session
/// has an open stream is refused unless it names that session (the actor's own reconnect).
#[tokio::test]
async fn a_live_session_is_superseded_only_by_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        start_keyed(&dir.path().join("replay"), &dir.path().join("session.key"), HOLD, None).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut first = Stream::register(&mut client, "a").await;
    assert!(first.send(batch("a", 1..=2)).await.rejected.is_none());
    // A hijack: the same id, without the session. Refused; the running actor goes on.
    let mut other = LearnerClient::connect(server.url.clone()).await.unwrap();
    let reg = other.register(info("a")).await.unwrap().into_inner();
    assert!(!reg.accepted && reg.reason.contains("held by another session"), "{}", reg.reason);
    assert_eq!(reg.session, 0, "no session handed out");
    let ack = first.send(batch("a", 3..=4)).await;
    assert_eq!((ack.stored, ack.rejected), (2, None), "the running actor was not stopped");
    // The actor's own reconnect names its session and supersedes it: the old session's
    // batches are then refused, so two sequences can never merge.
    let again = v1::ActorInfo { previous_session: first.session, ..info("a") };
    let reg = client.register(again).await.unwrap().into_inner();
    assert!(reg.accepted, "{}", reg.reason);
    let ack = first.send(batch("a", 5..=6)).await;
    assert_eq!(ack.rejected.map(|r| r.code), Some(tonic::Code::Aborted as i32));
    let mut second = Stream::open(&mut client, reg.session).await;
    let ack = second.send(batch("a", 5..=6)).await;
    assert_eq!((ack.stored, ack.durable_seq), (2, 6));
    // Once no stream of the id is open, its session still holds it for the hold time: a new
    // process is told how long to wait, then let in (a restarted actor that lost its session).
    drop((first, second));
    for _ in 0..100 {
        if server.shared.open_streams("a") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reg = other.register(info("a")).await.unwrap().into_inner();
    assert!(!reg.accepted && reg.reason.contains("held by another session"), "{}", reg.reason);
    assert!(reg.retry_after_ms > 0 && reg.retry_after_ms <= HOLD.as_millis() as u32, "{reg:?}");
    tokio::time::sleep(Duration::from_millis(u64::from(reg.retry_after_ms) + 20)).await;
    let reg = other.register(info("a")).await.unwrap().into_inner();
    assert!(reg.accepted, "{}", reg.reason);
    assert_eq!(reg.durable_seq, 6);
    server.shutdown().await;
}

/// With a push interval, a watcher gets at most one version per interval, always the newest:
/// the versions published in between are skipped, so pushes do not grow with the publish rate.
#[tokio::test]
async fn a_push_interval_sends_each_watcher_the_newest_version_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let interval = Duration::from_millis(400);
    server.shared.set_push_interval(interval);
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut updates = watch(&mut client, "a", 0).await;
    // Measured from before the first push: the interval starts when it is sent.
    let first = std::time::Instant::now();
    server.shared.publish(Policy { version: 1, epsilon: 0.5, weights: vec![1].into() });
    assert_eq!(updates.next().await.unwrap().unwrap().version, 1);
    for v in 2..=5 {
        server.shared.publish(Policy { version: v, epsilon: 0.5, weights: vec![v as u8].into() });
    }
    let u = updates.next().await.unwrap().unwrap();
    let waited = first.elapsed();
    assert_eq!(u.version, 5, "the newest version, versions 2-4 skipped");
    assert!(waited >= interval, "pushed after {waited:?}");
    assert!(waited < interval + Duration::from_secs(1), "pushed after {waited:?}");
    // Nothing newer: nothing more arrives.
    assert!(tokio::time::timeout(interval * 2, updates.next()).await.is_err());
    drop((updates, client));
    server.shutdown().await;
}

/// The hold time of the identity tests.
const HOLD: Duration = Duration::from_millis(1500);

/// After a learner restart, an id with stored transitions is held for the sessions the
/// learner issued before it (its key is kept next to the store): another client without one, or
/// with a forged one, is refused; the actor's own reconnect gets in; the run's operator token
/// takes an id from the session holding it.
#[tokio::test]
async fn held_ids_survive_a_restart_and_yield_only_to_their_session_or_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (path, key) = (dir.path().join("replay"), dir.path().join("session.key"));
    let server = start_keyed(&path, &key, HOLD, Some("op-token")).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    assert_eq!(s.send(batch("a", 1..=2)).await.durable_seq, 2);
    let before = s.session;
    drop(s);
    server.shutdown().await;

    let server = start_keyed(&path, &key, HOLD, Some("op-token")).await;
    let mut thief = LearnerClient::connect(server.url.clone()).await.unwrap();
    for forged in [0, before ^ 1, before.rotate_left(32)] {
        let reg = thief
            .register(v1::ActorInfo { previous_session: forged, ..info("a") })
            .await
            .unwrap()
            .into_inner();
        assert!(!reg.accepted && reg.retry_after_ms > 0, "session {forged:x}: {reg:?}");
        assert_eq!((reg.session, reg.durable_seq), (0, 0), "nothing handed out");
        assert!(reg.reason.contains("held by another session"), "{}", reg.reason);
    }
    // An id without stored transitions is not held.
    assert!(thief.register(info("b")).await.unwrap().into_inner().accepted);
    // The actor's own reconnect, with its session from before the restart.
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let reg = client
        .register(v1::ActorInfo { previous_session: before, ..info("a") })
        .await
        .unwrap()
        .into_inner();
    assert!(reg.accepted, "{}", reg.reason);
    assert_eq!(reg.durable_seq, 2);
    let mut own = Stream::open(&mut client, reg.session).await;
    assert_eq!(own.send(batch("a", 3..=4)).await.durable_seq, 4);
    // A wrong operator token changes nothing; the right one takes the id, and the session it
    // replaced is refused from then on.
    let wrong = v1::ActorInfo { operator_token: "op-tokem".into(), ..info("a") };
    assert!(!thief.register(wrong).await.unwrap().into_inner().accepted);
    let ack = own.send(batch("a", 5..=5)).await;
    assert_eq!((ack.stored, ack.rejected), (1, None), "the running actor was not stopped");
    let operator = v1::ActorInfo { operator_token: "op-token".into(), ..info("a") };
    let reg = thief.register(operator).await.unwrap().into_inner();
    assert!(reg.accepted && reg.durable_seq == 5, "{reg:?}");
    let ack = own.send(batch("a", 6..=6)).await;
    assert_eq!(ack.rejected.map(|r| r.code), Some(tonic::Code::Aborted as i32));
    assert_eq!(stored_seqs(&server.shared.replay, "a"), (1..=5).collect::<Vec<_>>());
    drop(own);
    server.shutdown().await;
}

/// What a registration may carry is bounded, and a refusal does not hand out the learner's
/// action set.
#[tokio::test]
async fn fat_or_foreign_registrations_are_refused_without_revealing_the_action_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut fat = info("a");
    fat.hardware.as_mut().unwrap().device_name = "x".repeat(1 << 20);
    let reg = client.register(fat).await.unwrap().into_inner();
    assert!(!reg.accepted && reg.reason.contains("over the limit of 65536"), "{}", reg.reason);
    let mut fat = info("a");
    fat.model_identity = "m".repeat(300);
    let reg = client.register(fat).await.unwrap().into_inner();
    assert!(
        !reg.accepted && reg.reason.contains("`model_identity` is 300 bytes"),
        "{}",
        reg.reason
    );
    let reg = client
        .register(v1::ActorInfo { actions: vec!["guess".into()], ..info("a") })
        .await
        .unwrap()
        .into_inner();
    assert!(!reg.accepted && reg.reason.contains("1 actions"), "{}", reg.reason);
    for label in contract().actions {
        assert!(!reg.reason.contains(&label), "the refusal names the learner's `{label}`");
    }
    let st = client.status(v1::StatusRequest::default()).await.unwrap().into_inner();
    assert_eq!(st.actors_connected, 0, "nothing refused was kept");
    server.shutdown().await;
}

/// Status lists connected actors a page at a time, by id.
#[tokio::test]
async fn status_pages_through_connected_actors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    for i in 0..25 {
        let reg = client.register(info(&format!("a{i:02}"))).await.unwrap().into_inner();
        assert!(reg.accepted, "{}", reg.reason);
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let st = client
            .status(v1::StatusRequest { max_actors: 10, after_actor: after.clone() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.actors_connected, 25);
        assert!(st.actors.len() <= 10);
        seen.extend(st.actors.into_iter().map(|a| a.actor_id));
        if st.next_after_actor.is_empty() {
            break;
        }
        after = st.next_after_actor;
    }
    assert_eq!(seen, (0..25).map(|i| format!("a{i:02}")).collect::<Vec<_>>());
    server.shutdown().await;
}

#[tokio::test]
async fn status_lists_connected_actors_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let mut s = Stream::register(&mut client, "a").await;
    s.send(batch("a", 1..=2)).await;
    let names = |st: v1::LearnerStatus| {
        st.actors.into_iter().map(|a| (a.actor_id, a.durable_seq)).collect::<Vec<_>>()
    };
    assert_eq!(
        names(client.status(v1::StatusRequest::default()).await.unwrap().into_inner()),
        vec![("a".to_string(), 2)]
    );
    drop(s);
    // Registered long ago and no stream open any more: not listed (the time is moved back
    // rather than waited for).
    for _ in 0..100 {
        if server.shared.open_streams("a") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shared.age_registrations();
    assert_eq!(
        names(client.status(v1::StatusRequest::default()).await.unwrap().into_inner()),
        vec![]
    );
    server.shutdown().await;
}

/// Sends raw bytes as messages (whatever a hostile client writes) and reads acks.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct AckDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for AckDecoder {
    type Item = v1::Ack;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<v1::Ack>, tonic::Status> {
        use prost::Message;
        v1::Ack::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::Ack;
    type Encoder = RawEncoder;
    type Decoder = AckDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> AckDecoder {
        AckDecoder
    }
}

/// Opens a transition stream that sends `messages` as they are and returns what comes back:
/// the acks, then the status the stream ended with.
async fn raw_stream(url: &str, messages: Vec<Vec<u8>>) -> (Vec<v1::Ack>, tonic::Status) {
    let channel =
        tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/casrap.v1.Learner/StreamTransitions",
    );
    let req = tonic::Request::new(tokio_stream::iter(messages));
    let mut acks = grpc.streaming(req, path, RawCodec).await.unwrap().into_inner();
    let mut got = Vec::new();
    loop {
        match acks.message().await {
            Ok(Some(a)) => got.push(a),
            Ok(None) => return (got, tonic::Status::ok("")),
            Err(s) => return (got, s),
        }
    }
}

#[tokio::test]
async fn unreadable_messages_end_the_stream_with_a_reason() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = LearnerClient::connect(server.url.clone()).await.unwrap();
    let reg = client.register(info("a")).await.unwrap().into_inner();
    let good = |seqs| {
        let mut b = batch("a", seqs);
        b.session = reg.session;
        b.encode_to_vec()
    };
    // Bytes that are no protobuf message (field 0x1f..., wire type 7), then a good batch.
    let (acks, status) =
        raw_stream(&server.url, vec![good(1..=2), vec![0xff; 64], good(3..=4)]).await;
    assert_eq!(acks.len(), 1, "the batch before the bad message is acknowledged");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("batches after it on this stream were not read"),
        "{}",
        status.message()
    );
    // Over the 64 MiB limit.
    let (acks, status) =
        raw_stream(&server.url, vec![vec![0u8; casrap_proto::MAX_MESSAGE_BYTES + 1]]).await;
    assert!(acks.is_empty());
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());
    // Nothing of the unread batches was stored; the next stream goes on from seq 3.
    assert_eq!(stored_seqs(&server.shared.replay, "a"), vec![1, 2]);
    let mut s = Stream::open(&mut client, reg.session).await;
    assert_eq!(s.send(batch("a", 3..=4)).await.stored, 2);
    drop(s);
    server.shutdown().await;
}
