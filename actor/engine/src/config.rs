//! Hugging Face `config.json` for `LlamaForCausalLM`, parsed with serde and resolved into the
//! runtime [`Config`] the engine uses.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A token id or a list of them (HF writes either for `bos_token_id` / `eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// `rope_scaling` (transformers 4.x) or `rope_parameters` (transformers 5.x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfRopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    /// transformers 5.x keeps `rope_theta` inside `rope_parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
}

/// The subset of an HF `LlamaConfig` the engine reads. Unknown keys are ignored, as HF does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<HfRopeScaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<HfRopeScaling>,
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_max_position_embeddings() -> usize {
    2048
}

/// How rotary frequencies are scaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position: usize,
    },
}

/// The runtime configuration: every field resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_ids: Vec<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl Config {
    /// Query heads per KV head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// Number of parameters, embeddings counted once when tied.
    pub fn num_parameters(&self) -> usize {
        hf_parameter_shapes(self).iter().map(|(_, s)| s.iter().product::<i64>() as usize).sum()
    }

    /// Reads and resolves `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let hf: LlamaConfig = serde_json::from_str(&text)
            .map_err(|source| Error::Json { path: path.into(), source })?;
        hf.resolve(path)
    }
}

impl LlamaConfig {
    /// Checks the HF config and resolves defaults. `path` is only used in error messages.
    pub fn resolve(&self, path: &Path) -> Result<Config> {
        let bad = |field: &'static str, reason: String| Error::Config {
            path: path.into(),
            field,
            reason,
        };
        let unsupported = |reason: String| Error::Unsupported { path: path.into(), reason };

        if let Some(archs) = &self.architectures {
            if !archs.iter().any(|a| a == "LlamaForCausalLM") {
                return Err(unsupported(format!(
                    "architectures {archs:?}; only LlamaForCausalLM is supported"
                )));
            }
        }
        if let Some(mt) = &self.model_type {
            if mt != "llama" {
                return Err(unsupported(format!("model_type `{mt}`; only `llama` is supported")));
            }
        }
        if let Some(act) = &self.hidden_act {
            if act != "silu" {
                return Err(unsupported(format!("hidden_act `{act}`; only `silu` is supported")));
            }
        }
        if self.attention_bias || self.mlp_bias {
            return Err(unsupported("attention_bias / mlp_bias are not supported".into()));
        }
        for (field, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return Err(bad(field, "must be positive".into()));
            }
        }
        let num_kv_heads = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        if num_kv_heads == 0 || !self.num_attention_heads.is_multiple_of(num_kv_heads) {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{num_kv_heads} does not divide num_attention_heads {}",
                    self.num_attention_heads
                ),
            ));
        }
        let head_dim = match self.head_dim {
            Some(hd) => hd,
            None => {
                if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
                    return Err(bad(
                        "hidden_size",
                        format!(
                            "{} not divisible by num_attention_heads {}",
                            self.hidden_size, self.num_attention_heads
                        ),
                    ));
                }
                self.hidden_size / self.num_attention_heads
            }
        };
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(bad("head_dim", format!("{head_dim} must be positive and even")));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(bad("rms_norm_eps", format!("{} must be positive", self.rms_norm_eps)));
        }
        let scaling_src = self.rope_scaling.as_ref().or(self.rope_parameters.as_ref());
        let rope_theta =
            self.rope_theta.or_else(|| scaling_src.and_then(|s| s.rope_theta)).unwrap_or(10_000.0);
        if !(rope_theta.is_finite() && rope_theta > 0.0) {
            return Err(bad("rope_theta", format!("{rope_theta} must be positive")));
        }
        let field = if self.rope_scaling.is_some() { "rope_scaling" } else { "rope_parameters" };
        let rope_scaling = match scaling_src {
            None => RopeScaling::None,
            Some(s) => {
                let need = |name: &str, v: Option<f64>| {
                    v.filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| bad(field, format!("`{name}` missing or not positive")))
                };
                match s.rope_type.as_str() {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor: need("factor", s.factor)? },
                    "llama3" => {
                        let low = need("low_freq_factor", s.low_freq_factor)?;
                        let high = need("high_freq_factor", s.high_freq_factor)?;
                        if high <= low {
                            return Err(bad(
                                field,
                                format!("high_freq_factor {high} <= low_freq_factor {low}"),
                            ));
                        }
                        RopeScaling::Llama3 {
                            factor: need("factor", s.factor)?,
                            low_freq_factor: low,
                            high_freq_factor: high,
                            original_max_position: s
                                .original_max_position_embeddings
                                .filter(|v| *v > 0)
                                .ok_or_else(|| {
                                    bad(field, "`original_max_position_embeddings` missing".into())
                                })?,
                        }
                    }
                    other => {
                        return Err(unsupported(format!(
                            "{field}.rope_type `{other}`; supported: default, linear, llama3"
                        )))
                    }
                }
            }
        };
        let ids = |t: &Option<TokenIds>| t.as_ref().map(TokenIds::to_vec).unwrap_or_default();
        let (bos_token_ids, eos_token_ids) = (ids(&self.bos_token_id), ids(&self.eos_token_id));
        for (field, list) in [("bos_token_id", &bos_token_ids), ("eos_token_id", &eos_token_ids)] {
            if let Some(id) = list.iter().find(|&&id| id as usize >= self.vocab_size) {
                return Err(bad(
                    field,
                    format!("{id} is outside the vocabulary ({})", self.vocab_size),
                ));
            }
        }
        Ok(Config {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_layers: self.num_hidden_layers,
            num_heads: self.num_attention_heads,
            num_kv_heads,
            head_dim,
            vocab_size: self.vocab_size,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta,
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings,
            tie_word_embeddings: self.tie_word_embeddings,
            bos_token_ids,
            eos_token_ids,
        })
    }
}

