//! The actor's outbox and reconnect policy, without a learner: memory stays bounded (the episode
//! loop pauses instead), backoff is capped, and a stop while connecting ends cleanly.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use casrap_actor::client::{self, Backoff, Identity, Outbox};
use casrap_proto::v1;

use casrap_proto::fixtures::transition;

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
    assert!(
        err.contains("learner http://learner: 2 transitions (seq 1..) still unacknowledged")
            && err.contains("from seq 1"),
        "{err}"
    );
}

#[test]
fn backoff_doubles_with_jitter_up_to_a_cap() {
    let mut b = Backoff::new(42);
    let waits: Vec<Duration> = (0..10).map(|_| b.next_wait()).collect();
    assert!(
        waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(125),
        "{waits:?}"
    );
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
    let id = Identity {
        conn: casrap_proto::connect::Connection::plain(&url),
        url,
        info: v1::ActorInfo { actor_id: "a".into(), ..Default::default() },
        batch: 8,
        session_file: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            client::run_sender(id, outbox.clone(), tx, stop),
        )
        .await
        .unwrap();
    });
    let err = rt.block_on(rx).unwrap().unwrap_err().to_string();
    assert!(err.contains("stopped while connecting") && err.contains("cannot connect"), "{err}");
}

/// A learner that accepts every registration and refuses every batch as a store failure (a
/// learner with a full disk), counting registrations.
struct RefusingLearner {
    registrations: Arc<std::sync::atomic::AtomicU64>,
}

type Boxed<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl casrap_proto::Learner for RefusingLearner {
    async fn register(
        &self,
        _: tonic::Request<v1::ActorInfo>,
    ) -> Result<tonic::Response<v1::Registration>, tonic::Status> {
        self.registrations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(tonic::Response::new(v1::Registration {
            accepted: true,
            max_batch: 8,
            session: 1,
            ..Default::default()
        }))
    }
    type StreamTransitionsStream = Boxed<v1::Ack>;
    async fn stream_transitions(
        &self,
        request: tonic::Request<tonic::Streaming<v1::TransitionBatch>>,
    ) -> Result<tonic::Response<Self::StreamTransitionsStream>, tonic::Status> {
        use tokio_stream::StreamExt;
        let acks = request.into_inner().map(|b| {
            let b = b?;
            Ok(v1::Ack {
                actor_id: b.actor_id,
                rejected: Some(v1::Rejection {
                    code: tonic::Code::Unavailable as i32,
                    message: "no space left on device".into(),
                }),
                ..Default::default()
            })
        });
        Ok(tonic::Response::new(Box::pin(acks)))
    }
    type WatchPolicyStream = Boxed<v1::PolicyUpdate>;
    async fn watch_policy(
        &self,
        _: tonic::Request<v1::PolicyRequest>,
    ) -> Result<tonic::Response<Self::WatchPolicyStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
    async fn status(
        &self,
        _: tonic::Request<v1::StatusRequest>,
    ) -> Result<tonic::Response<v1::LearnerStatus>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }
}

#[test]
fn a_learner_that_refuses_every_batch_is_retried_with_growing_backoff() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let registrations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (url, stop_server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let svc = casrap_proto::LearnerServer::new(RefusingLearner {
            registrations: registrations.clone(),
        });
        tokio::spawn(
            tonic::transport::Server::builder().add_service(svc).serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
        );
        (url, stop)
    });
    let outbox = Outbox::new(4, &url);
    assert!(outbox.push(transition(1), &AtomicBool::new(false)).unwrap());
    let id = Identity {
        conn: casrap_proto::connect::Connection::plain(&url),
        url,
        info: v1::ActorInfo { actor_id: "a".into(), ..Default::default() },
        batch: 8,
        session_file: None,
    };
    let (tx, _rx) = tokio::sync::oneshot::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let window = Duration::from_secs(4);
    rt.block_on(async {
        // The sender never finishes here (nothing is ever acknowledged): watch it for a while.
        let _ =
            tokio::time::timeout(window, client::run_sender(id, outbox.clone(), tx, stop)).await;
    });
    let n = registrations.load(std::sync::atomic::Ordering::Relaxed);
    // Doubling from 100 ms: 100 + 200 + 400 + 800 + 1600 ms fit in 4 s, so at most 6 attempts;
    // a backoff reset by every successful registration would retry every ~100 ms (about 30).
    assert!((2..=7).contains(&n), "{n} registrations in {window:?}");
    assert_eq!(outbox.stats().pending, 1, "nothing unacknowledged is dropped");
    let _ = stop_server.send(());
}
