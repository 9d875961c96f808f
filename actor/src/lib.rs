//! The CASRAP actor: pruning (`prune`), measurement and the episode loop (`episodes`) with its
//! learner client, test mode and evaluation, on the engine crate (`casrap-engine`, in
//! `actor/engine/`), whose modules are re-exported here under the paths they always had.
#![forbid(unsafe_code)]

pub use casrap_engine as engine;
pub use casrap_engine::{chat, error, resolve, tokenizer, train};

pub mod client;
pub mod episodes;
pub mod eval;
pub mod evaluate;
pub mod prune;
pub mod testmode;

pub use error::{Error, Result};
