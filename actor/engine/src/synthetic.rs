//! Random-weight models of real shapes, reproducible from a seed, for speed work without downloads.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

use std::path::Path;

use crate::config::hf_parameter_shapes;
use crate::config::{Config, LlamaConfig};
use crate::error::{Error, Result};
use crate::model::ParamSource;
use crate::weights::{save_safetensors, SINGLE_FILE};

/// Shapes `synthetic:<preset>` knows.
pub const PRESETS: &[&str] = &["tiny", "llama-3.2-1b"];

/// The HF `config.json` of a preset.
pub fn preset_config(preset: &str) -> Result<LlamaConfig> {
    let json = match preset {
        // The embedded-model class: 8 layers, d 256, 8 query / 2 KV heads, FFN 768, vocab 4096.
        "tiny" => {
            r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":256,
            "intermediate_size":768,"num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":2,
            "vocab_size":4096,"rms_norm_eps":1e-5,"rope_theta":10000.0,"max_position_embeddings":2048,
            "tie_word_embeddings":true,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu"}"#
        }
        // meta-llama/Llama-3.2-1B's config.json.
        "llama-3.2-1b" => {
            r#"{"architectures":["LlamaForCausalLM"],"bos_token_id":128000,
            "eos_token_id":128001,"head_dim":64,"hidden_act":"silu","hidden_size":2048,
            "intermediate_size":8192,"max_position_embeddings":131072,"model_type":"llama",
            "num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"rms_norm_eps":1e-05,
            "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,
            "tie_word_embeddings":true,"torch_dtype":"bfloat16","vocab_size":128256}"#
        }
        other => {
            return Err(Error::arg(
                "model",
                format!("unknown synthetic preset `{other}`; known: {}", PRESETS.join(", ")),
            ))
        }
    };
    serde_json::from_str(json)
        .map_err(|source| Error::Json { path: format!("synthetic:{preset}").into(), source })
}

/// Resolved runtime config of a preset.
pub fn preset(preset: &str) -> Result<Config> {
    preset_config(preset)?.resolve(format!("synthetic:{preset}").as_ref())
}

/// Parameters drawn uniformly with HF's init std (0.02); norms are ones. Each tensor's values depend
/// only on the seed and its name, not on load order or device.
pub struct RandomParams {
    pub seed: u64,
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

impl ParamSource for RandomParams {
    fn get(&self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
        let n: i64 = shape.iter().product();
        let t = if name.ends_with("norm.weight") {
            Tensor::ones(shape, (Kind::Float, Device::Cpu))
        } else {
            let mut rng = SmallRng::seed_from_u64(self.seed ^ fnv1a(name));
            let a = 0.02f32 * 3f32.sqrt();
            let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-a..a)).collect();
            Tensor::from_slice(&v).view(shape)
        };
        Ok(t.to_kind(kind).to_device(device))
    }
    fn has(&self, _name: &str) -> bool {
        true
    }
}

/// Writes a preset's random weights as an HF folder (`config.json`, `model.safetensors`) in
/// `kind`, so other engines can load exactly the model `synthetic:<preset>` builds from `seed`.
pub fn export(preset_name: &str, seed: u64, kind: Kind, out: &Path) -> Result<()> {
    let mut hf = preset_config(preset_name)?;
    let cfg = hf.resolve(format!("synthetic:{preset_name}").as_ref())?;
    hf.torch_dtype = Some(
        match kind {
            Kind::BFloat16 => "bfloat16",
            Kind::Half => "float16",
            _ => "float32",
        }
        .into(),
    );
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let params = RandomParams { seed };
    let tensors = hf_parameter_shapes(&cfg)
        .into_iter()
        .map(|(name, shape)| Ok((name.clone(), params.get(&name, &shape, kind, Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    save_safetensors(&out.join(SINGLE_FILE), &tensors)?;
    let json = serde_json::to_string_pretty(&hf)
        .map_err(|source| Error::Json { path: out.join("config.json"), source })?;
    std::fs::write(out.join("config.json"), json + "\n")
        .map_err(|e| Error::io(out.join("config.json"), e))
}
