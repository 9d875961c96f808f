//! Domain types shared by the CASRAP actor and learner.
//!
//! For now: tracing setup. Config, state/action/reward, telemetry and the Q-network arrive with
//! their issues.

pub mod logging;

pub use logging::init_tracing;
