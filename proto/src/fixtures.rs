//! Test fixtures (feature `test-util`, which the workspace's tests turn on): the registration and
//! transitions tests send, so a test states only what it varies (`..fixtures::transition(seq)`).

use casrap_common::record::EpisodeRecord;
use casrap_common::state;

use crate::v1;

/// `actor`'s registration with `actions`, under the current state layout.
pub fn actor_info(actor: &str, actions: Vec<String>) -> v1::ActorInfo {
    v1::ActorInfo {
        actor_id: actor.into(),
        actions,
        state_layout_version: state::LAYOUT_VERSION,
        state_dim: state::FEATURES.len() as u32,
        ..Default::default()
    }
}

/// A one-episode trajectory at `seq` in the current state layout: every feature 0.5, action 0,
/// reward 0.1, done, without an episode record.
pub fn transition(seq: u64) -> v1::Transition {
    let s = vec![0.5; state::FEATURES.len()];
    v1::Transition {
        seq,
        state: s.clone(),
        action: 0,
        reward: 0.1,
        next_state: s,
        done: true,
        metrics: None,
    }
}

/// [`transition`] carrying `actor`'s complete synthetic episode record for `seq`.
pub fn recorded(actor: &str, seq: u64) -> v1::Transition {
    v1::Transition { metrics: Some(record(actor, seq)), ..transition(seq) }
}

/// `actor`'s complete synthetic episode record for `seq`, as a transition carries it.
pub fn record(actor: &str, seq: u64) -> v1::EpisodeMetrics {
    let json = EpisodeRecord::synthetic(actor, seq, 0)
        .to_line()
        .unwrap_or_else(|e| panic!("a synthetic record does not serialise: {e}"));
    v1::EpisodeMetrics { json }
}

/// `transitions` from `actor` in `session`.
pub fn batch(actor: &str, transitions: Vec<v1::Transition>, session: u64) -> v1::TransitionBatch {
    v1::TransitionBatch { actor_id: actor.into(), transitions, session }
}

/// A transition as the replay store holds it (`casrap_common::rl::Transition`), `dim` features
/// each 0.5, action 0, reward 0.1, done, without an episode record.
pub fn stored(seq: u64, dim: usize) -> casrap_common::rl::Transition {
    casrap_common::rl::Transition {
        seq,
        state: vec![0.5; dim],
        action: 0,
        reward: 0.1,
        next_state: vec![0.5; dim],
        done: true,
        metrics: None,
    }
}
