//! The LLaMA model in tch, laid out like candle's llama: [`RmsNorm`], [`Mlp`], [`Attention`],
//! [`Block`], [`Llama`], each built from HF parameter names; the [`KvCache`] is separate and passed
//! by `&mut`.
//!
//! Decode at batch 1 is memory-bound on CPU and dispatch-bound for small models, so the layout is
//! chosen for it: q/k/v are one fused projection and gate/up another (one weight read, one kernel
//! call each), RoPE for q and k is one fused step with the attention scale folded into q's
//! tables, and grouped-query attention never copies K/V per query head.

use tch::{Device, Kind, Tensor};

use super::config::Config;
use super::cpu_decode::DecodePlan;
use super::gemv;
use super::rope;
use super::weights::SafeTensorFiles;
use crate::error::Result;

/// A bias-free linear layer holding HF's `[out, in]` weight, contiguous. A single row on CPU (batch-1
/// decode) goes through [`gemv`], everything else through torch.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
}

impl Linear {
    /// Wraps an HF-layout `[out, in]` weight.
    pub fn new(weight_out_in: Tensor) -> Self {
        Self { weight: weight_out_in.contiguous() }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        if x.numel() == self.in_features() {
            if let Some(y) = gemv::gemv(&self.weight, x) {
                return y;
            }
        }
        x.linear::<&Tensor>(&self.weight, None)
    }

    /// Rows of the weight (an embedding lookup when this is a tied LM head).
    pub fn rows(&self, ids: &Tensor) -> Tensor {
        self.weight.index_select(0, ids)
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn in_features(&self) -> usize {
        self.weight.size()[1] as usize
    }

    pub fn bytes(&self) -> usize {
        self.weight.numel() * self.weight.kind().elt_size_in_bytes()
    }
}

/// RMS normalisation as HF computes it (in f32, cast back before the weight).
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        if kind == Kind::Float {
            return x.rms_norm([x.size()[x.dim() - 1]], Some(&self.weight), self.eps);
        }
        let xf = x.to_kind(Kind::Float);
        let var = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = xf * (var + self.eps).rsqrt();
        &self.weight * normed.to_kind(kind)
    }
}

/// SwiGLU feed-forward with fused gate/up projection.
#[derive(Debug)]
pub struct Mlp {
    gate_up: Linear,
    down: Linear,
    intermediate: i64,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let gu = self.gate_up.forward(x);
        let f = self.intermediate;
        let gate = gu.narrow(-1, 0, f);
        let up = gu.narrow(-1, f, f);
        self.down.forward(&(gate.silu() * up))
    }
}

/// Per-forward tables shared by every layer: RoPE for the fused q|k heads and the causal mask.
pub struct StepTables {
    cos: Tensor,
    sin: Tensor,
    /// `[group * T, L]` additive mask, `None` when `T == 1`.
    mask: Option<Tensor>,
}

/// Grouped-query self-attention with fused qkv projection.
#[derive(Debug)]
pub struct Attention {
    qkv: Linear,
    o: Linear,
    num_heads: i64,
    num_kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    pub fn forward(&self, x: &Tensor, layer_cache: &mut (Tensor, Tensor), pos: i64, tables: &StepTables) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let g = nh / nkv;
        let qkv = self.qkv.forward(x);
        // RoPE on q and k together: rot = qk*cos + swap_halves(qk)*sin, where the sign of
        // rotate_half and q's 1/sqrt(head_dim) are folded into the tables.
        let qk = qkv.narrow(-1, 0, (nh + nkv) * hd).view([b, t, nh + nkv, hd]);
        let swapped = qk.view([b, t, nh + nkv, 2, hd / 2]).flip([3]).view([b, t, nh + nkv, hd]);
        let mut rot = &qk * &tables.cos;
        let _ = rot.addcmul_(&swapped, &tables.sin);
        let q = rot.narrow(2, 0, nh);
        let k = rot.narrow(2, nh, nkv).transpose(1, 2);
        let v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).view([b, t, nkv, hd]).transpose(1, 2);
        let (ck, cv) = layer_cache;
        ck.narrow(2, pos, t).copy_(&k);
        cv.narrow(2, pos, t).copy_(&v);
        if pos == 0 && t > 1 {
            // A prefill from an empty cache (and training): torch's fused causal attention, which
            // maps query heads to their KV group itself. q already carries 1/sqrt(head_dim).
            let out = Tensor::scaled_dot_product_attention::<&Tensor>(
                &q.transpose(1, 2),
                &k,
                &v,
                None,
                0.0,
                true,
                1.0,
                true,
            );
            return self.o.forward(&out.transpose(1, 2).reshape([b, t, nh * hd]));
        }
        let keys = ck.narrow(2, 0, pos + t);
        let values = cv.narrow(2, 0, pos + t);
        // Query heads of one KV group attend as one [g*T, hd] block against that group's K/V.
        let q = if t == 1 {
            q.reshape([b, nkv, g, hd])
        } else {
            q.reshape([b, t, nkv, g, hd]).permute([0, 2, 3, 1, 4]).reshape([b, nkv, g * t, hd])
        };
        let mut scores = q.matmul(&keys.transpose(-1, -2));
        if let Some(mask) = &tables.mask {
            scores += mask;
        }
        let probs = scores.softmax(-1, Kind::Float).to_kind(x.kind());
        let out = probs.matmul(&values);
        let out = if t == 1 {
            out.reshape([b, 1, nh * hd])
        } else {
            out.view([b, nkv, g, t, hd]).permute([0, 3, 1, 2, 4]).reshape([b, t, nh * hd])
        };
        self.o.forward(&out)
    }
}

