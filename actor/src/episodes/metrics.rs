//! What an actor exports at `/metrics`: its episodes counted as they are sent (typed metrics with
//! the hardware profile as a label), and the outbox's state read at each scrape.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use casrap_common::metrics::{label, render, scraped_counters, scraped_gauges};
use casrap_common::record::EpisodeRecord;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{linear_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::client::Outbox;

/// The label every actor series carries: the hardware profile it measures on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Hw {
    hardware: String,
}

/// The labels of the per-action count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionHw {
    action: String,
    hardware: String,
}

/// Rewards are clipped to [-1, 1]: buckets every 0.25 from -0.75 (with +Inf above 1).
fn reward_histogram() -> Histogram {
    Histogram::new(linear_buckets(-0.75, 0.25, 8))
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What an actor exports at `/metrics` (the series the Grafana dashboard queries).
pub struct ActorMetrics {
    registry: Registry,
    hw: Hw,
    episodes: Family<Hw, Counter>,
    actions: Family<ActionHw, Counter>,
    reward: Family<Hw, Histogram, fn() -> Histogram>,
    dense_tokens_per_s: Family<Hw, FloatGauge>,
    pruned_tokens_per_s: Family<Hw, FloatGauge>,
    policy_version: Family<Hw, Gauge>,
}

impl ActorMetrics {
    /// The actor's metrics on `hardware` (its label), with `outbox`'s state read at each scrape.
    pub fn new(hardware: &str, outbox: Arc<Outbox>) -> Self {
        let hw = Hw { hardware: label(hardware) };
        let mut registry = Registry::default();
        let episodes = Family::<Hw, Counter>::default();
        let actions = Family::<ActionHw, Counter>::default();
        let reward = Family::<Hw, Histogram, fn() -> Histogram>::new_with_constructor(
            reward_histogram as fn() -> Histogram,
        );
        let dense_tokens_per_s = Family::<Hw, FloatGauge>::default();
        let pruned_tokens_per_s = Family::<Hw, FloatGauge>::default();
        let policy_version = Family::<Hw, Gauge>::default();
        // Counters get their `_total` and histograms their `_sum` / `_count` / `_bucket` series
        // from the encoder: `casrap_actor_episodes_total`, `casrap_actor_reward_sum`, ...
        registry.register(
            "casrap_actor_episodes",
            "Episodes sent to the learner.",
            episodes.clone(),
        );
        registry.register("casrap_actor_actions", "Episodes per action chosen.", actions.clone());
        registry.register(
            "casrap_actor_reward",
            "Rewards of the episodes sent (mean = reward_sum / episodes_total).",
            reward.clone(),
        );
        registry.register(
            "casrap_actor_dense_tokens_per_second",
            "Dense decode tokens/s in the last episode.",
            dense_tokens_per_s.clone(),
        );
        registry.register(
            "casrap_actor_pruned_tokens_per_second",
            "Adapted decode tokens/s in the last episode.",
            pruned_tokens_per_s.clone(),
        );
        registry.register(
            "casrap_actor_policy_version",
            "Version of the policy acting.",
            policy_version.clone(),
        );
        registry.register_collector(Box::new(OutboxState { outbox, hw: hw.clone() }));
        // Every series exists from the start (zero until the first episode), as before one.
        let _ = episodes.get_or_create(&hw);
        let _ = policy_version.get_or_create(&hw);
        Self {
            registry,
            hw,
            episodes,
            actions,
            reward,
            dense_tokens_per_s,
            pruned_tokens_per_s,
            policy_version,
        }
    }

    /// Counts one episode sent.
    pub(super) fn count(&self, action: &str, reward: f64, policy_version: u64, r: &EpisodeRecord) {
        let hw = &self.hw;
        self.episodes.get_or_create(hw).inc();
        let a = ActionHw { action: label(action), hardware: hw.hardware.clone() };
        self.actions.get_or_create(&a).inc();
        self.reward.get_or_create(hw).observe(reward);
        self.policy_version
            .get_or_create(hw)
            .set(i64::try_from(policy_version).unwrap_or(i64::MAX));
        self.dense_tokens_per_s.get_or_create(hw).set(r.dense.decode_tokens_per_s);
        self.pruned_tokens_per_s.get_or_create(hw).set(r.pruned.decode_tokens_per_s);
    }

    /// The exposition (OpenMetrics text).
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The outbox's state, read at each scrape.
struct OutboxState {
    outbox: Arc<Outbox>,
    hw: Hw,
}

impl std::fmt::Debug for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxState").field("hardware", &self.hw.hardware).finish()
    }
}

impl Collector for OutboxState {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.outbox.stats();
        scraped_gauges(
            &mut encoder,
            "casrap_actor_unacknowledged",
            "Transitions waiting for the learner's acknowledgement.",
            &[(self.hw.clone(), s.pending as f64)],
        )?;
        scraped_counters(
            &mut encoder,
            "casrap_actor_reconnects",
            "Registrations after the first.",
            &[(self.hw.clone(), s.reconnects)],
        )
    }
}
