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

use crate::error::{Error, Result};
use crate::service::{Contract, LearnerService, Shared};
use crate::trainer::{self, Trainer};
use casrap_store::replay::Replay;

/// The contract a run config implies.
pub fn contract(cfg: &RunConfig) -> Contract {
    Contract {
        state_layout_version: state::LAYOUT_VERSION,
        state_dim: cfg.state_dim(),
        actions: cfg.action_labels(),
        max_batch: cfg.learner.max_batch,
        reward_bounds: cfg.reward.clip.map(|[lo, hi]| [lo as f32, hi as f32]),
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

/// What an operator decides at a start, beyond the run config.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Serve a replay store that lost acknowledged transitions (see
    /// [`casrap_store::replay::OpenOptions::accept_lost_data`]); without it such a store is refused.
    pub accept_lost_data: bool,
}

/// Opens `dir/replay`, resumes from `dir/checkpoints` (or starts fresh), binds `listen` and
/// serves until `shutdown` resolves (see [`Learner::wait`]).
pub async fn start(
    cfg: &RunConfig,
    listen: &str,
    dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Learner> {
    start_with(cfg, listen, dir, &StartOptions::default(), shutdown).await
}

/// [`start`] with the operator's [`StartOptions`].
pub async fn start_with(
    cfg: &RunConfig,
    listen: &str,
    dir: &Path,
    options: &StartOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Learner> {
    let replay = Arc::new(Replay::open_with(
        &dir.join("replay"),
        &casrap_store::replay::OpenOptions {
            capacity: cfg.learner.replay_capacity,
            cache_bytes: cfg.learner.cache_mb << 20,
            accept_lost_data: options.accept_lost_data,
        },
    )?);
    // Read everything once: a corrupt store fails here, with the record named, rather than
    // stopping the trainer later while ingest goes on.
    let records = replay.verify()?;
    tracing::info!(path = %dir.join("replay").display(), stored = replay.total()?, kept = replay.len()?, records, "replay store open and verified");
    let contract = contract(cfg);
    let checkpoints: PathBuf = dir.join("checkpoints");
    let log = dir.join("training.jsonl");
    let mut trainer = match Trainer::resume(
        &checkpoints,
        &cfg.trainer,
        contract.state_dim,
        contract.actions.len(),
    ) {
        Some((t, _)) => t,
        None => {
            tracing::info!(dir = %checkpoints.display(), "no checkpoint; starting fresh");
            Trainer::new(cfg.trainer.clone(), contract.state_dim, contract.actions.len())
        }
    };
    // Versions published before (kept in the store) stay behind the next one, even when the
    // checkpoints are lost: running actors ignore a version that does not increase.
    let published = replay.policy_version()?;
    if published > trainer.version {
        tracing::warn!(
            checkpoint_version = trainer.version,
            published,
            "policy versions continue after the newest one published"
        );
        trainer.version = published;
    }
    let sec = &cfg.security;
    let token = sec.token().map_err(|e| Error::Security(e.to_string()))?;
    let tls = match &sec.tls {
        Some(t) => Some(server_tls(t)?),
        None => None,
    };
    let operator = sec.operator_token().map_err(|e| Error::Security(e.to_string()))?;
    let identity = crate::identity::Identity::load_or_create(
        &dir.join("session.key"),
        std::time::Duration::from_secs(cfg.learner.session_hold_s),
        operator,
    )?;
    let shared = Shared::with_identity(contract, replay, identity);
    shared.set_push_interval(std::time::Duration::from_millis(cfg.learner.push_interval_ms));
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
    // A trainer that stops on an error stops the learner: one that kept acknowledging without
    // training would look healthy while learning nothing.
    let (failed_tx, failed) = tokio::sync::oneshot::channel::<()>();
    // The Q-network is small: one torch thread is fastest and leaves the other cores to ingest.
    tch::set_num_threads(1);
    let trainer = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || {
            trainer::lower_priority(trainer.cfg.nice);
            let result = trainer::run(trainer, s.clone(), Some(checkpoints), Some(log), st);
            if let Err(e) = &result {
                tracing::error!(error = %e, "trainer stopped; shutting the learner down");
                s.set_trainer_error(e.to_string());
                let _ = failed_tx.send(());
            }
            result
        })
        .map_err(|e| Error::Trainer(format!("cannot start its thread: {e}")))?;
    let svc = tonic::service::interceptor::InterceptedService::new(
        LearnerServer::new(LearnerService { shared: shared.clone() })
            .max_decoding_message_size(casrap_proto::MAX_MESSAGE_BYTES),
        BearerAuth::new(token.as_deref()),
    );
    // HTTP/2 pings close the streams of a peer that vanished without closing them (a machine
    // that died): its actor id is free again within about half a minute.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| Error::Security(format!("TLS: {e}")))?;
    }
    let (signaled_tx, signaled) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(()) = failed => {}
        }
        let _ = signaled_tx.send(());
    };
    // Acks and pushes are small writes: with Nagle's algorithm on (what a plain listener's
    // sockets get) each could wait for the peer's delayed ACK before it leaves.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let server =
        tokio::spawn(builder.add_service(svc).serve_with_incoming_shutdown(incoming, shutdown));
    tracing::info!(%addr, token = token.is_some(), tls = sec.tls.is_some(), "learner listening");
    let (metrics_addr, metrics) = match &cfg.learner.metrics {
        None => (None, None),
        Some(m) => {
            let bind = |source| Error::Bind { addr: m.clone(), source };
            let l = TcpListener::bind(m).await.map_err(bind)?;
            let a = l.local_addr().map_err(bind)?;
            let registry = metrics_registry(shared.clone());
            let render: casrap_common::metrics::Render =
                Arc::new(move || casrap_common::metrics::render(&registry));
            tracing::info!(addr = %a, "metrics at /metrics");
            (Some(a), Some(tokio::spawn(casrap_common::metrics::serve(l, render))))
        }
    };
    Ok(Learner {
        addr,
        metrics_addr,
        metrics,
        shared,
        stop,
        trainer: Some(trainer),
        server,
        signaled: Some(signaled),
    })
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
            None => Err(tonic::Status::unauthenticated(
                "this learner requires a bearer token (authorization: Bearer ...)",
            )),
        }
    }
}

