//! `casrap-learner serve` as a process: it reports its address, takes transitions, and on SIGTERM
//! stops cleanly with a final checkpoint; restarted on the same folder it resumes.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::path::Path;
use std::process::{Child, Command, Stdio};

use casrap_common::state;
use casrap_proto::{v1, LearnerClient};

mod support;
use support::config;

fn spawn(dir: &Path) -> (Child, String) {
    support::spawn(dir, Stdio::piped())
}

fn terminate(mut child: Child) -> String {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "exit {status}: {err}");
    err
}

/// Registers `a` (naming its session from before, as an actor's reconnect does), sends `seqs`;
/// the durable seq and the session.
async fn send(url: &str, seqs: std::ops::RangeInclusive<u64>, previous_session: u64) -> (u64, u64) {
    let cfg = casrap_common::config::RunConfig::from_file(&config()).unwrap();
    let mut client = LearnerClient::connect(url.to_string()).await.unwrap();
    let reg = client
        .register(v1::ActorInfo {
            actor_id: "a".into(),
            actions: cfg.action_labels(),
            state_layout_version: state::LAYOUT_VERSION,
            state_dim: state::FEATURES.len() as u32,
            previous_session,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(reg.accepted, "{}", reg.reason);
    let dim = state::FEATURES.len();
    let batch = v1::TransitionBatch {
        actor_id: "a".into(),
        transitions: seqs
            .map(|seq| v1::Transition {
                seq,
                state: vec![0.5; dim],
                action: 1,
                reward: 0.1,
                next_state: vec![0.5; dim],
                done: true,
                metrics: None,
            })
            .collect(),
        session: reg.session,
    };
    let mut acks =
        client.stream_transitions(tokio_stream::iter([batch])).await.unwrap().into_inner();
    use tokio_stream::StreamExt;
    let ack = acks.next().await.unwrap().unwrap();
    assert!(ack.rejected.is_none());
    (reg.durable_seq.max(ack.durable_seq), reg.session)
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn(dir.path());
    let (durable, session) = send(&url, 1..=100, 0).await;
    assert_eq!(durable, 100);
    // Off the runtime thread: the client's connection must be able to close meanwhile.
    let log = tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
    assert!(log.contains("final checkpoint written"), "{log}");
    assert!(dir.path().join("checkpoints").read_dir().unwrap().count() >= 1);

    let (child, url) = spawn(dir.path());
    assert_eq!(send(&url, 90..=120, session).await.0, 120, "nothing acknowledged was lost");
    let log = tokio::task::spawn_blocking(move || terminate(child)).await.unwrap();
    assert!(log.contains("resumed from checkpoint"), "{log}");
}
