//! Conversions between wire messages and the domain types they carry, so each mapping is written
//! once: the actor sends its [`Hardware`] as a `HardwareProfile` and the learner labels connected
//! actors with the same [`Hardware::label`] the actors' records use; a wire transition becomes the
//! [`Transition`] the replay store keeps (after the learner has validated it).

use casrap_common::rl::Transition;
use casrap_common::telemetry::Hardware;

use crate::v1;

impl From<&Hardware> for v1::HardwareProfile {
    fn from(h: &Hardware) -> Self {
        Self {
            device_kind: h.device_kind.clone(),
            device_name: h.device_name.clone(),
            memory_bytes: h.memory_bytes,
            cpu_model: h.cpu_model.clone(),
            cpu_cores: h.cpu_cores,
        }
    }
}

impl From<&v1::HardwareProfile> for Hardware {
    fn from(h: &v1::HardwareProfile) -> Self {
        Self {
            device_kind: h.device_kind.clone(),
            device_name: h.device_name.clone(),
            memory_bytes: h.memory_bytes,
            cpu_model: h.cpu_model.clone(),
            cpu_cores: h.cpu_cores,
        }
    }
}

impl From<v1::Transition> for Transition {
    fn from(t: v1::Transition) -> Self {
        Self {
            seq: t.seq,
            state: t.state,
            action: t.action,
            reward: t.reward,
            next_state: t.next_state,
            done: t.done,
            metrics: t.metrics.map(|m| m.json),
        }
    }
}

impl From<Transition> for v1::Transition {
    fn from(t: Transition) -> Self {
        Self {
            seq: t.seq,
            state: t.state,
            action: t.action,
            reward: t.reward,
            next_state: t.next_state,
            done: t.done,
            metrics: t.metrics.map(|json| v1::EpisodeMetrics { json }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardware_survives_the_wire_and_keeps_its_label() {
        let h = Hardware {
            device_kind: "cuda".into(),
            device_name: "NVIDIA H200".into(),
            memory_bytes: 141 << 30,
            cpu_model: "AMD EPYC".into(),
            cpu_cores: 16,
        };
        let wire = v1::HardwareProfile::from(&h);
        assert_eq!(wire.memory_bytes, h.memory_bytes);
        let back = Hardware::from(&wire);
        assert_eq!(back, h);
        assert_eq!(back.label(), "cuda NVIDIA H200");
    }

    #[test]
    fn a_transition_survives_the_wire_with_its_record() {
        let t = Transition {
            seq: 7,
            state: vec![0.25; 3],
            action: 2,
            reward: 0.5,
            next_state: vec![0.75; 3],
            done: true,
            metrics: Some("{\"seq\":7}".into()),
        };
        let wire = v1::Transition::from(t.clone());
        assert_eq!(wire.metrics.as_ref().map(|m| m.json.as_str()), Some("{\"seq\":7}"));
        assert_eq!(Transition::from(wire), t);
        let bare = Transition { metrics: None, ..t };
        assert_eq!(Transition::from(v1::Transition::from(bare.clone())), bare);
    }
}
