//! Reinforcement-learning domain types shared by actors and the learner.

/// One transition as an actor sends it and the replay store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Per actor, from 1, increasing by one.
    pub seq: u64,
    pub state: Vec<f32>,
    pub action: u32,
    pub reward: f32,
    pub next_state: Vec<f32>,
    pub done: bool,
    /// The episode's record for reports (a JSON object), if this transition ends one.
    pub metrics: Option<String>,
}
