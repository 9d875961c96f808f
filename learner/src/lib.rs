//! The CASRAP learner: the gRPC service, Double-DQN trainer, policy broadcast and checkpoints, on
//! the replay store of `casrap-store`.

pub mod bench;
pub mod error;
pub mod identity;
pub mod net;
pub mod priority;
pub mod ring;
pub mod server;
pub mod service;
pub mod trainer;

pub use error::{Error, Result};
