//! What both command lines share: the model flags, the thread budget and the prompt format.

use anyhow::Context;
use casrap_common::config::PromptFormat;
use casrap_engine::resolve::Resolver;

/// The model flags every model-loading subcommand shares.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// Model: a local HF folder, an HF repo id (from the local HF cache; downloaded only when
    /// HF_HUB_OFFLINE is unset), casrap-cache:models/NAME (a folder of the per-user cache), or
    /// synthetic:<preset> (tiny, llama-3.2-1b) with random weights.
    #[arg(long, env = "CASRAP_MODEL", default_value = casrap_engine::resolve::DEFAULT_MODEL)]
    pub model: String,
    /// Weight and activation dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of synthetic weights (and of sampling, where the command samples).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// CPU thread budget for decode kernels and torch (default: one per core).
    #[arg(long, env = "CASRAP_THREADS")]
    pub threads: Option<usize>,
}

impl ModelArgs {
    /// Sets the thread budget, then resolves and loads the model (logged with its load time).
    pub fn load(&self) -> anyhow::Result<casrap_engine::LoadedModel> {
        let kind = casrap_engine::parse_dtype(&self.dtype)?;
        let device = casrap_engine::parse_device(&self.device)?;
        set_threads(self.threads)?;
        let source = Resolver::from_env().resolve(&self.model)?;
        let t0 = std::time::Instant::now();
        let loaded = casrap_engine::load(&source, kind, device, self.seed)
            .with_context(|| format!("loading model {}", casrap_engine::describe(&source)))?;
        tracing::info!(
            model = %casrap_engine::describe(&source),
            dtype = ?kind,
            device = ?device,
            params = loaded.model.config().num_parameters(),
            load_ms = t0.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(loaded)
    }

    /// Sets the thread budget, splits `prompt_file` as a run does (the default test fraction and
    /// split seed, so a run's cached calibration is reused) and opens the model on the train
    /// split's calibration, with sparsity thresholds fitted under `allocation`. Fails when the
    /// file has no test prompts.
    pub fn open_sparse_setup(
        &self,
        prompt_file: &str,
        allocation: casrap_common::action::Allocation,
    ) -> anyhow::Result<(crate::prune::setup::Setup, casrap_common::prompts::Split)> {
        use casrap_common::prompts::{BadRows, PromptSet};
        set_threads(self.threads)?;
        let set = PromptSet::load(&casrap_common::repo_path(prompt_file), BadRows::Skip)?;
        let test_fraction = casrap_common::config::ActorsConfig::default().test_fraction;
        let split = set.split(test_fraction, crate::episodes::SPLIT_SEED);
        anyhow::ensure!(!split.test.is_empty(), "{prompt_file}: no test prompts");
        let setup = crate::prune::setup::Setup::open(&crate::prune::setup::SetupOptions {
            model: self.model.clone(),
            dtype: self.dtype.clone(),
            device: self.device.clone(),
            seed: self.seed,
            calibration: crate::episodes::train_calibration(&split.train, prompt_file),
            max_profile_bytes: None,
            sparsity: Some(allocation),
        })
        .with_context(|| format!("loading model {}", self.model))?;
        Ok((setup, split))
    }
}

/// `--threads` through the one thread configuration ([`casrap_engine::configure_threads`]).
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be positive, got {n}");
    }
    casrap_engine::configure_threads(threads.unwrap_or(0));
    Ok(())
}

/// `--allocation`: how a sparsity level is shared among each block's matrices.
pub fn parse_allocation(s: &str) -> Result<casrap_common::action::Allocation, String> {
    casrap_common::action::Allocation::parse(s).map_err(|e| e.to_string())
}

/// `--prompt-format` / `--format`: `raw`, or `chat` (one user turn of the model's chat template).
pub fn parse_prompt_format(s: &str) -> Result<PromptFormat, String> {
    [PromptFormat::Raw, PromptFormat::Chat]
        .into_iter()
        .find(|f| f.name() == s)
        .ok_or_else(|| format!("`{s}`: expected raw or chat"))
}

/// Reads a lab tool's saved JSON record (`--report FILE`).
pub fn read_record<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes a lab tool's raw record as one JSON line to `out`, or by default to
/// `runs/<stem>-<unix time>.json`; returns the path written.
pub fn write_record(
    out: Option<std::path::PathBuf>,
    stem: &str,
    record: &impl serde::Serialize,
) -> anyhow::Result<std::path::PathBuf> {
    let out = out.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::path::PathBuf::from(format!("runs/{stem}-{secs}.json"))
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string(record)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}
