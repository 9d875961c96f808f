//! The actor's outbox and reconnect policy, without a learner: memory stays bounded (the episode
//! loop pauses instead), backoff is capped, and a stop while connecting ends cleanly.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use casrap_actor::client::{self, Backoff, Identity, Outbox};
use casrap_proto::v1;

fn transition(seq: u64) -> v1::Transition {
    v1::Transition { seq, state: vec![0.0; 9], action: 0, reward: 0.0, next_state: vec![0.0; 9], done: true, metrics: None }
}

#[test]
fn a_full_outbox_pauses_the_producer_instead_of_growing() {
    let outbox = Outbox::new(2, "http://learner");
    let go = AtomicBool::new(false);
    assert!(outbox.push(transition(1), &go).unwrap());
    assert!(outbox.push(transition(2), &go).unwrap());
    // Full: the push waits; with stop raised it gives up without queueing.
    let stop = AtomicBool::new(true);
    assert!(!outbox.push(transition(3), &stop).unwrap());
    assert_eq!(outbox.stats().pending, 2);
    let err = outbox.wait_drained(Duration::from_millis(300)).unwrap_err().to_string();
    assert!(err.contains("learner http://learner: 2 transitions (seq 1..) still unacknowledged") && err.contains("from seq 1"), "{err}");
}

#[test]
fn backoff_doubles_with_jitter_up_to_a_cap() {
    let mut b = Backoff::new(42);
    let waits: Vec<Duration> = (0..10).map(|_| b.next_wait()).collect();
    assert!(waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(125), "{waits:?}");
    assert!(waits[3] >= Duration::from_millis(800), "{waits:?}");
    assert!(waits.iter().all(|w| *w <= Duration::from_millis(6250)), "{waits:?}");
    assert!(waits[9] >= Duration::from_secs(5), "{waits:?}");
    b.reset();
    assert!(b.next_wait() <= Duration::from_millis(125));
}

#[test]
fn a_stop_while_the_learner_is_unreachable_ends_the_sender_with_the_reason() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outbox = Outbox::new(4, "http://learner");
    let stop = Arc::new(AtomicBool::new(true));
    let url = format!("http://127.0.0.1:{port}");
    let id = Identity { conn: client::Connection::plain(&url), url, info: v1::ActorInfo { actor_id: "a".into(), ..Default::default() }, batch: 8 };
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), client::run_sender(id, outbox.clone(), tx, stop)).await.unwrap();
    });
    let err = rt.block_on(rx).unwrap().unwrap_err().to_string();
    assert!(err.contains("stopped while connecting") && err.contains("cannot connect"), "{err}");
}
