//! The CASRAP actor: pruning (`prune`), measurement and the episode loop (`episodes`) with its
//! learner client, test mode and evaluation, on the engine crate (`casrap-engine`, in
//! `actor/engine/`), which every use names. Two binaries share it: `casrap-actor` (what a
//! deployment runs) and `casrap-lab` (the research tools); `cli` holds the flags both take.
#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod episodes;
pub mod eval;
pub mod prune;
pub mod scoring;
pub mod test_shard;
