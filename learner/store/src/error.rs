//! The store's error type: the replay store, checkpoint files and what they hold.

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
    /// The store is reopening after a failed write (a full disk, say): try again shortly.
    #[error("replay store {path} is unavailable: {reason}")]
    Unavailable { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("replay store {path}: corrupt record {key}: {reason}")]
    Corrupt { path: PathBuf, key: String, reason: String },
    /// The witness of acknowledged marks cannot be read or trusted.
    #[error("replay store witness {path}: {reason}")]
    Witness { path: PathBuf, reason: String },
    /// The store holds less than its witness says was acknowledged.
    #[error(
        "replay store {path}: acknowledged transitions are missing: actor `{actor}` holds seqs up to {have} but {witness} records seqs up to {acknowledged} as acknowledged (seqs {}..={acknowledged} lost; {actors} actor(s) and {transitions} transition(s) short in all). The database was damaged or replaced: restore it from a copy, or start the learner once with --accept-lost-data to serve what is left",
        have + 1
    )]
    Lost {
        path: PathBuf,
        witness: PathBuf,
        actor: String,
        have: u64,
        acknowledged: u64,
        actors: usize,
        transitions: u64,
    },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("invalid transition from `{actor}` (seq {seq}): {reason}")]
    InvalidTransition { actor: String, seq: u64, reason: String },
}

impl Error {
    /// Whether waiting may cure it: the store is reopening, or sled met an I/O error (a full
    /// disk) rather than corrupt data.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } => true,
            Error::Store { source, .. } => matches!(source, sled::Error::Io(_)),
            _ => false,
        }
    }
}
