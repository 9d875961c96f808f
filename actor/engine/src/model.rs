//! The LLaMA model: the embedding, a stack of [`Block`]s ([`crate::block`]) and the head, built
//! from HF parameter names ([`Llama::load`]); the [`KvCache`] is separate and passed by `&mut`.
//! Batch-1 decode on CPU goes through [`crate::cpu_decode`]'s torch-free plan where it applies.
//!
//! A model holds any number of [`Profile`]s besides the dense one: per layer the dense block, a
//! pruned block of its own (fewer heads or FFN channels, sliced once and contiguous) or nothing
//! (skipped), and optionally an attention window. Switching profiles is a pointer change; the
//! dense weights are never written.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::block::{
    Block, KeySpan, KvWindow, LayerCapture, LayerWeights, Linear, RmsNorm, StepTables,
};
use crate::config::Config;
use crate::cpu_decode::{CacheView, DecodePlan, Parts};
use crate::error::{Error, Result};
use crate::gemv;
use crate::rope;
use crate::weights::SafeTensorFiles;

/// The key/value cache of every layer of one profile, preallocated to a fixed capacity.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
    batch: usize,
    profile: ProfileId,
}

impl KvCache {
    /// A cache for `cfg`'s dense shape.
    pub fn new(cfg: &Config, batch: usize, capacity: usize, kind: Kind, device: Device) -> Self {
        Self::for_kv_heads(
            &vec![cfg.num_kv_heads; cfg.num_layers],
            cfg.head_dim,
            batch,
            capacity,
            kind,
            device,
            ProfileId::DENSE,
        )
    }

    fn for_kv_heads(
        kv_heads: &[usize],
        head_dim: usize,
        batch: usize,
        capacity: usize,
        kind: Kind,
        device: Device,
        profile: ProfileId,
    ) -> Self {
        let layers = kv_heads
            .iter()
            .map(|&n| {
                let shape = [batch as i64, n as i64, capacity as i64, head_dim as i64];
                (Tensor::zeros(shape, (kind, device)), Tensor::zeros(shape, (kind, device)))
            })
            .collect();
        Self { layers, len: 0, capacity, batch, profile }
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
    /// The profile this cache was made for.
    pub fn profile(&self) -> ProfileId {
        self.profile
    }
    /// Bytes the cache holds.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| (k.numel() + v.numel()) * k.kind().elt_size_in_bytes())
            .sum()
    }
    /// `tokens` through the CPU decode plan at this (batch-1) cache's next positions; the
    /// cache advances by them when the plan ran.
    fn cpu_steps(&mut self, plan: &DecodePlan, tokens: &[usize]) -> Option<Tensor> {
        if self.batch != 1 {
            return None;
        }
        let view = CacheView { layers: &mut self.layers, len: self.len, capacity: self.capacity };
        let out = plan.steps(tokens, view)?;
        self.len += tokens.len();
        Some(out)
    }
    /// Keeps only the first `len` positions (a verification pass rolls back the drafted tokens
    /// it rejected; their entries are overwritten by the next pass).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    /// Forgets every cached position (the buffers are reused).
    pub fn reset(&mut self) {
        self.len = 0;
    }
}

/// Most positions one [`Llama::verify`] pass takes.
pub const MAX_VERIFY: usize = casrap_common::action::MAX_DRAFT + 1;

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position: `[B, V]` (what generation needs).
    Last,
    /// Every position: `[B, T, V]` (perplexity, teacher forcing).
    All,
}

/// Identifies a profile of one model; [`ProfileId::DENSE`] is the unpruned model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId(pub u64);

impl ProfileId {
    pub const DENSE: ProfileId = ProfileId(0);
}

/// What a profile runs at one layer.
pub enum LayerRef {
    /// The dense block of that layer (shared, not copied).
    Dense,
    /// A pruned block the profile owns.
    Own(Block),
    /// Nothing: the residual stream passes through.
    Skip,
}

/// A pruned variant of the model.
pub struct Profile {
    pub name: String,
    layers: Vec<LayerRef>,
    kv_window: Option<KvWindow>,
    /// Activation sparsity (dense blocks with thresholded inputs).
    sparsity: Option<Sparsity>,
    decode_plan: Option<DecodePlan>,
}

/// Activation sparsity of a profile: per layer, the magnitude below which the inputs of its
/// qkv, o, gate_up and down projections are zeroed (in that order; 0 keeps every input), and the
/// share of inputs the thresholds were fitted to skip.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sparsity {
    pub level: f64,
    pub thresholds: Vec<[f32; 4]>,
}

