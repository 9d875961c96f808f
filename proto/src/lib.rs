//! The `casrap.v1` wire protocol: messages and the `Learner` service's client and server,
//! generated from `casrap.proto` by `build.rs`, their conversions to the domain types, and how a
//! client connects ([`connect::Connection`]).

pub mod connect;
mod convert;
#[cfg(feature = "test-util")]
pub mod fixtures;

/// The protobuf package every CASRAP service lives in.
pub const PACKAGE: &str = "casrap.v1";

/// Most bytes of policy weights one `PolicyUpdate` carries: what a watcher that does not read
/// holds at most in its encoder, beside slices of the one published copy.
pub const MAX_WEIGHT_CHUNK: usize = 256 << 10;

/// Largest message either side decodes.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Largest episode record (metrics JSON) one transition may carry.
pub const MAX_EPISODE_BYTES: usize = 1 << 20;

/// Largest batch an actor builds (well under [`MAX_MESSAGE_BYTES`]).
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Largest seq accepted (2^53: exact in every JSON reader).
pub const MAX_SEQ: u64 = 1 << 53;

#[allow(clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("casrap.v1");
}

pub use v1::learner_client::LearnerClient;
pub use v1::learner_server::{Learner, LearnerServer};
