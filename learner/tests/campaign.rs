//! The fault campaign against real `casrap-learner serve` processes on loopback: the learner is
//! SIGKILLed again and again while a writer streams transitions, and SIGSTOPped for a while; an
//! independent witness (its own connection, reading `Status` after every restart) checks that no
//! acknowledged seq is ever lost; at the end the store holds every seq once, without a gap.
//! Prints its figures. `CASRAP_FAULT_KILLS` sets the number of kills (default 20).

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use casrap_common::state;
use casrap_proto::{fixtures, v1, LearnerClient};
use casrap_store::replay::Replay;
use tokio_stream::StreamExt;

mod support;
use support::config;

fn spawn(dir: &Path) -> (Child, String) {
    support::spawn(dir, Stdio::null())
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
}

fn info(actor: &str) -> v1::ActorInfo {
    let cfg = casrap_common::config::RunConfig::from_file(&config()).unwrap();
    fixtures::actor_info(actor, cfg.action_labels())
}

fn transition(seq: u64) -> v1::Transition {
    let dim = state::FEATURES.len();
    let x = (seq % 97) as f32 / 100.0;
    v1::Transition {
        state: vec![x; dim],
        action: (seq % 6) as u32,
        reward: x - 0.5,
        next_state: vec![x; dim],
        ..fixtures::recorded("w", seq)
    }
}

/// What the writer saw of one learner's life.
#[derive(Default)]
struct Life {
    resumed_from: u64,
    acked: u64,
    resent: u64,
    /// The session this life's registration got (the next life's writer names it, as an
    /// actor's reconnect does: its id stays held for it across the learner's restart).
    session: u64,
}

