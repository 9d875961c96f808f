//! The `casrap.v1` wire protocol: messages and the `Learner` service's client and server,
//! generated from `casrap.proto` by `build.rs`.

/// The protobuf package every CASRAP service lives in.
pub const PACKAGE: &str = "casrap.v1";

/// Most bytes of policy weights one `PolicyUpdate` carries.
pub const MAX_WEIGHT_CHUNK: usize = 1 << 20;

#[allow(clippy::all, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("casrap.v1");
}

pub use v1::learner_client::LearnerClient;
pub use v1::learner_server::{Learner, LearnerServer};
