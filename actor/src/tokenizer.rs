//! Text to token ids: HF `tokenizer.json` through the tokenizers crate, or a byte-level fallback
//! for synthetic models that ship none.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A tokenizer for one model.
pub enum TextTokenizer {
    Hf {
        inner: Box<tokenizers::Tokenizer>,
        path: PathBuf,
    },
    /// Each UTF-8 byte is its own token id (synthetic models: vocabularies of at least 256).
    Bytes,
}

impl TextTokenizer {
    /// Loads an HF `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "tokenizer.json not found"),
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer { path: path.into(), reason: e.to_string() })?;
        Ok(Self::Hf { inner: Box::new(inner), path: path.into() })
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS for LLaMA) added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Self::Hf { inner, path } => inner
                .encode(text, true)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer { path: path.clone(), reason: e.to_string() }),
            Self::Bytes => Ok(text.bytes().map(u32::from).collect()),
        }
    }

    /// Text of `ids`, special tokens skipped. Byte-level ids above 255 print as `<id>`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Self::Hf { inner, path } => inner
                .decode(ids, true)
                .map_err(|e| Error::Tokenizer { path: path.clone(), reason: e.to_string() }),
            Self::Bytes => {
                let mut out = String::new();
                let mut bytes = Vec::new();
                for &id in ids {
                    match u8::try_from(id) {
                        Ok(b) => bytes.push(b),
                        Err(_) => {
                            out.push_str(&String::from_utf8_lossy(&bytes));
                            bytes.clear();
                            out.push_str(&format!("<{id}>"));
                        }
                    }
                }
                out.push_str(&String::from_utf8_lossy(&bytes));
                Ok(out)
            }
        }
    }
}
