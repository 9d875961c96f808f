//! A byte-level BPE tokenizer trained with the tokenizers crate: every byte is in the base
//! alphabet (no unknown tokens, exact round trip), `<s>` is added in front of every encoding as
//! LLaMA does, and `</s>` ends documents in training.

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

pub const BOS: &str = "<s>";
pub const EOS: &str = "</s>";
pub const PAD: &str = "<pad>";
/// Ids of the special tokens: they are added first, so they come first.
pub const BOS_ID: u32 = 0;
pub const EOS_ID: u32 = 1;
pub const PAD_ID: u32 = 2;

fn err(reason: impl std::fmt::Display) -> Error {
    Error::Tokenizer { path: "<training>".into(), reason: reason.to_string() }
}

/// Trains a `vocab_size` byte-level BPE on `documents`. Deterministic for the same documents.
pub fn train(documents: &[String], vocab_size: usize) -> Result<Tokenizer> {
    let specials = [BOS, EOS, PAD].map(|s| AddedToken::from(s, true)).to_vec();
    if vocab_size < 256 + specials.len() {
        return Err(Error::arg(
            "vocab_size",
            format!("{vocab_size} is below 256 bytes + {} special tokens", specials.len()),
        ));
    }
    let byte_level = ByteLevel::new(false, true, true);
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build()
        .into();
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(byte_level));
    tokenizer.with_decoder(Some(byte_level));
    tokenizer.train(&mut trainer, documents.iter()).map_err(err)?;
    for (token, id) in [(BOS, BOS_ID), (EOS, EOS_ID), (PAD, PAD_ID)] {
        if tokenizer.token_to_id(token) != Some(id) {
            return Err(err(format!("special token {token} did not get id {id}")));
        }
    }
    let post = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .map_err(err)?
        .special_tokens(vec![(BOS, BOS_ID)])
        .build()
        .map_err(err)?;
    tokenizer.with_post_processor(Some(post));
    Ok(tokenizer)
}

/// Token ids of one document for training: `<s>`, its tokens, `</s>`.
pub fn encode_document(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tokenizer.encode(text, true).map_err(err)?;
    let mut ids = enc.get_ids().to_vec();
    ids.push(EOS_ID);
    Ok(ids)
}
