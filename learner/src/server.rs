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
    /// Where `GET /metrics` is served, when `learner.metrics` is set.
    pub metrics_addr: Option<SocketAddr>,
    metrics: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
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
    let sec = &cfg.security;
    let token = sec.token().map_err(|e| Error::Security(e.to_string()))?;
    let tls = match &sec.tls {
        Some(t) => Some(server_tls(t)?),
        None => None,
    };
    let shared = Shared::new(contract, replay);
    let bind = |source| Error::Bind { addr: listen.into(), source };
    let listener = TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    if !addr.ip().is_loopback() && token.is_none() && !sec.allow_insecure {
        return Err(Error::Security(format!(
            "refusing to listen on {addr} (not loopback) without a bearer token: set security.token_file or {}, or security.allow_insecure: true",
            casrap_common::config::TOKEN_ENV
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (shared.clone(), stop.clone());
    // The Q-network is small: one torch thread is fastest and leaves the other cores to ingest.
    tch::set_num_threads(1);
    let trainer = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || trainer::run(trainer, s, Some(checkpoints), Some(log), st))
        .map_err(|e| Error::Trainer(format!("cannot start its thread: {e}")))?;
    let svc = tonic::service::interceptor::InterceptedService::new(
        LearnerServer::new(LearnerService { shared: shared.clone() }).max_decoding_message_size(64 << 20),
        BearerAuth::new(token.as_deref()),
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| Error::Security(format!("TLS: {e}")))?;
    }
    let (signaled_tx, signaled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = signaled_tx.send(());
    };
    let server = tokio::spawn(
        builder
            .add_service(svc)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown),
    );
    tracing::info!(%addr, token = token.is_some(), tls = sec.tls.is_some(), "learner listening");
    let (metrics_addr, metrics) = match &cfg.learner.metrics {
        None => (None, None),
        Some(m) => {
            let bind = |source| Error::Bind { addr: m.clone(), source };
            let l = TcpListener::bind(m).await.map_err(bind)?;
            let a = l.local_addr().map_err(bind)?;
            let s = shared.clone();
            let last = std::sync::Mutex::new((std::time::Instant::now(), s.replay.total().unwrap_or(0)));
            let render: casrap_common::metrics::Render = Arc::new(move || {
                let total = s.replay.total().unwrap_or(0);
                let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
                let dt = l.0.elapsed().as_secs_f64();
                let rate = if dt > 0.0 { total.saturating_sub(l.1) as f64 / dt } else { 0.0 };
                *l = (std::time::Instant::now(), total);
                s.metrics(rate)
            });
            tracing::info!(addr = %a, "metrics at /metrics");
            (Some(a), Some(tokio::spawn(casrap_common::metrics::serve(l, render))))
        }
    };
    Ok(Learner { addr, metrics_addr, metrics, shared, stop, trainer: Some(trainer), server, signaled: Some(signaled) })
}

/// Requires `authorization: Bearer <token>` on every RPC when a token is set; a missing or wrong
/// one is refused with UNAUTHENTICATED before the service sees the request.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<Vec<u8>>,
}

impl BearerAuth {
    pub fn new(token: Option<&str>) -> Self {
        Self { expected: token.map(|t| format!("Bearer {t}").into_bytes()) }
    }
}

/// Compares without stopping at the first differing byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(expected) = &self.expected else { return Ok(req) };
        match req.metadata().get("authorization") {
            Some(v) if same(v.as_bytes(), expected) => Ok(req),
            Some(_) => Err(tonic::Status::unauthenticated("wrong bearer token")),
            None => Err(tonic::Status::unauthenticated("this learner requires a bearer token (authorization: Bearer ...)")),
        }
    }
}

fn read_pem(path: &str, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Security(format!("{what} {path}: {e}")))
}

/// The learner's TLS settings from the `security.tls` section.
fn server_tls(t: &casrap_common::config::TlsConfig) -> Result<tonic::transport::ServerTlsConfig> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let identity = Identity::from_pem(read_pem(&t.cert, "security.tls.cert")?, read_pem(&t.key, "security.tls.key")?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &t.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca, "security.tls.client_ca")?));
    }
    Ok(tls)
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
        if let Some(m) = self.metrics.take() {
            m.abort();
        }
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
