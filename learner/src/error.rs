//! The learner's error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("replay store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("replay store {path}: corrupt record {key}: {reason}")]
    Corrupt { path: PathBuf, key: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("trainer: {0}")]
    Trainer(String),
    /// The `security:` section: a token or certificate that cannot be used, or an unsafe setup.
    #[error("security: {0}")]
    Security(String),
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("invalid transition from `{actor}` (seq {seq}): {reason}")]
    InvalidTransition { actor: String, seq: u64, reason: String },
}
