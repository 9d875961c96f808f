//! The CASRAP engine: LLaMA inference on tch (config, weights, model, KV cache, RoPE, sampling,
//! generation, perplexity) with the CPU batch-1 decode kernels, model resolution (`--model`), the
//! tokenizer and chat templates, and the training of the embedded model. It is its own crate so
//! the kernels' `unsafe` (allowed per file here and nowhere else in the workspace) and their
//! opt-level in test builds stay with the code that needs them; the actor adds pruning,
//! measurement and the episode loop on top.

pub mod bandwidth;
pub mod block;
pub mod chat;
pub mod config;
mod cpu_decode;
pub mod error;
pub mod gemv;
pub mod generate;
pub mod model;
pub mod perplexity;
pub mod resolve;
pub mod rope;
pub mod sampling;
pub mod synthetic;
pub mod tokenizer;
pub mod train;
pub mod weights;

use tch::{Device, Kind};

pub use crate::error::{Error, Result};
use crate::resolve::ModelSource;
use crate::tokenizer::TextTokenizer;
pub use config::Config;
pub use model::{KvCache, Llama, Logits};

/// The one CPU thread configuration of every command that runs a model (episodes, test mode,
/// prune-bench, bench, eval, train-model), so a speed measured by one means the same in another:
/// the batch-1 kernel pool gets `threads` threads (0: one per core) and torch gets one while the
/// pool runs, the whole budget only inside [`gemv::TorchThreads::lend`] (prefill, calibration,
/// training). Without the kernels torch gets the budget. Returns the budget.
pub fn configure_threads(threads: usize) -> usize {
    let n = if threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        threads
    };
    gemv::set_threads(n);
    n
}

/// A model ready to run, with its tokenizer and where it came from.
pub struct LoadedModel {
    pub model: Llama,
    pub tokenizer: TextTokenizer,
    pub source: ModelSource,
}

/// Loads a resolved model in `kind` on `device`. `seed` only matters for synthetic models.
pub fn load(source: &ModelSource, kind: Kind, device: Device, seed: u64) -> Result<LoadedModel> {
    match source {
        ModelSource::Dir(dir) => {
            let cfg = Config::from_file(&dir.join("config.json"))?;
            let files = weights::SafeTensorFiles::open_dir(dir)?;
            let model = Llama::load(&cfg, &files, kind, device)?;
            let tokenizer = TextTokenizer::from_dir(dir)?;
            Ok(LoadedModel { model, tokenizer, source: source.clone() })
        }
        ModelSource::Synthetic { preset } => {
            let cfg = synthetic::preset(preset)?;
            let model = Llama::load(&cfg, &synthetic::RandomParams { seed }, kind, device)?;
            Ok(LoadedModel { model, tokenizer: TextTokenizer::Bytes, source: source.clone() })
        }
    }
}

/// Parses `f32`/`float32`, `bf16`/`bfloat16`, `f16`/`float16`.
pub fn parse_dtype(s: &str) -> Result<Kind> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Ok(Kind::Float),
        "bf16" | "bfloat16" => Ok(Kind::BFloat16),
        "f16" | "float16" | "half" => Ok(Kind::Half),
        other => Err(Error::arg("dtype", format!("`{other}`; expected f32, bf16 or f16"))),
    }
}

/// Parses `cpu`, `cuda` (device 0) or `cuda:N`, checking that the CUDA device exists.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match s.to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => i,
            _ => return Err(Error::arg("device", format!("`{s}`; expected cpu, cuda or cuda:N"))),
        },
    };
    let available = tch::Cuda::device_count() as usize;
    if device >= available {
        return Err(Error::arg("device", format!("`{s}`: {available} CUDA device(s) visible")));
    }
    Ok(Device::Cuda(device))
}

/// Human-readable description of a model source.
pub fn describe(source: &ModelSource) -> String {
    match source {
        ModelSource::Dir(d) => d.display().to_string(),
        ModelSource::Synthetic { preset } => format!("synthetic:{preset}"),
    }
}
