//! Text to token ids: HF `tokenizer.json` through the tokenizers crate, or a byte-level fallback
//! for synthetic models that ship none; with the model's chat template where it has one.

use std::path::{Path, PathBuf};

use crate::chat::ChatTemplate;
use crate::error::{Error, Result};

use casrap_common::config::PromptFormat;

/// A tokenizer for one model.
pub enum TextTokenizer {
    Hf {
        inner: Box<tokenizers::Tokenizer>,
        path: PathBuf,
        /// The folder's chat template, if it ships one; a template that fails to load is kept as
        /// its error, so raw prompts still work and chat prompts say why they cannot.
        chat: std::result::Result<Option<Box<ChatTemplate>>, (PathBuf, String)>,
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
        Ok(Self::Hf { inner: Box::new(inner), path: path.into(), chat: Ok(None) })
    }

    /// Loads a model folder's `tokenizer.json` and its chat template, if it ships one
    /// (`chat_template.jinja` or `tokenizer_config.json`'s `chat_template`).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut t = Self::from_file(&dir.join("tokenizer.json"))?;
        if let Self::Hf { chat, .. } = &mut t {
            *chat = ChatTemplate::from_dir(dir).map(|t| t.map(Box::new)).map_err(|e| match e {
                Error::ChatTemplate { path, reason } => (path, reason),
                other => (dir.to_path_buf(), other.to_string()),
            });
        }
        Ok(t)
    }

    /// The model's chat template: `Ok(None)` when it ships none, an error naming the file when
    /// the one it ships cannot be read or compiled.
    pub fn chat_template(&self) -> Result<Option<&ChatTemplate>> {
        match self {
            Self::Hf { chat: Ok(t), .. } => Ok(t.as_deref()),
            Self::Hf { chat: Err((path, reason)), .. } => {
                Err(Error::ChatTemplate { path: path.clone(), reason: reason.clone() })
            }
            Self::Bytes => Ok(None),
        }
    }

    /// Token ids of `text`, with the tokenizer's special tokens (BOS for LLaMA) added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Token ids of a text that already holds its special tokens (a rendered chat template):
    /// the tokenizer adds none.
    pub fn encode_rendered(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, false)
    }

    fn encode_with(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        match self {
            Self::Hf { inner, path, .. } => inner
                .encode(text, special)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer { path: path.clone(), reason: e.to_string() }),
            Self::Bytes => Ok(text.bytes().map(u32::from).collect()),
        }
    }

    /// The text a prompt becomes in `format` (the raw text, or the chat template's rendering).
    /// Asking for `Chat` of a model without a template is an error that says so.
    pub fn format(&self, text: &str, format: PromptFormat) -> Result<String> {
        match format {
            PromptFormat::Raw => Ok(text.to_string()),
            PromptFormat::Chat => match self.chat_template()? {
                Some(t) => t.prompt(text),
                None => Err(Error::arg(
                    "chat_template",
                    format!(
                        "{} has no chat template (chat_template.jinja or tokenizer_config.json's \
                         chat_template); use raw prompts",
                        self.describe()
                    ),
                )),
            },
        }
    }

    /// A prompt's token ids in `format`, cut to its first `max` tokens: the one way requests are
    /// encoded for episodes, test mode and the measuring commands.
    pub fn prompt(&self, text: &str, format: PromptFormat, max: usize) -> Result<Vec<u32>> {
        let mut ids = self.encode_formatted(&self.format(text, format)?, format)?;
        ids.truncate(max);
        Ok(ids)
    }

    /// Token ids of what [`Self::format`] returned: a raw text gets the tokenizer's special
    /// tokens, a rendered template already holds its own.
    pub fn encode_formatted(&self, formatted: &str, format: PromptFormat) -> Result<Vec<u32>> {
        match format {
            PromptFormat::Raw => self.encode(formatted),
            PromptFormat::Chat => self.encode_rendered(formatted),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Hf { path, .. } => path.parent().unwrap_or(path).display().to_string(),
            Self::Bytes => "a model without a tokenizer.json (byte-level)".into(),
        }
    }

    /// Text of `ids`, special tokens skipped. Byte-level ids above 255 print as `<id>`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Self::Hf { inner, path, .. } => inner
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