impl Profile {
    pub fn layers(&self) -> &[LayerRef] {
        &self.layers
    }
    pub fn kv_window(&self) -> Option<KvWindow> {
        self.kv_window
    }
    pub fn sparsity(&self) -> Option<&Sparsity> {
        self.sparsity.as_ref()
    }
    /// Bytes of weights this profile holds beyond the dense model (its own pruned blocks).
    pub fn own_bytes(&self) -> usize {
        self.layers.iter().map(|l| if let LayerRef::Own(b) = l { b.bytes() } else { 0 }).sum()
    }
}

/// A LLaMA causal language model.
pub struct Llama {
    cfg: Config,
    embed: Linear,
    lm_head: Option<Linear>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    inv_freq: Tensor,
    /// RoPE factors per block shape `(heads, kv_heads)` (see [`rope_scales`]).
    rope: HashMap<(i64, i64), (Tensor, Tensor)>,
    kind: Kind,
    device: Device,
    /// Profile 0 is the dense model.
    profiles: Vec<(ProfileId, Profile)>,
    active: usize,
    next_id: u64,
    /// Torch-free batch-1 decode for f32 and bf16 on CPU (see [`cpu_decode`]); off when false.
    cpu_decode: bool,
    /// Input-major (`[in, out]`) copies of every dense block's qkv, o, gate_up and down, made
    /// when the first sparse profile is added (the sparse kernel skips their rows).
    input_major: Vec<[Tensor; 4]>,
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
    pub fn from_hf(
        cfg: &Config,
        params: &impl ParamSource,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let (d, f) = (cfg.hidden_size as i64, cfg.intermediate_size as i64);
        let (nh, nkv, hd) = (cfg.num_heads as i64, cfg.num_kv_heads as i64, cfg.head_dim as i64);
        let get = |name: &str, shape: &[i64]| params.get(name, shape, kind, device);
        let embed = get("model.embed_tokens.weight", &[cfg.vocab_size as i64, d])?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(get("lm_head.weight", &[cfg.vocab_size as i64, d])?)
        };
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