/// One transformer block.
#[derive(Debug)]
pub struct Block {
    input_norm: RmsNorm,
    attn: Attention,
    post_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    pub(crate) fn input_norm_weight(&self) -> &Tensor {
        &self.input_norm.weight
    }
    pub(crate) fn post_norm_weight(&self) -> &Tensor {
        &self.post_norm.weight
    }
    pub(crate) fn qkv_weight(&self) -> &Tensor {
        self.attn.qkv.weight()
    }
    pub(crate) fn o_weight(&self) -> &Tensor {
        self.attn.o.weight()
    }
    pub(crate) fn gate_up_weight(&self) -> &Tensor {
        self.mlp.gate_up.weight()
    }
    pub(crate) fn down_weight(&self) -> &Tensor {
        self.mlp.down.weight()
    }

    pub fn forward(&self, x: &Tensor, layer_cache: &mut (Tensor, Tensor), pos: i64, tables: &StepTables) -> Tensor {
        let h = x + self.attn.forward(&self.input_norm.forward(x), layer_cache, pos, tables);
        let m = self.mlp.forward(&self.post_norm.forward(&h));
        h + m
    }
}

/// The key/value cache of every layer, preallocated to a fixed capacity.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
    batch: usize,
}

impl KvCache {
    pub fn new(cfg: &Config, batch: usize, capacity: usize, kind: Kind, device: Device) -> Self {
        let shape = [batch as i64, cfg.num_kv_heads as i64, capacity as i64, cfg.head_dim as i64];
        let layers = (0..cfg.num_layers)
            .map(|_| (Tensor::zeros(shape, (kind, device)), Tensor::zeros(shape, (kind, device))))
            .collect();
        Self { layers, len: 0, capacity, batch }
    }
    /// Number of positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn batch(&self) -> usize {
        self.batch
    }
    pub(crate) fn layers_mut(&mut self) -> &mut [(Tensor, Tensor)] {
        &mut self.layers
    }
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
    /// Forgets every cached position (the buffers are reused).
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: `[B, V]` (what generation needs).
    Last,
    /// Every position: `[B, T, V]` (perplexity, teacher forcing).
    All,
}

/// A LLaMA causal language model.
pub struct Llama {
    cfg: Config,
    embed: Linear,
    lm_head: Option<Linear>,
    layers: Vec<Block>,
    norm: RmsNorm,
    inv_freq: Tensor,
    /// `[1, H, 1]`: 1/sqrt(head_dim) for query heads, 1 for key heads.
    cos_scale: Tensor,
    /// `[1, H, head_dim]`: as `cos_scale`, times -1 on the first half (rotate_half's sign).
    sin_scale: Tensor,
    kind: Kind,
    device: Device,
    /// Torch-free batch-1 decode for f32 and bf16 on CPU (see [`cpu_decode`]); `None` elsewhere.
    decode_plan: Option<DecodePlan>,
}

