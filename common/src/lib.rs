//! Domain types shared by the CASRAP actor and learner.

pub mod action;
pub mod budget;
pub mod config;
pub mod error;
pub mod exit;
pub mod json;
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

use std::path::{Path, PathBuf};

/// A path relative to the repository: as given when it exists from the working directory,
/// otherwise under the checkout this binary was built from (so the committed model and data are
/// found from any directory).
pub fn repo_path(rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() || p.exists() {
        return p.into();
    }
    // This crate is common/: the checkout is one folder up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let under_root = root.join(rel);
    if under_root.exists() {
        under_root
    } else {
        p.into()
    }
}
