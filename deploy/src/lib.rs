//! `casrap`: runs described by `deploy/*.yaml`. A run starts one learner and N actors as separate
//! processes, shows progress, stops everything cleanly and leaves its outputs in `runs/train-N/`.

pub mod error;
pub mod finish;
pub mod k8s;
pub mod procs;
pub mod report;
pub mod run;
pub mod run_records;
pub mod slurm;
pub mod sweep;
pub mod testrun;

pub use error::{Error, Result};
