//! The common crate's error type: each variant names the file (and line) it is about.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed line or row; `line` is 1-based.
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: u64, reason: String },
    /// A value that breaks a rule (an action's intensity, a config field).
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A config file that does not parse or check; `field` is the path of the offending key.
    #[error("{path}: {field}: {reason}")]
    Config { path: PathBuf, field: String, reason: String },
    /// A problem with a whole file (missing column, no data).
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
