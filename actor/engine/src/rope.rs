//! Rotary position embeddings, computed exactly as HF `LlamaRotaryEmbedding` does (f32 inverse
//! frequencies, llama3 / linear scaling, `cat(freqs, freqs)` layout).

use tch::{Device, Kind, Tensor};

use crate::config::{Config, RopeScaling};

/// Inverse frequencies `[head_dim / 2]` in f32 on `device`, with the config's scaling applied.
pub fn inv_freq(cfg: &Config, device: Device) -> Tensor {
    let dim = cfg.head_dim as i64;
    let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device))
        .to_kind(Kind::Float)
        / dim as f64;
    let base = Tensor::from(cfg.rope_theta as f32).to_device(device);
    let inv = base.pow(&exponents).reciprocal();
    match cfg.rope_scaling {
        RopeScaling::None => inv,
        RopeScaling::Linear { factor } => inv / factor,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position,
        } => {
            let old = original_max_position as f64;
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            let wavelen = inv.reciprocal() * (2.0 * std::f64::consts::PI);
            let scaled = inv.where_self(&wavelen.le(low_freq_wavelen), &(&inv / factor));
            let smooth = ((wavelen.reciprocal() * old) - low_freq_factor)
                / (high_freq_factor - low_freq_factor);
            let smoothed = (smooth.ones_like() - &smooth) * &scaled / factor + &smooth * &scaled;
            let medium = wavelen.ge(high_freq_wavelen).logical_and(&wavelen.le(low_freq_wavelen));
            smoothed.where_self(&medium, &scaled)
        }
    }
}

/// `(cos, sin)` of shape `[len, head_dim]` in f32 for positions `start..start+len`.
pub fn cos_sin(inv_freq: &Tensor, start: usize, len: usize) -> (Tensor, Tensor) {
    let device = inv_freq.device();
    let pos = Tensor::arange_start(start as i64, (start + len) as i64, (Kind::Int64, device))
        .to_kind(Kind::Float);
    let freqs = pos.unsqueeze(1) * inv_freq.unsqueeze(0);
    let emb = Tensor::cat(&[&freqs, &freqs], 1);
    (emb.cos(), emb.sin())
}