    /// The HF-named tensors (fused projections split again), in [`crate::config::hf_parameter_shapes`] order.
    pub fn to_hf(&self, cfg: &Config) -> Vec<(String, Tensor)> {
        let (nh, nkv, hd, f) = (
            cfg.num_heads as i64,
            cfg.num_kv_heads as i64,
            cfg.head_dim as i64,
            cfg.intermediate_size as i64,
        );
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.shallow_clone())];
        for (i, l) in self.layers.iter().enumerate() {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            out.extend([
                (p("input_layernorm.weight"), l.input_norm.shallow_clone()),
                (p("self_attn.q_proj.weight"), l.qkv.narrow(0, 0, nh * hd).contiguous()),
                (p("self_attn.k_proj.weight"), l.qkv.narrow(0, nh * hd, nkv * hd).contiguous()),
                (
                    p("self_attn.v_proj.weight"),
                    l.qkv.narrow(0, (nh + nkv) * hd, nkv * hd).contiguous(),
                ),
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

/// RoPE table factors for a block shape: `[1, H, 1]` (q heads scaled by 1/sqrt(head_dim)) and
/// `[1, H, head_dim]` (the same times rotate_half's sign).
fn rope_scales(nh: i64, nkv: i64, hd: i64, device: Device) -> (Tensor, Tensor) {
    let scale = 1.0 / (hd as f64).sqrt();
    let head_scale: Vec<f32> =
        (0..nh + nkv).map(|h| if h < nh { scale as f32 } else { 1.0 }).collect();
    let cos_scale = Tensor::from_slice(&head_scale).view([1, nh + nkv, 1]).to_device(device);
    let sign: Vec<f32> = (0..hd).map(|j| if j < hd / 2 { -1.0 } else { 1.0 }).collect();
    let sin_scale = &cos_scale * Tensor::from_slice(&sign).view([1, 1, hd]).to_device(device);
    (cos_scale, sin_scale)
}

impl Llama {
    /// Builds the model from HF-named parameters (`model.layers.N.self_attn.q_proj.weight`, ...),
    /// with the torch-free decode step where it applies.
    pub fn load(
        cfg: &Config,
        params: &impl ParamSource,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        if device == Device::Cpu {
            gemv::ensure_configured();
        }
        let mut model =
            Self::from_weights(cfg, Weights::from_hf(cfg, params, kind, device)?, kind, device);
        model.cpu_decode = true;
        model.rebuild_plan(0);
        Ok(model)
    }

    /// Wraps fused weights as they are (no copy, no decode plan): gradients flow through the
    /// forward pass to them, which is how training reuses this model.
    pub fn from_weights(cfg: &Config, w: Weights, kind: Kind, device: Device) -> Self {
        let g = cfg.group_size();
        let kv_of_head: Vec<usize> = (0..cfg.num_heads).map(|h| h / g).collect();
        let blocks: Vec<Block> = w
            .layers
            .into_iter()
            .map(|l| Block::from_weights(l, cfg.rms_norm_eps, cfg.head_dim, kv_of_head.clone()))
            .collect();
        let _guard = tch::no_grad_guard();
        let dense = Profile {
            name: "none".into(),
            layers: blocks.iter().map(|_| LayerRef::Dense).collect(),
            kv_window: None,
            sparsity: None,
            decode_plan: None,
        };
        let mut rope = HashMap::new();
        let (nh, nkv) = (cfg.num_heads as i64, cfg.num_kv_heads as i64);
        rope.insert((nh, nkv), rope_scales(nh, nkv, cfg.head_dim as i64, device));
        Self {
            cfg: cfg.clone(),
            embed: Linear::new(w.embed),
            lm_head: w.lm_head.map(Linear::new),
            blocks,
            norm: RmsNorm::new(w.norm, cfg.rms_norm_eps),
            inv_freq: rope::inv_freq(cfg, device),
            rope,
            kind,
            device,
            profiles: vec![(ProfileId::DENSE, dense)],
            active: 0,
            next_id: 1,
            cpu_decode: false,
            input_major: Vec::new(),
        }
    }

    fn rebuild_plan(&mut self, idx: usize) {
        let plan = if self.cpu_decode {
            // SAFETY: the plan lives in the profile, beside (or inside the model with) the tensors
            // it views; profiles and weights are only replaced or dropped through `&mut self`,
            // which drops or rebuilds the plan with them.
            #[allow(unsafe_code)]
            unsafe {
                DecodePlan::build(&self.parts_of(idx))
            }
        } else {
            None
        };
        self.profiles[idx].1.decode_plan = plan;
    }

    pub(crate) fn parts_of(&self, idx: usize) -> Parts<'_> {
        let p = &self.profiles[idx].1;
        Parts {
            cfg: &self.cfg,
            embed: self.embed.weight(),
            head: self.lm_head.as_ref().unwrap_or(&self.embed).weight(),
            norm: &self.norm.weight,
            layers: p
                .layers
                .iter()
                .zip(&self.blocks)
                .map(|(r, dense)| match r {
                    LayerRef::Dense => Some(dense),
                    LayerRef::Own(b) => Some(b),
                    LayerRef::Skip => None,
                })
                .collect(),
            inv_freq: &self.inv_freq,
            kv_window: p.kv_window,
            sparse: match &p.sparsity {
                Some(sp) if self.input_major.len() == sp.thresholds.len() => self
                    .input_major
                    .iter()
                    .zip(&sp.thresholds)
                    .map(|(w, &t)| Some((w, t)))
                    .collect(),
                _ => Vec::new(),
            },
        }
    }

    /// Turns the torch-free CPU decode path off (so tests can compare it with the torch path).
    pub fn disable_cpu_decode(&mut self) {
        self.cpu_decode = false;
        for (_, p) in &mut self.profiles {
            p.decode_plan = None;
        }
    }

    /// Turns the torch-free CPU decode path on for every profile (where it applies).
    pub fn enable_cpu_decode(&mut self) {
        self.cpu_decode = true;
        for idx in 0..self.profiles.len() {
            self.rebuild_plan(idx);
        }
    }

    /// Whether one-token steps of the active profile take the torch-free CPU path.
    pub fn uses_cpu_decode(&self) -> bool {
        self.profiles[self.active].1.decode_plan.is_some()
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
    /// The dense blocks, one per layer.
    pub fn dense_blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Adds a profile (one entry per layer) and builds its decode plan, so the first use is warm.
    pub fn add_profile(
        &mut self,
        name: &str,
        layers: Vec<LayerRef>,
        kv_window: Option<KvWindow>,
    ) -> Result<ProfileId> {
        let n = self.cfg.num_layers;
        if layers.len() != n {
            return Err(Error::arg(
                "profile",
                format!("`{name}` has {} layers, the model {n}", layers.len()),
            ));
        }
        if layers.iter().all(|l| matches!(l, LayerRef::Skip)) {
            return Err(Error::arg("profile", format!("`{name}` skips every layer")));
        }
        if kv_window.is_some_and(|w| w.window == 0) {
            return Err(Error::arg(
                "profile",
                format!("`{name}`: the attention window must keep at least the current token"),
            ));
        }
        for l in &layers {
            if let LayerRef::Own(b) = l {
                let (nh, nkv) = (b.attn.num_heads, b.attn.num_kv_heads);
                if nh == 0 || b.mlp.intermediate == 0 {
                    return Err(Error::arg(
                        "profile",
                        format!("`{name}` has a block with no heads or no FFN channels"),
                    ));
                }
                self.rope
                    .entry((nh, nkv))
                    .or_insert_with(|| rope_scales(nh, nkv, self.cfg.head_dim as i64, self.device));
            }
        }
        let id = ProfileId(self.next_id);
        self.next_id += 1;
        self.profiles.push((
            id,
            Profile { name: name.into(), layers, kv_window, sparsity: None, decode_plan: None },
        ));
        self.rebuild_plan(self.profiles.len() - 1);
        Ok(id)
    }

    /// Adds an activation-sparsity profile: the dense blocks with `sparsity`'s thresholds on their
    /// inputs. The first one makes input-major copies of the block matrices (see
    /// [`Llama::input_major_bytes`]), shared by every sparse profile.
    pub fn add_sparse_profile(&mut self, name: &str, sparsity: Sparsity) -> Result<ProfileId> {
        let n = self.cfg.num_layers;
        if sparsity.thresholds.len() != n {
            return Err(Error::arg(
                "profile",
                format!(
                    "`{name}` has thresholds for {} layers, the model {n}",
                    sparsity.thresholds.len()
                ),
            ));
        }
        if let Some((l, t)) = sparsity
            .thresholds
            .iter()
            .enumerate()
            .find(|(_, t)| t.iter().any(|v| !v.is_finite() || *v < 0.0))
        {
            return Err(Error::arg(
                "profile",
                format!("`{name}`: layer {l} has thresholds {t:?}; each must be finite and >= 0"),
            ));
        }
        if self.input_major.is_empty() {
            let _guard = tch::no_grad_guard();
            self.input_major = self
                .blocks
                .iter()
                .map(|b| {
                    [b.qkv_weight(), b.o_weight(), b.gate_up_weight(), b.down_weight()]
                        .map(|w| w.tr().contiguous())
                })
                .collect();
        }
        let id = ProfileId(self.next_id);
        self.next_id += 1;
        let layers = (0..n).map(|_| LayerRef::Dense).collect();
        self.profiles.push((
            id,
            Profile {
                name: name.into(),
                layers,
                kv_window: None,
                sparsity: Some(sparsity),
                decode_plan: None,
            },
        ));
        self.rebuild_plan(self.profiles.len() - 1);
        Ok(id)
    }

    /// Bytes of the input-major copies sparse profiles read (0 until the first is added).
    pub fn input_major_bytes(&self) -> usize {
        self.input_major.iter().flatten().map(|t| t.numel() * t.kind().elt_size_in_bytes()).sum()
    }

    /// Weight bytes profile `id`'s CPU decode steps have read and the positions they decoded,
    /// since its plan was built (`None` without the CPU decode path).
    pub fn decode_reads(&self, id: ProfileId) -> Option<(u64, u64)> {
        let idx = self.index_of(id).ok()?;
        self.profiles[idx].1.decode_plan.as_ref().map(DecodePlan::reads)
    }

    /// Weight bytes the active profile's decode steps read per position, as counted by the CPU
    /// decode path since the profile was built (a sparse profile reads only the rows it keeps);
    /// `None` without that path or before its first step.
    pub fn measured_weight_bytes_per_token(&self) -> Option<f64> {
        self.profiles[self.active].1.decode_plan.as_ref()?.bytes_per_position()
    }

    fn index_of(&self, id: ProfileId) -> Result<usize> {
        self.profiles
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or_else(|| Error::arg("profile", format!("no profile {id:?}")))
    }

    /// Drops a profile and its pruned weights. The dense and the active profile cannot be removed.
    pub fn remove_profile(&mut self, id: ProfileId) -> Result<()> {
        let idx = self.index_of(id)?;
        if idx == 0 || idx == self.active {
            return Err(Error::arg("profile", format!("profile {id:?} is dense or active")));
        }
        self.profiles.remove(idx);
        if self.active > idx {
            self.active -= 1;
        }
        Ok(())
    }

    /// Makes `id` the profile every forward pass runs (a pointer change: nothing is copied).
    pub fn activate(&mut self, id: ProfileId) -> Result<()> {
        self.active = self.index_of(id)?;
        Ok(())
    }

    /// Back to the dense model.
    pub fn activate_dense(&mut self) {
        self.active = 0;
    }

    pub fn active(&self) -> ProfileId {
        self.profiles[self.active].0
    }

    pub fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.iter().find(|(i, _)| *i == id).map(|(_, p)| p)
    }

    /// Every profile but the dense one, oldest first.
    pub fn profile_ids(&self) -> Vec<ProfileId> {
        self.profiles.iter().skip(1).map(|(i, _)| *i).collect()
    }

    /// Per layer, the block `p` runs there (`None`: skipped).
    fn layers_of<'a>(&'a self, p: &'a Profile) -> impl Iterator<Item = Option<&'a Block>> {
        p.layers.iter().zip(&self.blocks).map(|(r, dense)| match r {
            LayerRef::Dense => Some(dense),
            LayerRef::Own(b) => Some(b),
            LayerRef::Skip => None,
        })
    }

    fn active_layers(&self) -> impl Iterator<Item = Option<&Block>> {
        self.layers_of(&self.profiles[self.active].1)
    }

    /// A cache for `batch` sequences of up to `capacity` positions of the active profile.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache {
        let kv: Vec<usize> =
            self.active_layers().map(|b| b.map_or(0, |b| b.attn.num_kv_heads as usize)).collect();
        KvCache::for_kv_heads(
            &kv,
            self.cfg.head_dim,
            batch,
            capacity,
            self.kind,
            self.device,
            self.active(),
        )
    }

    /// Bytes of weights the active profile reads to decode one token (embedding row excluded, LM
    /// head included). A sparse profile counts the share of block weights its level keeps (what
    /// it reads is counted by [`Llama::measured_weight_bytes_per_token`]).
    pub fn weight_bytes_per_token(&self) -> usize {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed).bytes();
        let norm = self.norm.weight.numel() * self.kind.elt_size_in_bytes();
        let blocks = self.active_layers().flatten().map(Block::bytes).sum::<usize>();
        let kept = match &self.profiles[self.active].1.sparsity {
            Some(s) => 1.0 - s.level.clamp(0.0, 1.0),
            None => 1.0,
        };
        head + norm + (blocks as f64 * kept).round() as usize
    }

    /// Bytes of K/V the active profile reads for one decode step after `context` positions.
    pub fn kv_bytes_per_token(&self, context: usize) -> usize {
        let keys = match self.profiles[self.active].1.kv_window {
            Some(w) => context.min(w.sinks + w.window),
            None => context,
        };
        let per = 2 * keys * self.cfg.head_dim * self.kind.elt_size_in_bytes();
        self.active_layers().flatten().map(|b| b.attn.num_kv_heads as usize * per).sum()
    }

    fn tables(&self, pos: usize, t: usize, p: &Profile) -> StepTables {
        let (cos, sin) = rope::cos_sin(&self.inv_freq, pos, t);
        let (cos, sin) = (cos.unsqueeze(1), sin.unsqueeze(1));
        let mut rope = HashMap::new();
        for block in self.layers_of(p).flatten() {
            let key = (block.attn.num_heads, block.attn.num_kv_heads);
            rope.entry(key).or_insert_with(|| {
                let (cs, ss) = &self.rope[&key];
                ((&cos * cs).to_kind(self.kind), (&sin * ss).to_kind(self.kind))
            });
        }
        let len = pos + t;
        let causal_mask = |visible: &dyn Fn(usize, usize) -> bool| {
            let m: Vec<u8> = (0..t)
                .flat_map(|i| (0..len).map(move |j| (i, j)))
                .map(|(i, j)| u8::from(visible(pos + i, j)))
                .collect();
            Tensor::from_slice(&m)
                .view([t as i64, len as i64])
                .to_kind(Kind::Bool)
                .to_device(self.device)
        };
        let all = KeySpan::All { len: len as i64 };
        match p.kv_window {
            None if t == 1 => StepTables { rope, mask: None, causal: false, keys: all },
            None if pos == 0 => StepTables { rope, mask: None, causal: true, keys: all },
            None => StepTables {
                rope,
                mask: Some(causal_mask(&|i, j| j <= i)),
                causal: false,
                keys: all,
            },
            Some(w) if t == 1 => {
                let keys = if len <= w.sinks + w.window {
                    all
                } else {
                    KeySpan::SinksAndRecent {
                        sinks: w.sinks as i64,
                        start: (len - w.window) as i64,
                        len: len as i64,
                    }
                };
                StepTables { rope, mask: None, causal: false, keys }
            }
            Some(w) => StepTables {
                rope,
                mask: Some(causal_mask(&|i, j| w.visible(i, j))),
                causal: false,
                keys: all,
            },
        }
    }

    /// Runs `tokens` (`[B, T]`, int64) at positions `cache.len()..`, appending to the cache.
    ///
    /// Panics if the cache is too small, the batch differs or the cache was made for another
    /// profile; callers size the cache up front (see [`Llama::new_cache`]).
    pub fn forward(&self, tokens: &Tensor, cache: &mut KvCache, logits: Logits) -> Tensor {
        let (b, t) = (tokens.size()[0], tokens.size()[1] as usize);
        let (id, profile) = &self.profiles[self.active];
        assert_eq!(cache.profile, *id, "the KV cache was made for another profile");
        assert_eq!(b as usize, cache.batch, "batch does not match the cache");
        assert!(cache.len + t <= cache.capacity, "KV cache capacity {} exceeded", cache.capacity);
        if t == 1 && b == 1 && logits == Logits::Last {
            if let Some(plan) = &profile.decode_plan {
                let token = tokens.reshape([-1]).int64_value(&[0]);
                if let Some(out) =
                    usize::try_from(token).ok().and_then(|tok| cache.cpu_steps(plan, &[tok]))
                {
                    return out;
                }
            }
        }
        let pos = cache.len;
        // Prefill is compute-bound GEMM: torch gets the whole CPU thread budget for it.
        let _threads = (t > 1 && self.device == Device::Cpu).then(gemv::TorchThreads::lend);
        let tables = self.tables(pos, t, profile);
        let ids = tokens.reshape([-1]);
        let mut x = self.embed.rows(&ids).view([b, t as i64, -1]);
        let thresholds = |i: usize| profile.sparsity.as_ref().and_then(|s| s.thresholds.get(i));
        for (i, (block, layer_cache)) in
            self.layers_of(profile).zip(cache.layers.iter_mut()).enumerate()
        {
            if let Some(block) = block {
                x = block.forward(&x, layer_cache, pos as i64, &tables, None, thresholds(i));
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

    /// Logits `[T, V]` (the model's dtype) of `tokens` at positions `cache.len()..` of a batch-1
    /// cache, appending their K/V: the verification pass of speculative decoding. On the CPU
    /// decode path every weight is read once for all `T` positions and each position's logits
    /// are bit-identical to single decode steps', so greedy verification is lossless; elsewhere
    /// it is one torch forward. Roll back rejected positions with [`KvCache::truncate`].
    pub fn verify(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let (id, profile) = &self.profiles[self.active];
        let t = tokens.len();
        if t == 0 || t > MAX_VERIFY {
            return Err(Error::arg(
                "verify",
                format!("{t} positions; a verification pass takes 1 to {MAX_VERIFY}"),
            ));
        }
        if cache.profile != *id || cache.batch != 1 || cache.len + t > cache.capacity {
            return Err(Error::arg(
                "verify",
                format!(
                    "the cache (profile {:?}, batch {}, {} of {} positions used) cannot take {t} more for profile {id:?}",
                    cache.profile, cache.batch, cache.len, cache.capacity
                ),
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&v| v as usize >= self.cfg.vocab_size) {
            return Err(Error::arg("verify", format!("token id {bad} is outside the vocabulary")));
        }
        let _guard = tch::no_grad_guard();
        if let Some(plan) = &profile.decode_plan {
            let ids: Vec<usize> = tokens.iter().map(|&v| v as usize).collect();
            if let Some(out) = cache.cpu_steps(plan, &ids) {
                return Ok(out);
            }
        }
        let ids: Vec<i64> = tokens.iter().map(|&v| i64::from(v)).collect();
        let ids = Tensor::from_slice(&ids).to_device(self.device).view([1, -1]);
        Ok(self.forward(&ids, cache, Logits::All).squeeze_dim(0))
    }

    /// The dense model's inputs of every block matrix over `tokens` (`[1, T]`): per layer the
    /// magnitudes of the inputs of qkv, o, gate_up and down, each flattened, f32 on CPU. What
    /// activation sparsity's thresholds are fitted on.
    pub fn input_magnitudes(&self, tokens: &Tensor) -> Vec<[Tensor; 4]> {
        let mut out = Vec::with_capacity(self.blocks.len());
        let _ = self.dense_pass(tokens, |_, block, x, layer_cache, tables| {
            let a = block.input_norm.forward(x);
            let ctx = block.attn.context(&a, layer_cache, 0, tables);
            let h = x + block.attn.o.forward(&ctx);
            let g = block.post_norm.forward(&h);
            let hidden = block.mlp.hidden(&g);
            out.push(
                [&a, &ctx, &g, &hidden]
                    .map(|v| v.to_kind(Kind::Float).abs().reshape([-1]).to_device(Device::Cpu)),
            );
            &h + block.mlp.down.forward(&hidden)
        });
        out
    }

    /// What greedy sparsity allocation measures: runs the dense model over `tokens` (`[B, T]`,
    /// from position 0) and, at each layer, calls `visit(layer, error)`, where `error(t)` is the
    /// block's output error under activation-sparsity thresholds `t` (qkv, o, gate_up, down) on
    /// the dense block's own input: `|y_t - y|^2 / |y - x|^2`, the squared deviation of the
    /// sparse block's output relative to what the dense block adds to its input.
    pub fn block_errors(
        &self,
        tokens: &Tensor,
        mut visit: impl FnMut(usize, &mut dyn FnMut(&[f32; 4]) -> f64),
    ) {
        let _ = self.dense_pass(tokens, |i, block, x, layer_cache, tables| {
            let y = block.forward(x, layer_cache, 0, tables, None, None);
            let sq =
                |d: Tensor| d.to_kind(Kind::Float).square().sum(Kind::Double).double_value(&[]);
            let added = sq(&y - x).max(f64::MIN_POSITIVE);
            let mut error = |t: &[f32; 4]| {
                // Position 0 again: the block rewrites the K/V it wrote for the dense output.
                let sparse = block.forward(x, layer_cache, 0, tables, None, Some(t));
                sq(sparse - &y) / added
            };
            visit(i, &mut error);
            y
        });
    }

    /// Runs the dense blocks over `tokens` (`[B, T]`, from position 0, torch given the whole
    /// thread budget), each through `block(index, block, input, its cache, tables)`, which
    /// returns the block's output; returns the last block's output.
    fn dense_pass(
        &self,
        tokens: &Tensor,
        mut block: impl FnMut(usize, &Block, &Tensor, &mut (Tensor, Tensor), &StepTables) -> Tensor,
    ) -> Tensor {
        let _guard = tch::no_grad_guard();
        let (b, t) = (tokens.size()[0], tokens.size()[1] as usize);
        let tables = self.tables(0, t, &self.profiles[0].1);
        let mut cache = KvCache::new(&self.cfg, b as usize, t, self.kind, self.device);
        let _threads = (self.device == Device::Cpu).then(gemv::TorchThreads::lend);
        let mut x = self.embed.rows(&tokens.reshape([-1])).view([b, t as i64, -1]);
        for (i, (dense, layer_cache)) in self.blocks.iter().zip(cache.layers.iter_mut()).enumerate()
        {
            x = block(i, dense, &x, layer_cache, &tables);
        }
        x
    }

    /// A dense forward pass over `tokens` (`[B, T]`) that adds each layer's activation statistics
    /// to `captures` (one per layer, from [`LayerCapture::zeros`]). Returns the logits of every position.
    pub fn forward_capture(&self, tokens: &Tensor, captures: &mut [LayerCapture]) -> Tensor {
        let x = self.dense_pass(tokens, |i, block, x, layer_cache, tables| {
            block.forward(x, layer_cache, 0, tables, captures.get_mut(i), None)
        });
        let _guard = tch::no_grad_guard();
        let x = self.norm.forward(&x);
        self.lm_head.as_ref().unwrap_or(&self.embed).forward(&x)
    }
}
