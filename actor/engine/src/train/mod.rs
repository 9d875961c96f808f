//! Training the embedded default model: a byte-level BPE tokenizer ([`bpe`]) and a small LLaMA
//! ([`lm`]) on a folder of plain-text documents ([`corpus`]), written as an HF-format folder
//! ([`export`]); [`pipeline`] runs the whole recipe.

pub mod bpe;
pub mod corpus;
pub mod export;
pub mod lm;
pub mod pipeline;
