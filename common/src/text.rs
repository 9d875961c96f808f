//! Evaluation text: plain UTF-8 files, and WikiText raw files (`wiki.test.raw` and friends).
//!
//! WikiText raw files hold one paragraph per line; an article starts with a line ` = Title = `,
//! sections with ` = = Section = = ` (deeper levels add `= `). Blank lines separate blocks.

use std::path::Path;

use crate::error::{Error, Result};

/// One WikiText article: its title and its non-blank lines as in the file (headings included,
/// WikiText's leading spaces kept), joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Article {
    pub title: String,
    pub text: String,
}

fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        Error::Line { path: path.into(), line, reason: format!("not UTF-8 (byte offset {at})") }
    })
}

/// A plain UTF-8 text file; an empty one is an error.
pub fn read_plain(path: &Path) -> Result<String> {
    let text = read_utf8(path)?;
    if text.trim().is_empty() {
        return Err(Error::File { path: path.into(), reason: "no text".into() });
    }
    Ok(text)
}

/// The title if `line` is a top-level WikiText heading (` = Title = `, not ` = = Section = = `).
fn article_title(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix("= ")?.strip_suffix(" =")?;
    (!inner.starts_with('=') && !inner.ends_with('=') && !inner.trim().is_empty())
        .then(|| inner.trim())
}

/// Parses a WikiText raw file into articles. Text before the first heading is an error (the
/// file is not WikiText), as is a file with no article.
pub fn read_wikitext(path: &Path) -> Result<Vec<Article>> {
    let text = read_utf8(path)?;
    let mut articles: Vec<Article> = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(title) = article_title(line) {
            if let Some(last) = articles.last_mut() {
                last.text = lines.join("\n");
            }
            lines.clear();
            articles.push(Article { title: title.to_string(), text: String::new() });
            lines.push(line);
            continue;
        }
        if articles.is_empty() && !line.trim().is_empty() {
            return Err(Error::Line {
                path: path.into(),
                line: i as u64 + 1,
                reason: "text before the first ` = Title = ` heading; is this a WikiText raw file?"
                    .into(),
            });
        }
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    match articles.last_mut() {
        Some(last) => last.text = lines.join("\n"),
        None => {
            return Err(Error::File {
                path: path.into(),
                reason: "no ` = Title = ` article heading".into(),
            })
        }
    }
    Ok(articles)
}

/// A WikiText raw file as one evaluation text: checked to be WikiText, then used exactly as it is
/// (the usual way WikiText perplexity is reported, so figures are comparable).
pub fn wikitext_as_text(path: &Path) -> Result<String> {
    read_wikitext(path)?;
    read_utf8(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings() {
        assert_eq!(article_title(" = Valkyria Chronicles = "), Some("Valkyria Chronicles"));
        assert_eq!(article_title(" = = Gameplay = = "), None);
        assert_eq!(article_title(" = = = Deep = = = "), None);
        assert_eq!(article_title(" The = sign = is fine"), None);
    }
}
