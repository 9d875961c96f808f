//! The CASRAP learner: replay store (sled); the gRPC service, Double-DQN trainer, policy
//! broadcast and checkpoints follow.

pub mod bench;
pub mod error;
pub mod priority;
pub mod replay;
pub mod server;
pub mod service;
pub mod trainer;

pub use error::{Error, Result};
