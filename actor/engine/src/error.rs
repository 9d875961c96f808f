//! The engine's and the actor's error type (the actor re-exports it): one variant per phase or
//! failure kind, each naming the file, field or tensor it is about.

use std::path::PathBuf;

/// Result alias for the engine and actor crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the actor because of input from outside (files, flags, hubs).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {reason}")]
    Config { path: PathBuf, field: &'static str, reason: String },
    #[error("{path}: unsupported model: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: not a valid safetensors file ({reason}); truncated or corrupt?")]
    Safetensors { path: PathBuf, reason: String },
    #[error("tensor `{name}` not found in {searched}")]
    MissingTensor { name: String, searched: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("{path}: tensor `{name}` has unsupported dtype {dtype}")]
    TensorDtype { path: PathBuf, name: String, dtype: String },
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path}: chat template: {reason}")]
    ChatTemplate { path: PathBuf, reason: String },
    #[error("model `{spec}` not found; looked in:\n  {}", looked.join("\n  "))]
    ModelNotFound { spec: String, looked: Vec<String> },
    #[error("invalid argument `{name}`: {reason}")]
    Argument { name: &'static str, reason: String },
    /// A malformed line of an input file (1-based).
    #[error("{path}:{line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error(transparent)]
    Common(#[from] casrap_common::Error),
    /// The learner could not be reached, refused this actor, or rejected what it sent.
    #[error("learner {url}: {reason}")]
    Learner { url: String, reason: String },
    #[error("torch: {context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn arg(name: &'static str, reason: impl Into<String>) -> Self {
        Error::Argument { name, reason: reason.into() }
    }
}

/// Adds context to a fallible tch call.
pub trait TorchContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> TorchContext<T> for std::result::Result<T, tch::TchError> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Torch { context: context(), source })
    }
}