/// Every HF parameter name of a model with this config, with its shape (the export order).
pub fn hf_parameter_shapes(cfg: &Config) -> Vec<(String, Vec<i64>)> {
    let (d, f, v) = (cfg.hidden_size as i64, cfg.intermediate_size as i64, cfg.vocab_size as i64);
    let (nh, nkv, hd) = (cfg.num_heads as i64, cfg.num_kv_heads as i64, cfg.head_dim as i64);
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, d])];
    for i in 0..cfg.num_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        out.extend([
            (p("input_layernorm.weight"), vec![d]),
            (p("self_attn.q_proj.weight"), vec![nh * hd, d]),
            (p("self_attn.k_proj.weight"), vec![nkv * hd, d]),
            (p("self_attn.v_proj.weight"), vec![nkv * hd, d]),
            (p("self_attn.o_proj.weight"), vec![d, nh * hd]),
            (p("post_attention_layernorm.weight"), vec![d]),
            (p("mlp.gate_proj.weight"), vec![f, d]),
            (p("mlp.up_proj.weight"), vec![f, d]),
            (p("mlp.down_proj.weight"), vec![d, f]),
        ]);
    }
    out.push(("model.norm.weight".into(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".into(), vec![v, d]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        let hf: LlamaConfig = serde_json::from_str(json)
            .map_err(|source| Error::Json { path: "t".into(), source })?;
        hf.resolve(Path::new("config.json"))
    }

    const LLAMA32_1B: &str = r#"{"architectures":["LlamaForCausalLM"],"bos_token_id":128000,
      "eos_token_id":[128001,128008,128009],"head_dim":64,"hidden_act":"silu","hidden_size":2048,
      "intermediate_size":8192,"max_position_embeddings":131072,"model_type":"llama",
      "num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"rms_norm_eps":1e-05,
      "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
      "original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,
      "tie_word_embeddings":true,"torch_dtype":"bfloat16","vocab_size":128256}"#;

    #[test]
    fn parses_llama_3_2_1b() {
        let c = parse(LLAMA32_1B).expect("valid config");
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim, c.group_size()), (32, 8, 64, 4));
        assert_eq!(c.bos_token_ids, vec![128000]);
        assert_eq!(c.eos_token_ids, vec![128001, 128008, 128009]);
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { original_max_position: 8192, .. }));
        // About 1.24 B parameters with tied embeddings.
        assert_eq!(c.num_parameters() / 10_000_000, 123);
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let e =
            parse(&LLAMA32_1B.replace("\"num_key_value_heads\":8", "\"num_key_value_heads\":5"))
                .unwrap_err();
        assert!(e.to_string().contains("num_key_value_heads"), "{e}");
        let e = parse(&LLAMA32_1B.replace("\"rope_type\":\"llama3\"", "\"rope_type\":\"yarn\""))
            .unwrap_err();
        assert!(e.to_string().contains("yarn"), "{e}");
        let e = parse(&LLAMA32_1B.replace("LlamaForCausalLM", "MistralForCausalLM")).unwrap_err();
        assert!(e.to_string().contains("MistralForCausalLM"), "{e}");
        let e = parse(&LLAMA32_1B.replace("\"bos_token_id\":128000", "\"bos_token_id\":999999"))
            .unwrap_err();
        assert!(e.to_string().contains("bos_token_id"), "{e}");
        let e = parse(&LLAMA32_1B.replace("\"hidden_size\":2048,", "")).unwrap_err();
        assert!(e.to_string().contains("hidden_size"), "{e}");
    }

    #[test]
    fn accepts_transformers5_rope_parameters() {
        let json = LLAMA32_1B
            .replace("\"rope_scaling\"", "\"rope_parameters\"")
            .replace("\"rope_type\":\"llama3\"", "\"rope_type\":\"llama3\",\"rope_theta\":123.0")
            .replace("\"rope_theta\":500000.0,", "");
        let c = parse(&json).expect("valid");
        assert_eq!(c.rope_theta, 123.0);
    }
}
