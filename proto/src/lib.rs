//! The `casrap.v1` wire protocol.
//!
//! Thin for now: the protocol (`casrap.proto`, compiled by `build.rs`) lands with the learner issue.
//! This crate holds only the package name both sides agree on.

/// The protobuf package every CASRAP service lives in.
pub const PACKAGE: &str = "casrap.v1";