/// Borrowed parts of a model, for the CPU decode plan.
pub(crate) struct Parts<'a> {
    pub embed: &'a Tensor,
    pub head: &'a Tensor,
    pub norm: &'a Tensor,
    pub layers: &'a [Block],
    pub inv_freq: &'a Tensor,
}

/// Where model parameters come from: HF files, or anything else that yields HF-named tensors.
pub trait ParamSource {
    /// The tensor `name`, checked to have `shape`, as `kind` on `device`.
    fn get(&self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor>;
    /// Whether a tensor of that name exists (for optional ones such as an untied `lm_head`).
    fn has(&self, name: &str) -> bool;
}

impl ParamSource for SafeTensorFiles {
    fn get(&self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
        self.load(name, shape, kind, device)
    }
    fn has(&self, name: &str) -> bool {
        self.contains(name)
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

/// The weights of one transformer block, with q|k|v and gate|up already fused (HF layout, `[out, in]`).
pub struct LayerWeights {
    pub input_norm: Tensor,
    /// `[(num_heads + 2 * num_kv_heads) * head_dim, hidden]`: q rows, then k, then v.
    pub qkv: Tensor,
    pub o: Tensor,
    pub post_norm: Tensor,
    /// `[2 * intermediate, hidden]`: gate rows, then up.
    pub gate_up: Tensor,
    pub down: Tensor,
}

/// Every weight of a model in the engine's fused layout.
pub struct Weights {
    pub embed: Tensor,
    /// `None` when the embedding is tied to the LM head.
    pub lm_head: Option<Tensor>,
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,
}

impl Weights {
    /// Reads HF-named parameters (`model.layers.N.self_attn.q_proj.weight`, ...) and fuses them.
    pub fn from_hf(cfg: &Config, params: &impl ParamSource, kind: Kind, device: Device) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let (d, f) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let (nh, nkv, hd) = (cfg.num_heads as i64, cfg.num_kv_heads as i64, cfg.head_dim as i64);
        let get = |name: &str, shape: &[i64]| params.get(name, shape, kind, device);
        let embed = get("model.embed_tokens.weight", &[cfg.vocab_size as i64, d])?;
        let lm_head =
            if cfg.tie_word_embeddings { None } else { Some(get("lm_head.weight", &[cfg.vocab_size as i64, d])?) };
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            let q = get(&p("self_attn.q_proj.weight"), &[nh * hd, d])?;
            let k = get(&p("self_attn.k_proj.weight"), &[nkv * hd, d])?;
            let v = get(&p("self_attn.v_proj.weight"), &[nkv * hd, d])?;
            let gate = get(&p("mlp.gate_proj.weight"), &[f, d])?;
            let up = get(&p("mlp.up_proj.weight"), &[f, d])?;
            layers.push(LayerWeights {
                input_norm: get(&p("input_layernorm.weight"), &[d])?,
                qkv: Tensor::cat(&[q, k, v], 0),
                o: get(&p("self_attn.o_proj.weight"), &[d, nh * hd])?,
                post_norm: get(&p("post_attention_layernorm.weight"), &[d])?,
                gate_up: Tensor::cat(&[gate, up], 0),
                down: get(&p("mlp.down_proj.weight"), &[d, f])?,
            });
        }
        let norm = get("model.norm.weight", &[d])?;
        Ok(Self { embed, lm_head, layers, norm })
    }

