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

/// Longest actor id accepted.
pub const MAX_ACTOR_ID: usize = 128;

/// Actor ids are 1 to [`MAX_ACTOR_ID`] printable ASCII characters without spaces, so an id can
/// neither forge a log line (newline), hide in one (NUL, control characters) nor reorder one
/// (bidirectional overrides). The reason names the first offending character.
pub fn check_actor_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ACTOR_ID {
        return Err(format!("actor id must be 1 to {MAX_ACTOR_ID} bytes, got {}", id.len()));
    }
    match id.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        Some((i, c)) => Err(format!("actor id has {c:?} (U+{:04X}) at byte {i}; only printable ASCII without spaces is allowed", c as u32)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_actor_id;

    #[test]
    fn actor_ids_refuse_what_forges_or_hides_text() {
        assert!(check_actor_id("host-1-cuda0").is_ok());
        assert!(check_actor_id("a.b_c:d@e/f+g").is_ok());
        for bad in ["", "a\nb", "a\0b", "a b", "a\u{202e}b", "\u{7f}", "é"] {
            assert!(check_actor_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_actor_id(&"x".repeat(128)).is_ok());
        assert!(check_actor_id(&"x".repeat(129)).is_err());
    }
}
