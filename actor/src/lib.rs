//! The CASRAP actor: pruning (`prune`), measurement and the episode loop (`episodes`) with its
//! learner client, test mode and evaluation, on the engine crate (`casrap-engine`, in
//! `actor/engine/`), which every use names.
#![forbid(unsafe_code)]

pub mod client;
pub mod episodes;
pub mod eval;
pub mod prune;
pub mod scoring;
pub mod test_shard;
