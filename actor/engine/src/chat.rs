//! Chat templates: an instruct model is trained on conversations rendered by the Jinja template
//! its folder ships (`chat_template.jinja`, or `chat_template` in `tokenizer_config.json`), so a
//! prompt reaches it the way `transformers`' `apply_chat_template` would write it. minijinja renders
//! the template in the Jinja environment transformers uses (trim_blocks and lstrip_blocks on,
//! loop controls, `raise_exception`, the tokenizer's special tokens as variables, and Python's str
//! methods through minijinja-contrib's pycompat).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind, Value};
use serde::Serialize;

use crate::error::{Error, Result};

/// The name the template is compiled under (error messages name the file instead).
const NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: "user".into(), content: content.into() }
    }
}

/// A compiled chat template and the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Where the template came from, for error messages.
    path: PathBuf,
    /// `bos_token`, `eos_token`, ... from `tokenizer_config.json`.
    specials: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("path", &self.path).finish_non_exhaustive()
    }
}

fn template_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ChatTemplate { path: path.into(), reason: reason.to_string() }
}

/// A minijinja error as a message: its kind and detail, and the template line it points at.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

impl ChatTemplate {
    /// The template a model folder ships: `chat_template.jinja` when present, else
    /// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates, of which
    /// the one named `default` is used). `Ok(None)` when the folder ships neither.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_path.is_file() {
            let text =
                std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
            serde_json::from_str(&text)
                .map_err(|source| Error::Json { path: config_path.clone(), source })?
        } else {
            serde_json::Value::Null
        };
        let specials = special_tokens(&config);
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let source = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
            return Self::new(source, jinja, specials).map(Some);
        }
        let source = match config.get("chat_template") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(named)) => {
                let default = named
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"));
                match default.and_then(|t| t.get("template")).and_then(|t| t.as_str()) {
                    Some(s) => s.to_string(),
                    None => {
                        return Err(template_error(
                            &config_path,
                            "field `chat_template`: a list of named templates without one named `default`",
                        ))
                    }
                }
            }
            Some(other) => {
                return Err(template_error(
                    &config_path,
                    format!("field `chat_template`: expected a string or a list, found {other}"),
                ))
            }
        };
        Self::new(source, config_path, specials).map(Some)
    }

    /// Compiles `source`; `path` is where it came from (errors name it and the template line).
    pub fn new(source: String, path: PathBuf, specials: BTreeMap<String, String>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(NAME, source).map_err(|e| template_error(&path, describe(&e)))?;
        Ok(Self { env, path, specials })
    }

    /// Where the template came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The conversation as the template writes it; `add_generation_prompt` appends the header of
    /// the assistant's turn, as `apply_chat_template` does.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template =
            self.env.get_template(NAME).map_err(|e| template_error(&self.path, describe(&e)))?;
        let mut ctx: BTreeMap<String, Value> =
            self.specials.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        ctx.insert("messages".into(), Value::from_serialize(messages));
        ctx.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        template.render(ctx).map_err(|e| template_error(&self.path, describe(&e)))
    }

    /// One user turn with the generation prompt: how a request's text reaches an instruct model.
    pub fn prompt(&self, text: &str) -> Result<String> {
        self.render(&[Message::user(text)], true)
    }
}

/// The special tokens `tokenizer_config.json` names (`bos_token`, `eos_token`, `unk_token`,
/// `pad_token`), each a string or an added-token object with a `content`.
fn special_tokens(config: &serde_json::Value) -> BTreeMap<String, String> {
    ["bos_token", "eos_token", "unk_token", "pad_token"]
        .into_iter()
        .filter_map(|key| {
            let v = config.get(key)?;
            let s = v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            Some((key.to_string(), s.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("writes");
    }

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn renders_the_tokenizer_configs_template_with_its_special_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = serde_json::json!({
            "bos_token": {"content": "<s>", "lstrip": false},
            "eos_token": "</s>",
            "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content.strip() }}{{ eos_token }}{% endfor %}",
        });
        write(dir.path(), "tokenizer_config.json", &config.to_string());
        let t = ChatTemplate::from_dir(dir.path()).expect("loads").expect("has a template");
        let out = t.render(&[Message::user("  hi  ")], false).expect("renders");
        assert_eq!(out, "<s>[user] hi</s>");
    }

    #[test]
    fn a_jinja_file_wins_and_block_whitespace_is_trimmed_as_in_transformers() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "tokenizer_config.json", r#"{"chat_template": "ignored"}"#);
        write(
            dir.path(),
            "chat_template.jinja",
            "{% for m in messages %}\n  {{ m.content }}|\n{% endfor %}",
        );
        let t = ChatTemplate::from_dir(dir.path()).expect("loads").expect("has a template");
        assert_eq!(t.path(), dir.path().join("chat_template.jinja"));
        // trim_blocks drops the newline after a block tag, lstrip_blocks the indent before one.
        assert_eq!(t.prompt("a").expect("renders"), "  a|\n");
        let plain =
            ChatTemplate::new(CHATML.into(), "x".into(), BTreeMap::new()).expect("compiles");
        assert_eq!(
            plain.prompt(" q ").expect("renders"),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn named_templates_use_the_default_one_and_a_folder_without_any_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ChatTemplate::from_dir(dir.path()).expect("no config is fine").is_none());
        write(dir.path(), "tokenizer_config.json", r#"{"eos_token": "</s>"}"#);
        assert!(ChatTemplate::from_dir(dir.path()).expect("loads").is_none());
        write(
            dir.path(),
            "tokenizer_config.json",
            r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages | length }}"}]}"#,
        );
        let t = ChatTemplate::from_dir(dir.path()).expect("loads").expect("has a template");
        assert_eq!(t.prompt("x").expect("renders"), "D1");
        write(
            dir.path(),
            "tokenizer_config.json",
            r#"{"chat_template": [{"name": "tool_use", "template": "T"}]}"#,
        );
        let e = ChatTemplate::from_dir(dir.path()).expect_err("no default template").to_string();
        assert!(e.contains("tokenizer_config.json") && e.contains("`default`"), "{e}");
    }

    #[test]
    fn bad_templates_name_the_file_and_the_cause() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "chat_template.jinja", "line one\n{% for m in messages %}{{ m.content }");
        let e = ChatTemplate::from_dir(dir.path()).expect_err("syntax error").to_string();
        assert!(e.contains("chat_template.jinja") && e.contains("syntax error"), "{e}");
        assert!(e.contains("template line 2"), "{e}");

        std::fs::remove_file(dir.path().join("chat_template.jinja")).expect("removes");
        write(dir.path(), "tokenizer_config.json", "{\"chat_template\": ");
        let e = ChatTemplate::from_dir(dir.path()).expect_err("bad JSON").to_string();
        assert!(e.contains("tokenizer_config.json") && e.contains("invalid JSON"), "{e}");

        let raising = "{% if messages[0].role != 'system' %}{{ raise_exception('a system turn comes first') }}{% endif %}";
        let t = ChatTemplate::new(raising.into(), dir.path().join("t.jinja"), BTreeMap::new())
            .expect("compiles");
        let e = t.prompt("x").expect_err("the template refuses").to_string();
        assert!(e.contains("t.jinja") && e.contains("a system turn comes first"), "{e}");
    }
}
