//! The actor's side of the wire: the runtime beside the model thread with the transition sender,
//! the policy watcher and the metrics endpoint, and the acceptance of a pushed policy.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use casrap_common::qnet::QNet;
use casrap_common::state;
use casrap_common::telemetry::Hardware;
use tokio::sync::watch;

use super::metrics::ActorMetrics;
use crate::client::{self, Identity, Outbox, PolicyBytes};
use casrap_engine::error::{Error, Result};

/// The policy an actor acts on: a pushed network with its version and exploration rate.
pub(super) struct Policy {
    pub(super) version: u64,
    pub(super) epsilon: f32,
    pub(super) net: QNet,
}

impl Policy {
    /// A pushed policy, when it decodes to a network for this state layout and `actions`
    /// actions; otherwise it is logged and the actor keeps the one it has.
    pub(super) fn accept(p: &PolicyBytes, actions: usize) -> Option<Self> {
        match QNet::decode(&p.weights, None) {
            Ok(net)
                if net.dims().first() == Some(&state::FEATURES.len())
                    && net.actions() == actions =>
            {
                tracing::debug!(version = p.version, epsilon = p.epsilon, "new policy");
                Some(Policy { version: p.version, epsilon: p.epsilon, net })
            }
            Ok(net) => {
                tracing::error!(version = p.version, dims = ?net.dims(), "policy has the wrong shape; keeping the previous one");
                None
            }
            Err(e) => {
                tracing::error!(version = p.version, error = %e, "policy does not decode; keeping the previous one");
                None
            }
        }
    }
}

/// The actor's side of the wire: a runtime of its own beside the model thread, running the
/// transition sender (from the outbox), the policy watcher and the metrics endpoint.
pub(super) struct Wire {
    rt: tokio::runtime::Runtime,
    pub(super) outbox: Arc<Outbox>,
    sender: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    pub(super) policy_rx: watch::Receiver<Option<Arc<PolicyBytes>>>,
    /// What `/metrics` exports (counted by the loop whether or not it is served).
    pub(super) metrics: Arc<ActorMetrics>,
    _metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Wire {
    /// Starts the tasks against `learner` (holding at most `max_unacked` transitions, serving
    /// `/metrics` at `metrics` when given) and waits for the registration; returns the wire and
    /// the sequence number the learner already holds for this actor (where the run resumes).
    pub(super) fn start(
        learner: &str,
        max_unacked: usize,
        metrics_addr: Option<&str>,
        id: Identity,
        hardware: &Hardware,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Self, u64)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("actor-net")
            .build()
            .map_err(|e| Error::arg("runtime", e.to_string()))?;
        let outbox = Outbox::new(max_unacked, learner);
        let (reg_tx, reg_rx) = tokio::sync::oneshot::channel();
        let sender = rt.spawn(client::run_sender(id.clone(), outbox.clone(), reg_tx, stop.clone()));
        let (policy_tx, policy_rx) = watch::channel::<Option<Arc<PolicyBytes>>>(None);
        let watcher = rt.spawn(client::run_watcher(id, policy_tx));
        let metrics = Arc::new(ActorMetrics::new(&hardware.label(), outbox.clone()));
        let metrics_task = match metrics_addr {
            None => None,
            Some(addr) => {
                let l = rt
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .map_err(|e| Error::io(addr, e))?;
                let bound = l.local_addr().map_err(|e| Error::io(addr, e))?;
                let m = metrics.clone();
                let render: casrap_common::metrics::Render = Arc::new(move || m.render());
                println!("metrics on {bound}");
                tracing::info!(addr = %bound, "metrics at /metrics");
                Some(rt.spawn(casrap_common::metrics::serve(l, render)))
            }
        };
        let resumed_after = rt.block_on(reg_rx).map_err(|_| Error::Learner {
            url: learner.to_string(),
            reason: "the connection task ended before registering".into(),
        })??;
        let wire =
            Wire { rt, outbox, sender, watcher, policy_rx, metrics, _metrics_server: metrics_task };
        Ok((wire, resumed_after))
    }

    /// Closes the outbox, waits up to `drain` for the learner to acknowledge what it holds, and
    /// stops the tasks; returns the drain's outcome and the outbox's final counts.
    pub(super) fn close(self, drain: Duration) -> (Result<()>, client::OutboxStats) {
        self.outbox.close();
        let drained = self.outbox.wait_drained(drain);
        let stats = self.outbox.stats();
        self.sender.abort();
        self.watcher.abort();
        self.rt.shutdown_timeout(Duration::from_secs(1));
        (drained, stats)
    }
}
