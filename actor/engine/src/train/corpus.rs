//! A training corpus: a folder of UTF-8 `.txt` files, one document each, read in file-name order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The documents of a corpus folder.
pub struct Corpus {
    pub dir: PathBuf,
    pub documents: Vec<String>,
}

impl Corpus {
    /// Reads every `*.txt` in `dir` (not recursive), sorted by name so the order never depends on
    /// the file system. Empty files are skipped; a file that is not UTF-8 is an error naming it.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "txt") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut documents = Vec::with_capacity(paths.len());
        for path in &paths {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8: {e}")),
                )
            })?;
            if !text.trim().is_empty() {
                documents.push(text);
            }
        }
        if documents.is_empty() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no non-empty *.txt documents"),
            ));
        }
        Ok(Self { dir: dir.into(), documents })
    }

    /// Total size in bytes.
    pub fn bytes(&self) -> usize {
        self.documents.iter().map(String::len).sum()
    }
}
