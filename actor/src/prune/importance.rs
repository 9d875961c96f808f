//! How much each query head, FFN channel and layer matters, to rank what pruning removes.
//!
//! From calibration text (a dense pass with activation capture):
//! - head: mean |o_proj input| over the head's slice, times the norm of its o_proj columns;
//! - FFN channel: mean |down_proj input| for the channel, times the norm of its down_proj column;
//! - layer: block influence, the mean of `1 - cos(layer input, layer output)` over tokens.
//!
//! Without calibration data, weight norms stand in: head ‖q rows‖·‖o columns‖, channel
//! ‖gate row‖·‖up row‖·‖down column‖, layer ‖o‖ + ‖down‖ (a crude proxy for influence).
//! Results are saved as JSON keyed by the model's identity and the calibration data, and reused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use casrap_engine::block::{Block, LayerCapture};
use casrap_engine::error::{Error, Result};
use casrap_engine::Llama;

/// Importances of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// The model's identity ([`model_identity`]).
    pub model: String,
    /// Where the numbers come from: `calibration (...)` or `weight-norm`.
    pub source: String,
    /// `[layers][heads]`.
    pub heads: Vec<Vec<f32>>,
    /// `[layers][intermediate]`.
    pub channels: Vec<Vec<f32>>,
    /// `[layers]`.
    pub layers: Vec<f32>,
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous())
        .unwrap_or_default()
}

/// L2 norms of `w`'s rows (`dim = 1`) or columns (`dim = 0`), as f32 on CPU.
fn norms(w: &Tensor, dim: i64) -> Tensor {
    w.to_kind(Kind::Float)
        .square()
        .sum_dim_intlist([dim].as_slice(), false, Kind::Float)
        .sqrt()
        .to_device(Device::Cpu)
}

/// Per query head: the norm of its o_proj columns `[heads]`.
fn o_head_norms(b: &Block, heads: i64, head_dim: i64) -> Tensor {
    let cols = norms(b.o_weight(), 0).square().view([heads, head_dim]);
    cols.sum_dim_intlist([1i64].as_slice(), false, Kind::Float).sqrt()
}

impl Importance {
    /// Calibrated importances from `windows` (token ids, all the same length is not required).
    pub fn calibrate(
        model: &Llama,
        identity: &str,
        windows: &[Vec<u32>],
        description: &str,
    ) -> Result<Self> {
        let cfg = model.config();
        if windows.iter().all(|w| w.len() < 2) {
            return Err(Error::arg("calibration", "no calibration window has two tokens"));
        }
        let _guard = tch::no_grad_guard();
        let mut captures: Vec<LayerCapture> =
            model.dense_blocks().iter().map(|b| LayerCapture::zeros(&b.shape())).collect();
        for w in windows.iter().filter(|w| w.len() >= 2) {
            let ids: Vec<i64> = w.iter().map(|&t| i64::from(t)).collect();
            let tokens = Tensor::from_slice(&ids).view([1, -1]).to_device(model.device());
            let _ = model.forward_capture(&tokens, &mut captures);
        }
        let (nh, hd) = (cfg.num_heads as i64, cfg.head_dim as i64);
        let mut heads = Vec::new();
        let mut channels = Vec::new();
        let mut layers = Vec::new();
        for (b, c) in model.dense_blocks().iter().zip(&captures) {
            let n = c.tokens.max(1) as f64;
            heads.push(to_vec(&((&c.head_abs / (n * hd as f64)) * o_head_norms(b, nh, hd))));
            channels.push(to_vec(&((&c.channel_abs / n) * norms(b.down_weight(), 0))));
            layers.push((c.influence / n) as f32);
        }
        let imp = Self {
            model: identity.into(),
            source: format!("calibration ({description})"),
            heads,
            channels,
            layers,
        };
        imp.check(model, Path::new("<calibration>"))?;
        Ok(imp)
    }