fn read_pem(path: &str, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Security(format!("{what} {path}: {e}")))
}

/// The learner's TLS settings from the `security.tls` section.
fn server_tls(t: &casrap_common::config::TlsConfig) -> Result<tonic::transport::ServerTlsConfig> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let identity = Identity::from_pem(
        read_pem(&t.cert, "security.tls.cert")?,
        read_pem(&t.key, "security.tls.key")?,
    );
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
            let t = tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| Error::Trainer(e.to_string()))?;
            match t {
                Ok(Ok(t)) => {
                    tracing::info!(updates = t.updates, version = t.version, "trainer stopped")
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Trainer("its thread panicked".into())),
            }
        }
        served.map_err(|e| Error::Trainer(format!("server task: {e}")))??;
        tracing::info!(stored = self.shared.replay.total()?, "learner stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM, or once the orchestrator that started this process is gone.
pub async fn shutdown_signal() {
    casrap_common::signals::shutdown_or_orphaned().await
}

/// The registry `/metrics` renders: the learner's figures, read from `shared` at each scrape.
pub fn metrics_registry(shared: Arc<Shared>) -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(MetricsCollector::new(shared)));
    registry
}

/// The learner's metrics, read from its state at each scrape.
struct MetricsCollector {
    shared: Arc<Shared>,
    /// The previous scrape's time and stored count (the ingest rate between two scrapes).
    last: std::sync::Mutex<(std::time::Instant, u64)>,
}

impl MetricsCollector {
    fn new(shared: Arc<Shared>) -> Self {
        let stored = shared.replay.total().unwrap_or(0);
        Self { shared, last: std::sync::Mutex::new((std::time::Instant::now(), stored)) }
    }
}

impl std::fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsCollector").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for MetricsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        let total = self.shared.replay.total().unwrap_or(0);
        let rate = {
            let mut l = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let dt = l.0.elapsed().as_secs_f64();
            let rate = if dt > 0.0 { total.saturating_sub(l.1) as f64 / dt } else { 0.0 };
            *l = (std::time::Instant::now(), total);
            rate
        };
        self.shared.encode_metrics(rate, &mut encoder)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use casrap_common::rl::Transition;
    use std::time::Duration;

    fn config() -> RunConfig {
        let mut cfg = RunConfig::from_file(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/local.yaml"
        )))
        .unwrap();
        cfg.trainer.min_replay = 5;
        cfg.trainer.batch = 4;
        cfg.trainer.spi_tolerance = 64.0;
        cfg
    }

    fn transition(cfg: &RunConfig, seq: u64) -> Transition {
        casrap_proto::fixtures::stored(seq, cfg.state_dim())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trainer_that_fails_stops_the_learner_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config();
        cfg.trainer.checkpoint_every = 1;
        let learner = start(&cfg, "127.0.0.1:0", dir.path(), std::future::pending()).await.unwrap();
        // A checkpoint that cannot be written (a file where its folder should be; the trainer
        // reads no record from disk once it runs), then enough transitions for it to update.
        let checkpoints = dir.path().join("checkpoints");
        let _ = std::fs::remove_dir_all(&checkpoints);
        std::fs::write(&checkpoints, b"not a folder").unwrap();
        let replay = learner.shared.replay.clone();
        replay.insert("a", &(1..=5).map(|s| transition(&cfg, s)).collect::<Vec<_>>()).unwrap();
        let shared = learner.shared.clone();
        let ended = tokio::time::timeout(Duration::from_secs(30), learner.wait())
            .await
            .expect("the learner kept running without its trainer");
        let err = ended.expect_err("the learner stopped without an error").to_string();
        assert!(err.contains("checkpoints"), "{err}");
        assert!(shared.trainer_error().is_some_and(|e| e.contains("checkpoints")));
        let text = casrap_common::metrics::render(&metrics_registry(shared.clone()));
        assert!(text.contains("\ncasrap_learner_trainer_up 0"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn policy_versions_continue_after_every_checkpoint_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let learner = start(&cfg, "127.0.0.1:0", dir.path(), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let shared = learner.shared.clone();
        let replay = shared.replay.clone();
        replay.insert("a", &(1..=50).map(|s| transition(&cfg, s)).collect::<Vec<_>>()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while shared.policy_version() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stop_tx = stop;
        let _ = stop_tx.send(());
        learner.wait().await.unwrap();
        let before = shared.policy_version();
        assert!(before >= 3, "version {before}");
        drop((shared, replay));
        // Every checkpoint corrupt: the trainer starts fresh, yet its versions go on.
        for c in casrap_store::checkpoint::list(&dir.path().join("checkpoints")) {
            std::fs::write(c.join("state.json"), "{").unwrap();
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let learner = start(&cfg, "127.0.0.1:0", dir.path(), async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while learner.shared.policy_version() == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = learner.shared.policy_version();
        let _ = stop.send(());
        learner.wait().await.unwrap();
        assert!(after > before, "first version after the restart {after}, before it {before}");
    }
}