/// Registers, then streams batches of 8 from the durable seq on until the learner dies.
async fn write_until_killed(
    url: String,
    previous_session: u64,
    life: std::sync::Arc<std::sync::Mutex<Life>>,
) {
    let Ok(mut client) = LearnerClient::connect(url).await else { return };
    let Ok(reg) = client.register(v1::ActorInfo { previous_session, ..info("w") }).await else {
        return;
    };
    let reg = reg.into_inner();
    assert!(reg.accepted, "{}", reg.reason);
    {
        let mut l = life.lock().unwrap();
        l.resumed_from = reg.durable_seq;
        l.session = reg.session;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::TransitionBatch>(4);
    let Ok(acks) = client.stream_transitions(tokio_stream::wrappers::ReceiverStream::new(rx)).await
    else {
        return;
    };
    let mut acks = acks.into_inner();
    let mut next = reg.durable_seq + 1;
    loop {
        let b = v1::TransitionBatch {
            actor_id: "w".into(),
            transitions: (next..next + 8).map(transition).collect(),
            session: reg.session,
        };
        if tx.send(b).await.is_err() {
            return;
        }
        match acks.next().await {
            Some(Ok(a)) => {
                assert!(a.rejected.is_none(), "{:?}", a.rejected);
                let mut l = life.lock().unwrap();
                l.acked = l.acked.max(a.durable_seq);
                l.resent += u64::from(a.duplicates);
                next = a.durable_seq + 1;
            }
            _ => return,
        }
    }
}

/// The witness: a client of its own that asks the learner how much it holds (one writer, seqs
/// from 1: the count is the writer's durable seq).
async fn witness(url: &str) -> u64 {
    let mut client = LearnerClient::connect(url.to_string()).await.unwrap();
    client.status(v1::StatusRequest::default()).await.unwrap().into_inner().transitions_stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkills_and_a_sigstop_lose_nothing_acknowledged() {
    let kills: usize =
        std::env::var("CASRAP_FAULT_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut acked_before_kill = 0u64;
    let mut resent = 0u64;
    let mut restart_ms = Vec::new();
    let mut session = 0u64;
    for k in 0..=kills {
        let t0 = Instant::now();
        let (mut child, url) = tokio::task::spawn_blocking({
            let d = dir.path().to_path_buf();
            move || spawn(&d)
        })
        .await
        .unwrap();
        restart_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        // The witness, before the writer is back: nothing acknowledged before the kill is gone.
        let seen = witness(&url).await;
        assert!(
            seen >= acked_before_kill,
            "life {k}: the learner holds {seen}, but {acked_before_kill} was acknowledged"
        );
        if k == kills {
            signal(&child, "TERM");
            let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
            assert!(status.success(), "exit {status}");
            break;
        }
        let life = std::sync::Arc::new(std::sync::Mutex::new(Life::default()));
        let writer = tokio::spawn(write_until_killed(url.clone(), session, life.clone()));
        // Let it write for 150-450 ms (varied, so kills land in every phase of a flush).
        tokio::time::sleep(Duration::from_millis(150 + (k as u64 * 97) % 300)).await;
        if k == kills / 2 {
            // A paused learner: the writer waits, nothing is lost, and it goes on afterwards.
            signal(&child, "STOP");
            tokio::time::sleep(Duration::from_secs(2)).await;
            signal(&child, "CONT");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        signal(&child, "KILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
        let l = life.lock().unwrap();
        assert!(
            l.resumed_from >= acked_before_kill,
            "life {k}: resumed from {} after {acked_before_kill} was acknowledged",
            l.resumed_from
        );
        acked_before_kill = acked_before_kill.max(l.acked);
        resent += l.resent;
        session = if l.session != 0 { l.session } else { session };
    }
    // Every seq once, no gap, as far as was acknowledged (and perhaps a little beyond it: what
    // was durable when the kill came but not yet acknowledged).
    let replay = Replay::open(&dir.path().join("replay"), u64::MAX).unwrap();
    let seqs = seqs_of(&replay, "w");
    let stored = seqs.len() as u64;
    let duplicates = seqs.windows(2).filter(|w| w[1] == w[0]).count();
    let gaps = seqs.windows(2).filter(|w| w[1] > w[0] + 1).count();
    restart_ms.sort_by(f64::total_cmp);
    println!(
        "fault campaign: {kills} SIGKILLs and 1 SIGSTOP of the learner in {:.1} s; acknowledged {acked_before_kill}, stored {stored} \
         (resends acknowledged as duplicates {resent}), duplicates stored {duplicates}, gaps {gaps}, restart median {:.0} ms",
        started.elapsed().as_secs_f64(),
        restart_ms[restart_ms.len() / 2]
    );
    assert!(acked_before_kill > 0, "nothing was ever acknowledged");
    assert_eq!(seqs, (1..=stored).collect::<Vec<_>>(), "stored seqs are 1..=n, each once");
    assert!(stored >= acked_before_kill, "stored {stored} < acknowledged {acked_before_kill}");
    assert_eq!(
        replay.episodes().unwrap().len() as u64,
        stored,
        "one episode record per stored transition"
    );
}

/// The seqs of `actor` the store holds, in the order stored.
fn seqs_of(replay: &Replay, actor: &str) -> Vec<u64> {
    replay
        .records()
        .unwrap()
        .iter()
        .filter(|r| r.actor == actor)
        .map(|r| r.transition.seq)
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A SIGKILL, then damage to the end of sled's `db` (what a crash of the machine or the disk can
/// leave): every copy is either refused at open, naming the actor, its lost seqs and the witness,
/// or it holds every acknowledged seq. sled alone opens such stores as older ones, silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_after_a_crash_is_refused_at_open_or_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = tokio::task::spawn_blocking({
        let d = dir.path().to_path_buf();
        move || spawn(&d)
    })
    .await
    .unwrap();
    let life = std::sync::Arc::new(std::sync::Mutex::new(Life::default()));
    let writer = tokio::spawn(write_until_killed(url, 0, life.clone()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal(&child, "KILL");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    let acked = life.lock().unwrap().acked;
    assert!(acked > 100, "only {acked} acknowledged");
    let store = dir.path().join("replay");
    let len = std::fs::metadata(store.join("db")).unwrap().len();
    type Damage<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>));
    let damages: [Damage; 3] = [
        ("the last MiB cut", &|b| b.truncate(b.len().saturating_sub(1 << 20).max(b.len() / 2))),
        ("the last 4 KiB flipped", &|b| {
            let n = b.len();
            b[n.saturating_sub(4096)..].iter_mut().for_each(|x| *x ^= 0xA5);
        }),
        ("cut to half", &|b| b.truncate(b.len() / 2)),
    ];
    let mut outcomes = Vec::new();
    for (what, damage) in damages {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&store, copy.path());
        let mut bytes = std::fs::read(copy.path().join("db")).unwrap();
        damage(&mut bytes);
        std::fs::write(copy.path().join("db"), bytes).unwrap();
        let opened = std::panic::catch_unwind(|| Replay::open(copy.path(), u64::MAX));
        match opened {
            Ok(Err(e)) => {
                let e = e.to_string();
                assert!(
                    e.contains(&copy.path().display().to_string()),
                    "{what}: the error names the store: {e}"
                );
                outcomes.push(format!("{what}: refused ({})", e.split(':').nth(1).unwrap_or("")));
                if e.contains("acknowledged transitions are missing") {
                    assert!(e.contains("actor `w`") && e.contains("marks.log"), "{what}: {e}");
                }
            }
            Ok(Ok(replay)) => {
                let seqs = seqs_of(&replay, "w");
                assert!(
                    seqs.len() as u64 >= acked
                        && seqs[..acked as usize] == (1..=acked).collect::<Vec<_>>()[..],
                    "{what}: opened without an error but holds {} of {acked} acknowledged seqs",
                    seqs.len()
                );
                outcomes.push(format!("{what}: opened, nothing lost"));
            }
            Err(_) => panic!("{what}: opening panicked"),
        }
    }
    println!("crash then damage, {acked} acknowledged, db {len} bytes: {}", outcomes.join("; "));
}

/// Each published policy version is durable before any actor sees it: a learner SIGKILLed right
/// after a watcher received a version restarts with a higher one, ten times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_versions_increase_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (mut child, url) = tokio::task::spawn_blocking({
            let d = dir.path().to_path_buf();
            move || spawn(&d)
        })
        .await
        .unwrap();
        let mut client = LearnerClient::connect(url).await.unwrap();
        let mut updates = client
            .watch_policy(v1::PolicyRequest { actor_id: "v".into(), have_version: 0 })
            .await
            .unwrap()
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(30), updates.next())
            .await
            .expect("a policy within 30 s")
            .unwrap()
            .unwrap();
        signal(&child, "KILL");
        let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
        seen.push(first.version);
    }
    println!("policy versions seen across 10 kills: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "a version was reused: {seen:?}");
}
