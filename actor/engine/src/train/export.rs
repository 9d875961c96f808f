//! Writes a trained model as an HF-format folder that both this engine and transformers load:
//! `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`,
//! `model.safetensors`.

use std::path::Path;

use serde_json::json;
use tch::{Kind, Tensor};

use super::bpe;
use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::model::Weights;
use crate::weights::{save_safetensors, SINGLE_FILE};
use crate::Config;

/// The shape of a model to train.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
    pub rope_theta: f64,
}

impl Default for Shape {
    /// The embedded model: 8 layers, d 256, 8 query / 2 KV heads (4 per group), FFN 768, vocab 4096.
    fn default() -> Self {
        Self {
            hidden: 256,
            layers: 8,
            heads: 8,
            kv_heads: 2,
            ffn: 768,
            vocab: 4096,
            max_positions: 1024,
            rope_theta: 10000.0,
        }
    }
}

impl Shape {
    /// The HF `config.json` of this shape (bf16 storage, tied embeddings, the tokenizer's ids).
    pub fn hf_config(&self) -> Result<LlamaConfig> {
        let v = json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.hidden,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "vocab_size": self.vocab,
            "rms_norm_eps": 1e-5,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_positions,
            "tie_word_embeddings": true,
            "bos_token_id": bpe::BOS_ID,
            "eos_token_id": bpe::EOS_ID,
            "hidden_act": "silu",
            "torch_dtype": "bfloat16",
        });
        serde_json::from_value(v).map_err(|source| Error::Json { path: "<shape>".into(), source })
    }

    pub fn config(&self) -> Result<Config> {
        self.hf_config()?.resolve(Path::new("<shape>"))
    }
}

fn write(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn pretty(path: &Path, v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|source| Error::Json { path: path.into(), source })
}

/// Writes the folder `out` (created if missing); weights are stored as `storage` (bf16 halves the
/// size; the engine widens them on load when asked for f32).
pub fn write_folder(
    out: &Path,
    shape: &Shape,
    tokenizer: &tokenizers::Tokenizer,
    weights: &Weights,
    storage: Kind,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut hf = shape.hf_config()?;
    let cfg = hf.resolve(out)?;
    hf.torch_dtype = Some(
        match storage {
            Kind::BFloat16 => "bfloat16",
            Kind::Half => "float16",
            _ => "float32",
        }
        .into(),
    );
    let config_path = out.join("config.json");
    write(&config_path, pretty(&config_path, &hf)?)?;
    let gen_path = out.join("generation_config.json");
    let gen = json!({"bos_token_id": bpe::BOS_ID, "eos_token_id": bpe::EOS_ID, "pad_token_id": bpe::PAD_ID, "do_sample": false});
    write(&gen_path, pretty(&gen_path, &gen)?)?;
    let tok_path = out.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| Error::Tokenizer { path: tok_path.clone(), reason: e.to_string() })?;
    let tok_cfg_path = out.join("tokenizer_config.json");
    let tok_cfg = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bpe::BOS, "eos_token": bpe::EOS, "pad_token": bpe::PAD,
        "add_bos_token": true, "clean_up_tokenization_spaces": false,
        "model_max_length": shape.max_positions,
    });
    write(&tok_cfg_path, pretty(&tok_cfg_path, &tok_cfg)?)?;
    let _guard = tch::no_grad_guard();
    let tensors: Vec<(String, Tensor)> = weights
        .to_hf(&cfg)
        .into_iter()
        .map(|(name, t)| (name, t.detach().to_kind(storage).contiguous()))
        .collect();
    save_safetensors(&out.join(SINGLE_FILE), &tensors)
}
