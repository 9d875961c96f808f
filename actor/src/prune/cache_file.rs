//! The per-user cache files calibration leaves (importances, sparsity distributions): JSON read
//! with the file named in any error, written atomically (a temp file, then a rename), so a killed
//! write never leaves half a file where the next run looks.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use casrap_engine::error::{Error, Result};

/// Reads `path` as JSON.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: path.into(), source })
}

/// Writes `value` to `path` as JSON, atomically, creating its folder.
pub fn write<T: Serialize>(value: &T, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let text =
        serde_json::to_string(value).map_err(|source| Error::Json { path: path.into(), source })?;
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
