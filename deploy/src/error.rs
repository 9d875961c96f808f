//! The orchestrator's errors: each names the process, file or field it is about.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] casrap_common::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A binary the run needs is missing.
    #[error("cannot find `{name}`; looked in {looked}. Build the workspace (`cargo build --release`) or set {env}")]
    Binary { name: String, looked: String, env: String },
    /// A process of the run failed to start or failed while running.
    #[error("{what}: {reason}")]
    Process { what: String, reason: String },
    /// The run's records are incomplete or malformed.
    #[error("{path}: {reason}")]
    Records { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] casrap_store::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub(crate) fn process(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Process { what: what.into(), reason: reason.into() }
    }
}
