//! Running the learner: open the store, resume the trainer, serve gRPC until a shutdown signal,
//! then stop the trainer (final checkpoint) and close everything.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use casrap_common::config::RunConfig;
use casrap_common::state;
use casrap_proto::LearnerServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::error::{Error, Result};
use crate::replay::Replay;
use crate::service::{Contract, LearnerService, Shared};
use crate::trainer::{self, Trainer};

/// The contract a run config implies.
pub fn contract(cfg: &RunConfig) -> Contract {
    Contract {
        state_layout_version: state::LAYOUT_VERSION,
        state_dim: cfg.state_dim(),
        actions: cfg.action_labels(),
        max_batch: cfg.learner.max_batch,
    }
}

/// A learner that is up: its address, shared state and trainer thread.
pub struct Learner {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    trainer: Option<std::thread::JoinHandle<crate::Result<Trainer>>>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    signaled: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// How long shutdown waits for open streams to finish before closing them.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens `dir/replay`, resumes from `dir/checkpoints` (or starts fresh), binds `listen` and
/// serves until `shutdown` resolves (see [`Learner::wait`]).
pub async fn start(cfg: &RunConfig, listen: &str, dir: &Path, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<Learner> {
    let replay = Arc::new(Replay::open(&dir.join("replay"), cfg.learner.replay_capacity)?);
    tracing::info!(path = %dir.join("replay").display(), stored = replay.total()?, kept = replay.len()?, "replay store open");
    let contract = contract(cfg);
    let checkpoints: PathBuf = dir.join("checkpoints");
    let log = dir.join("training.jsonl");
    let trainer = match Trainer::resume(&checkpoints, &cfg.trainer, contract.state_dim, contract.actions.len()) {
        Some((t, _)) => t,
        None => {
            tracing::info!(dir = %checkpoints.display(), "no checkpoint; starting fresh");
            Trainer::new(cfg.trainer.clone(), contract.state_dim, contract.actions.len())
        }
    };
    let shared = Shared::new(contract, replay);
    let bind = |source| Error::Bind { addr: listen.into(), source };
    let listener = TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (shared.clone(), stop.clone());
    // The Q-network is small: one torch thread is fastest and leaves the other cores to ingest.
    tch::set_num_threads(1);
    let trainer = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || trainer::run(trainer, s, Some(checkpoints), Some(log), st))
        .map_err(|e| Error::Trainer(format!("cannot start its thread: {e}")))?;
    let svc = LearnerServer::new(LearnerService { shared: shared.clone() })
        .max_decoding_message_size(64 << 20);
    let (signaled_tx, signaled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signaled_tx.send(());
    };
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown),
    );
    tracing::info!(%addr, "learner listening");
    Ok(Learner { addr, shared, stop, trainer: Some(trainer), server, signaled: Some(signaled) })
}

impl Learner {
    /// Waits for the server to stop (its shutdown signal), then stops the trainer, which writes
    /// its final checkpoint. Every acknowledged transition was flushed before its ack.
    pub async fn wait(mut self) -> Result<()> {
        let signaled = self.signaled.take();
        let drained = async move {
            if let Some(s) = signaled {
                let _ = s.await;
                tokio::time::sleep(DRAIN).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            r = &mut self.server => r,
            _ = drained => {
                tracing::warn!(seconds = DRAIN.as_secs(), "streams still open after the shutdown signal; closing them");
                self.server.abort();
                Ok(Ok(()))
            }
        };
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.trainer.take() {
            let t = tokio::task::spawn_blocking(move || t.join()).await.map_err(|e| Error::Trainer(e.to_string()))?;
            match t {
                Ok(Ok(t)) => tracing::info!(updates = t.updates, version = t.version, "trainer stopped"),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Trainer("its thread panicked".into())),
            }
        }
        served.map_err(|e| Error::Trainer(format!("server task: {e}")))??;
        tracing::info!(stored = self.shared.replay.total()?, "learner stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    casrap_common::signals::shutdown().await
}