    /// The HF-named tensors (fused projections split again), in [`hf_parameter_shapes`] order.
    pub fn to_hf(&self, cfg: &Config) -> Vec<(String, Tensor)> {
        let (nh, nkv, hd, f) =
            (cfg.num_heads as i64, cfg.num_kv_heads as i64, cfg.head_dim as i64, cfg.intermediate_size as i64);
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.shallow_clone())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            out.extend([
                (p("input_layernorm.weight"), l.input_norm.shallow_clone()),
                (p("self_attn.q_proj.weight"), l.qkv.narrow(0, 0, nh * hd).contiguous()),
                (p("self_attn.k_proj.weight"), l.qkv.narrow(0, nh * hd, nkv * hd).contiguous()),
                (p("self_attn.v_proj.weight"), l.qkv.narrow(0, (nh + nkv) * hd, nkv * hd).contiguous()),
                (p("self_attn.o_proj.weight"), l.o.shallow_clone()),
                (p("post_attention_layernorm.weight"), l.post_norm.shallow_clone()),
                (p("mlp.gate_proj.weight"), l.gate_up.narrow(0, 0, f).contiguous()),
                (p("mlp.up_proj.weight"), l.gate_up.narrow(0, f, f).contiguous()),
                (p("mlp.down_proj.weight"), l.down.shallow_clone()),
            ]);
        }
        out.push(("model.norm.weight".into(), self.norm.shallow_clone()));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".into(), head.shallow_clone()));
        }
        out
    }

    /// The same weights with every tensor mapped through `f` (a dtype cast for training, say).
    pub fn map(&self, f: impl Fn(&Tensor) -> Tensor) -> Self {
        Self {
            embed: f(&self.embed),
            lm_head: self.lm_head.as_ref().map(&f),
            layers: self
                .layers
                .iter()
                .map(|l| LayerWeights {
                    input_norm: f(&l.input_norm),
                    qkv: f(&l.qkv),
                    o: f(&l.o),
                    post_norm: f(&l.post_norm),
                    gate_up: f(&l.gate_up),
                    down: f(&l.down),
                })
                .collect(),
            norm: f(&self.norm),
        }
    }
}

impl Llama {
    /// Builds the model from HF-named parameters (`model.layers.N.self_attn.q_proj.weight`, ...),
    /// with the torch-free decode step where it applies.
    pub fn load(cfg: &Config, params: &impl ParamSource, kind: Kind, device: Device) -> Result<Self> {
        if device == Device::Cpu {
            gemv::ensure_configured();
        }
        let mut model = Self::from_weights(cfg, Weights::from_hf(cfg, params, kind, device)?, kind, device);
        // SAFETY: the plan lives in `model` beside the tensors it views; every method that replaces
        // a weight takes `&mut self` and drops or rebuilds the plan.
        #[allow(unsafe_code)]
        let plan = unsafe { DecodePlan::build(&model) };
        model.decode_plan = plan;
        Ok(model)
    }

