//! The learner's error type: the store's errors, and the server's and trainer's own.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The replay store or a checkpoint file (`casrap-store`).
    #[error(transparent)]
    Store(#[from] casrap_store::Error),
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
}

impl Error {
    /// Whether waiting may cure it (see [`casrap_store::Error::is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_transient())
    }

    /// A checkpoint that cannot be written or read.
    pub fn checkpoint(path: impl Into<std::path::PathBuf>, reason: impl Into<String>) -> Self {
        Error::Store(casrap_store::Error::Checkpoint { path: path.into(), reason: reason.into() })
    }
}
