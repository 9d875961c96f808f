//! `--model` resolution: a local folder, a folder in the project's per-user cache
//! (`casrap-cache:models/NAME`, where `scripts/fetch-real-model` puts the real model), an HF repo
//! id (local HF cache first, download only when online and allowed), or `synthetic:<preset>`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::weights::{INDEX_FILE, SINGLE_FILE};

/// The project's per-user cache (`CASRAP_CACHE`, else `~/.cache/casrap`), as scripts/bootstrap uses.
pub fn cache_dir() -> Result<PathBuf> {
    std::env::var_os("CASRAP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/casrap")))
        .ok_or_else(|| Error::arg("cache", "neither CASRAP_CACHE nor HOME is set"))
}

/// Where a model's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder holding `config.json`, `tokenizer.json` and the safetensors.
    Dir(PathBuf),
    /// Random weights of a preset's exact shape.
    Synthetic { preset: String },
}

/// Whether [`Resolver`] may download from the Hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    Allowed,
    Forbidden,
}

impl Download {
    /// `Forbidden` when `HF_HUB_OFFLINE` is set to a true value, as huggingface_hub does.
    pub fn from_env() -> Self {
        match std::env::var("HF_HUB_OFFLINE").map(|v| v.to_ascii_lowercase()) {
            Ok(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Download::Forbidden,
            _ => Download::Allowed,
        }
    }
}

/// Resolves `--model` values against one HF cache folder and download policy.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub hub_cache: PathBuf,
    pub download: Download,
}

impl Resolver {
    /// The HF hub cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`)
    /// and [`Download::from_env`].
    pub fn from_env() -> Self {
        let hub_cache = match std::env::var_os("HF_HUB_CACHE") {
            Some(p) => PathBuf::from(p),
            None => hf_hub::Cache::from_env().path().clone(),
        };
        Self { hub_cache, download: Download::from_env() }
    }

    /// Resolves a `--model` value. Errors list every place that was tried.
    pub fn resolve(&self, spec: &str) -> Result<ModelSource> {
        resolve_in(spec, &self.hub_cache, self.download)
    }
}

/// The embedded default model, committed in the repository (see `models/README.md`).
pub const DEFAULT_MODEL: &str = "models/pydoc-llama-7m";

/// The held-out evaluation text of the embedded model's corpus.
pub const DEFAULT_EVAL_TEXT: &str = "data/eval/python-doc-heldout.txt";

/// The project's prompt set.
pub const DEFAULT_PROMPTS: &str = "data/prompts/prompts.csv";

use casrap_common::repo_path;

fn looks_like_repo_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// Files a folder needs besides the weights.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];

fn is_model_dir(dir: &Path) -> bool {
    REQUIRED.iter().all(|f| dir.join(f).is_file())
        && (dir.join(SINGLE_FILE).is_file() || dir.join(INDEX_FILE).is_file())
}

fn resolve_in(spec: &str, hub_cache: &Path, download: Download) -> Result<ModelSource> {
    if let Some(preset) = spec.strip_prefix("synthetic:") {
        crate::synthetic::preset_config(preset)?;
        return Ok(ModelSource::Synthetic { preset: preset.into() });
    }
    if let Some(rel) = spec.strip_prefix("casrap-cache:") {
        let dir = cache_dir()?.join(rel);
        if dir.is_dir() {
            return Ok(ModelSource::Dir(dir));
        }
        let looked = vec![format!(
            "{} (does not exist; scripts/fetch-real-model makes models/smollm2-135m-instruct)",
            dir.display()
        )];
        return Err(Error::ModelNotFound { spec: spec.into(), looked });
    }
    let mut looked = Vec::new();
    let local = repo_path(spec);
    let local = local.as_path();
    if local.is_dir() {
        // A folder given explicitly is used as is; its missing files are reported when loading.
        return Ok(ModelSource::Dir(local.into()));
    }
    looked.push(format!("local folder {} (does not exist)", local.display()));
    if !looks_like_repo_id(spec) {
        looked.push("not an HF repo id (owner/name) and not synthetic:<preset>".into());
        return Err(Error::ModelNotFound { spec: spec.into(), looked });
    }
    let cache = hf_hub::Cache::new(hub_cache.to_path_buf());
    let repo = cache.model(spec.to_string());
    match repo.get("config.json").and_then(|p| p.parent().map(Path::to_path_buf)) {
        Some(snapshot) if is_model_dir(&snapshot) => return Ok(ModelSource::Dir(snapshot)),
        Some(snapshot) => looked.push(format!(
            "HF cache snapshot {} (incomplete: needs {} and weights)",
            snapshot.display(),
            REQUIRED.join(", ")
        )),
        None => looked.push(format!("HF cache {} (no snapshot of {spec})", cache.path().display())),
    }
    if download == Download::Forbidden {
        looked.push("Hugging Face Hub (not tried: HF_HUB_OFFLINE is set)".into());
        return Err(Error::ModelNotFound { spec: spec.into(), looked });
    }
    match fetch_from_hub(spec, hub_cache) {
        Ok(dir) => Ok(ModelSource::Dir(dir)),
        Err(e) => {
            looked.push(format!("Hugging Face Hub ({e})"));
            Err(Error::ModelNotFound { spec: spec.into(), looked })
        }
    }
}

fn fetch_from_hub(repo_id: &str, hub_cache: &Path) -> std::result::Result<PathBuf, String> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(hub_cache.to_path_buf())
        .with_progress(true)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.model(repo_id.to_string());
    let config = repo.get("config.json").map_err(|e| e.to_string())?;
    repo.get("tokenizer.json").map_err(|e| e.to_string())?;
    if repo.get(SINGLE_FILE).is_err() {
        let index = repo
            .get(INDEX_FILE)
            .map_err(|e| format!("neither {SINGLE_FILE} nor {INDEX_FILE}: {e}"))?;
        let text = std::fs::read_to_string(&index).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut shards: Vec<String> = v["weight_map"]
            .as_object()
            .map(|m| m.values().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        for s in shards {
            repo.get(&s).map_err(|e| e.to_string())?;
        }
    }
    config.parent().map(Path::to_path_buf).ok_or_else(|| "snapshot has no folder".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(looks_like_repo_id("meta-llama/Llama-3.2-1B"));
        assert!(!looks_like_repo_id("./models/x"));
        assert!(!looks_like_repo_id("a/b/c"));
        assert!(!looks_like_repo_id("/abs"));
    }
}
