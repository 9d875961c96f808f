//! Everything an actor (or a benchmark) needs before its first measurement: the model loaded, its
//! importances (calibrated once per model and calibration set, then read from the cache), the
//! profile cache with its restore probe, and the harness.

use super::harness::Harness;
use super::importance::{model_identity, Importance};
use super::profiles::ProfileCache;
use super::sparsity::{self, Thresholds};
use casrap_common::action::Allocation;
use casrap_engine::error::Result;
use casrap_engine::resolve::{cache_dir, ModelSource, Resolver};
use casrap_engine::tokenizer::TextTokenizer;
use casrap_engine::Llama;

/// Where importances come from.
#[derive(Debug, Clone)]
pub enum Calibration {
    /// Activation statistics on windows cut from these texts (the train prompts).
    Texts { texts: Vec<String>, description: String, windows: usize, seq: usize },
    /// Weight norms only.
    WeightNorm,
}

/// What to load.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// A model folder, hub id or `synthetic:<preset>` (see [`Resolver`]).
    pub model: String,
    pub dtype: String,
    pub device: String,
    /// Seed of synthetic weights.
    pub seed: u64,
    pub calibration: Calibration,
    /// Budget for pruned weights in bytes (`None`: twice the dense weights).
    pub max_profile_bytes: Option<usize>,
    /// Also fit activation sparsity's thresholds on the calibration text (cached like the
    /// importances), shared among each block's matrices as this allocation says (greedy: its
    /// search runs once and is cached with them); needed by `sparsity` actions.
    pub sparsity: Option<Allocation>,
}

/// A loaded model ready to be measured.
pub struct Setup {
    pub model: Llama,
    pub tokenizer: TextTokenizer,
    pub source: ModelSource,
    /// Names the model's files and dtype (importance cache key, registration).
    pub identity: String,
    pub harness: Harness,
}

impl Setup {
    pub fn open(o: &SetupOptions) -> Result<Self> {
        let kind = casrap_engine::parse_dtype(&o.dtype)?;
        let device = casrap_engine::parse_device(&o.device)?;
        let source = Resolver::from_env().resolve(&o.model)?;
        let loaded = casrap_engine::load(&source, kind, device, o.seed)?;
        let model = loaded.model;
        let identity = match &source {
            ModelSource::Dir(d) => model_identity(d)?,
            ModelSource::Synthetic { preset } => format!("synthetic-{preset}-seed{}", o.seed),
        };
        let identity = format!("{identity}-{}", o.dtype);
        let mut thresholds = None;
        let importance = match &o.calibration {
            Calibration::WeightNorm => {
                if o.sparsity.is_some() {
                    return Err(casrap_engine::error::Error::arg(
                        "calibration",
                        "activation sparsity needs calibration text; weight norms give no thresholds",
                    ));
                }
                Importance::weight_norm(&model, &identity)
            }
            Calibration::Texts { texts, description, windows, seq } => {
                let desc = format!("{windows} windows of {seq} tokens from {description}");
                let key = casrap_common::prompts::stable_hash(0, desc.as_bytes());
                let path =
                    cache_dir()?.join("importance").join(format!("{identity}-{key:016x}.json"));
                let mut stream = Vec::new();
                for t in texts {
                    stream.extend(loaded.tokenizer.encode(t)?);
                }
                let cut: Vec<Vec<u32>> = stream
                    .chunks_exact((*seq).max(2))
                    .take(*windows)
                    .map(<[u32]>::to_vec)
                    .collect();
                let t = std::time::Instant::now();
                let (imp, reused) = Importance::load_or(&path, &model, &identity, || {
                    Importance::calibrate(&model, &identity, &cut, &desc)
                })?;
                tracing::info!(file = %path.display(), reused, seconds = t.elapsed().as_secs_f64(), "importances");
                if let Some(allocation) = o.sparsity {
                    let path = sparsity::cache_path(&cache_dir()?, &identity, key);
                    let t = std::time::Instant::now();
                    let (mut thr, reused) = Thresholds::load_or(&path, &model, &identity, || {
                        Thresholds::calibrate(&model, &identity, &cut, &desc)
                    })?;
                    tracing::info!(file = %path.display(), reused, seconds = t.elapsed().as_secs_f64(), "sparsity thresholds");
                    if allocation == Allocation::Greedy
                        && thr.greedy.as_ref().is_none_or(|g| g.step != sparsity::GREEDY_STEP)
                    {
                        let t = std::time::Instant::now();
                        thr.fit_greedy(&model, &cut, sparsity::GREEDY_STEP)?;
                        thr.save(&path)?;
                        tracing::info!(file = %path.display(), seconds = t.elapsed().as_secs_f64(), "greedy sparsity allocation");
                    }
                    thresholds = Some((thr, allocation));
                }
                imp
            }
        };
        let budget = o.max_profile_bytes.unwrap_or(2 * model.weight_bytes_per_token());
        let mut cache = ProfileCache::new(importance, budget);
        if let Some((thr, allocation)) = thresholds {
            cache.sparsity = Some(thr);
            cache.allocation = allocation;
        }
        let reload_source = source.clone();
        let seed = o.seed;
        let harness = Harness::new(
            cache,
            Box::new(move || Ok(casrap_engine::load(&reload_source, kind, device, seed)?.model)),
        );
        Ok(Self { model, tokenizer: loaded.tokenizer, source, identity, harness })
    }

    /// Records the restore probe: the dense logits on the first (at most) four tokens of `tokens`.
    /// A short probe shows any change to any weight, and checking it stays cheap.
    pub fn set_probe(&mut self, tokens: &[u32]) {
        self.harness.cache.set_probe(&mut self.model, &tokens[..tokens.len().min(4)]);
    }
}
