//! The CASRAP actor: LLaMA engine (tch), model resolution, tokenizer.

pub mod chat;
pub mod client;
pub mod engine;
pub mod episodes;
pub mod error;
pub mod evaluate;
pub mod prune;
pub mod resolve;
pub mod testmode;
pub mod tokenizer;
pub mod train;

pub use error::{Error, Result};
