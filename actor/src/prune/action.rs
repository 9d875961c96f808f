//! The pruning actions: defined in `casrap-common` (config entries and labels are shared with the
//! learner and the orchestrator), re-exported here.

pub use casrap_common::action::*;
