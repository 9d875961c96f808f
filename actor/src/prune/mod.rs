//! Structured pruning at run time (the actions are `casrap_common::action`'s): the importances that rank what to
//! remove ([`importance`]), pruned profiles built once and switched by pointer ([`profiles`]),
//! activation sparsity's calibrated thresholds ([`sparsity`]), and the measurement harness that
//! compares dense and adapted runs honestly ([`harness`]).

pub mod allocation;
pub mod cache_file;
pub mod calibrate;
pub mod harness;
pub mod importance;
pub mod kernel_bench;
pub mod profiles;
pub mod self_spec;
pub mod setup;
pub mod sparsity;

pub use importance::Importance;
pub use profiles::ProfileCache;
