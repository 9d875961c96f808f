//! Domain types shared by the CASRAP actor and learner.

pub mod action;
pub mod budget;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod prompts;
pub mod qnet;
pub mod record;
pub mod rl;
pub mod signals;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod text;

pub use error::{Error, Result};
pub use logging::init_tracing;