    /// Weight-norm importances (no data needed).
    pub fn weight_norm(model: &Llama, identity: &str) -> Self {
        let _guard = tch::no_grad_guard();
        let cfg = model.config();
        let (nh, hd, f) = (cfg.num_heads as i64, cfg.head_dim as i64, cfg.intermediate_size as i64);
        let mut heads = Vec::new();
        let mut channels = Vec::new();
        let mut layers = Vec::new();
        for b in model.dense_blocks() {
            let q = norms(&b.qkv_weight().narrow(0, 0, nh * hd), 1)
                .square()
                .view([nh, hd])
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                .sqrt();
            heads.push(to_vec(&(q * o_head_norms(b, nh, hd))));
            let gu = norms(b.gate_up_weight(), 1);
            channels.push(to_vec(
                &(gu.narrow(0, 0, f) * gu.narrow(0, f, f) * norms(b.down_weight(), 0)),
            ));
            let fro = |t: &Tensor| {
                t.to_kind(Kind::Float).square().sum(Kind::Double).sqrt().double_value(&[])
            };
            layers.push((fro(b.o_weight()) + fro(b.down_weight())) as f32);
        }
        Self { model: identity.into(), source: "weight-norm".into(), heads, channels, layers }
    }

    /// Checks the shapes against `model` and that every value is finite.
    pub fn check(&self, model: &Llama, path: &Path) -> Result<()> {
        let cfg = model.config();
        let bad =
            |why: String| Error::Config { path: path.into(), field: "importance", reason: why };
        if self.heads.len() != cfg.num_layers
            || self.channels.len() != cfg.num_layers
            || self.layers.len() != cfg.num_layers
        {
            return Err(bad(format!("expected {} layers", cfg.num_layers)));
        }
        if self.heads.iter().any(|h| h.len() != cfg.num_heads)
            || self.channels.iter().any(|c| c.len() != cfg.intermediate_size)
        {
            return Err(bad(format!(
                "expected {} heads and {} channels per layer",
                cfg.num_heads, cfg.intermediate_size
            )));
        }
        let all =
            self.heads.iter().flatten().chain(self.channels.iter().flatten()).chain(&self.layers);
        if let Some(v) = all.into_iter().find(|v| !v.is_finite()) {
            return Err(bad(format!("non-finite value {v}")));
        }
        Ok(())
    }

    /// Reads a saved file, checked against `model` and `identity`.
    pub fn load(path: &Path, model: &Llama, identity: &str) -> Result<Self> {
        let imp: Self = super::cache_file::read(path)?;
        if imp.model != identity {
            return Err(Error::Config {
                path: path.into(),
                field: "model",
                reason: format!("is {}, expected {identity}", imp.model),
            });
        }
        imp.check(model, path)?;
        Ok(imp)
    }

    /// Writes the file atomically (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        super::cache_file::write(self, path)
    }

    /// Loads `path` if it holds importances of this model; otherwise computes them with `make`
    /// and saves them there. A corrupt or foreign file is reported and replaced.
    pub fn load_or(
        path: &Path,
        model: &Llama,
        identity: &str,
        make: impl FnOnce() -> Result<Self>,
    ) -> Result<(Self, bool)> {
        if path.is_file() {
            match Self::load(path, model, identity) {
                Ok(imp) => return Ok((imp, true)),
                Err(e) => tracing::warn!(error = %e, "importance file unusable; recomputing"),
            }
        }
        let imp = make()?;
        imp.save(path)?;
        Ok((imp, false))
    }
}

/// A short, stable identity of a model's files: a hash of `config.json` and of each safetensors
/// file's size, header and sampled contents (fast even for gigabytes).
pub fn model_identity(dir: &Path) -> Result<String> {
    use casrap_common::prompts::stable_hash;
    use std::io::{Read, Seek, SeekFrom};
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "safetensors")
                || p.file_name().is_some_and(|n| n == "config.json")
        })
        .collect();
    files.sort();
    let mut h = 0u64;
    for path in &files {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        h = stable_hash(
            h ^ len,
            path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default(),
        );
        let mut buf = vec![0u8; 65536];
        for i in 0..16u64 {
            let at = if len > buf.len() as u64 { (len - buf.len() as u64) * i / 15 } else { 0 };
            f.seek(SeekFrom::Start(at)).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
            h = stable_hash(h, &buf[..n]);
            if len <= buf.len() as u64 {
                break;
            }
        }
    }
    Ok(format!("{h:016x}"))
}