    /// Wraps fused weights as they are (no copy, no decode plan): gradients flow through the
    /// forward pass to them, which is how training reuses this model.
    pub fn from_weights(cfg: &Config, w: Weights, kind: Kind, device: Device) -> Self {
        let (nh, nkv, hd, f) =
            (cfg.num_heads as i64, cfg.num_kv_heads as i64, cfg.head_dim as i64, cfg.intermediate_size as i64);
        let layers = w
            .layers
            .into_iter()
            .map(|l| Block {
                input_norm: RmsNorm::new(l.input_norm, cfg.rms_norm_eps),
                attn: Attention { qkv: Linear::new(l.qkv), o: Linear::new(l.o), num_heads: nh, num_kv_heads: nkv, head_dim: hd },
                post_norm: RmsNorm::new(l.post_norm, cfg.rms_norm_eps),
                mlp: Mlp { gate_up: Linear::new(l.gate_up), down: Linear::new(l.down), intermediate: f },
            })
            .collect();
        let _guard = tch::no_grad_guard();
        let scale = 1.0 / (hd as f64).sqrt();
        let head_scale: Vec<f32> = (0..nh + nkv).map(|h| if h < nh { scale as f32 } else { 1.0 }).collect();
        let cos_scale = Tensor::from_slice(&head_scale).view([1, nh + nkv, 1]).to_device(device);
        let sign: Vec<f32> = (0..hd).map(|j| if j < hd / 2 { -1.0 } else { 1.0 }).collect();
        let sin_scale = &cos_scale * Tensor::from_slice(&sign).view([1, 1, hd]).to_device(device);
        Self {
            cfg: cfg.clone(),
            embed: Linear::new(w.embed),
            lm_head: w.lm_head.map(Linear::new),
            layers,
            norm: RmsNorm::new(w.norm, cfg.rms_norm_eps),
            inv_freq: rope::inv_freq(cfg, device),
            cos_scale,
            sin_scale,
            kind,
            device,
            decode_plan: None,
        }
    }

    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            embed: self.embed.weight(),
            head: self.lm_head.as_ref().unwrap_or(&self.embed).weight(),
            norm: &self.norm.weight,
            layers: &self.layers,
            inv_freq: &self.inv_freq,
        }
    }

    /// Turns the torch-free CPU decode path off (so tests can compare it with the torch path).
    pub fn disable_cpu_decode(&mut self) {
        self.decode_plan = None;
    }

    /// Whether one-token steps take the torch-free CPU path.
    pub fn uses_cpu_decode(&self) -> bool {
        self.decode_plan.is_some()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn device(&self) -> Device {
        self.device
    }

    /// A cache for `batch` sequences of up to `capacity` positions, in this model's dtype/device.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache {
        KvCache::new(&self.cfg, batch, capacity, self.kind, self.device)
    }

    /// Bytes of weights read to decode one token (embedding row excluded, LM head included).
    pub fn weight_bytes_per_token(&self) -> usize {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed).bytes();
        let norms = (2 * self.layers.len() + 1) * self.cfg.hidden_size * self.kind.elt_size_in_bytes();
        let layers: usize = self
            .layers
            .iter()
            .map(|b| b.attn.qkv.bytes() + b.attn.o.bytes() + b.mlp.gate_up.bytes() + b.mlp.down.bytes())
            .sum();
        head + layers + norms
    }

    fn tables(&self, pos: usize, t: usize) -> StepTables {
        let (cos, sin) = rope::cos_sin(&self.inv_freq, pos, t);
        let cos = (cos.unsqueeze(1) * &self.cos_scale).to_kind(self.kind);
        let sin = (sin.unsqueeze(1) * &self.sin_scale).to_kind(self.kind);
        // Only a multi-token step after cached positions needs the explicit mask (see Attention).
        let mask = (t > 1 && pos > 0).then(|| {
            let g = (self.cfg.num_heads / self.cfg.num_kv_heads) as i64;
            let total = (pos + t) as i64;
            let rows = Tensor::arange_start(pos as i64, total, (Kind::Int64, self.device)).unsqueeze(1);
            let cols = Tensor::arange(total, (Kind::Int64, self.device)).unsqueeze(0);
            let m = Tensor::zeros([t as i64, total], (self.kind, self.device))
                .masked_fill(&cols.gt_tensor(&rows), f64::NEG_INFINITY);
            m.repeat([g, 1])
        });
        StepTables { cos, sin, mask }
    }

    /// Runs `tokens` (`[B, T]`, int64) at positions `cache.len()..`, appending to the cache.
    ///
    /// Panics if the cache is too small or the batch differs; callers size the cache up front
    /// (see [`Llama::new_cache`]).
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache, logits: Logits) -> Tensor {
        self.forward_skipping(tokens, cache, logits, &[])
    }

    /// As [`Llama::forward`], with the layers whose index is in `skip` left out (their residual
    /// stream passes through unchanged; their cache entries are not written).
    pub fn forward_skipping(&self, tokens: &Tensor, cache: &mut KvCache, logits: Logits, skip: &[usize]) -> Tensor {
        let (b, t) = (tokens.size()[0], tokens.size()[1] as usize);
        assert_eq!(b as usize, cache.batch, "batch does not match the cache");
        assert!(cache.len + t <= cache.capacity, "KV cache capacity {} exceeded", cache.capacity);
        if t == 1 && b == 1 && logits == Logits::Last && skip.is_empty() {
            if let Some(plan) = &self.decode_plan {
                let token = tokens.reshape([-1]).int64_value(&[0]);
                if let Some(out) = usize::try_from(token).ok().and_then(|tok| plan.step(self, tok, cache)) {
                    return out;
                }
            }
        }
        let pos = cache.len;
        // Prefill is compute-bound GEMM: torch gets the whole CPU thread budget for it.
        let _threads = (t > 1 && self.device == Device::Cpu).then(gemv::TorchThreads::lend);
        let tables = self.tables(pos, t);
        let ids = tokens.reshape([-1]);
        let mut x = self.embed.rows(&ids).view([b, t as i64, -1]);
        for (i, (block, layer_cache)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            if !skip.contains(&i) {
                x = block.forward(&x, layer_cache, pos as i64, &tables);
            }
        }
        cache.len += t;
        let x = match logits {
            Logits::Last => x.select(1, t as i64 - 1),
            Logits::All => x,
        };
        let x = self.norm.forward(&x);
        self.lm_head.as_ref().unwrap_or(&self.embed).forward(&x)
    }
}
