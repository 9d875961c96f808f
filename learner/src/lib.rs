//! The CASRAP learner.
//!
//! Thin for now: the gRPC service, sled replay store and Double-DQN trainer land with the learner
//! issue. It already depends on the shared crates so that the workspace's shape is fixed.

pub use casrap_proto::PACKAGE as PROTO_PACKAGE;
