//! The layers of a LLaMA block in tch, laid out like candle's llama: [`Linear`], [`RmsNorm`],
//! [`Mlp`], [`Attention`] and the [`Block`] they make, each built from fused HF weights
//! ([`LayerWeights`]). The model (`model.rs`) stacks blocks and owns the KV cache each forward
//! writes through; the CPU decode path (`cpu_decode.rs`) reads the blocks' weights.
//!
//! Decode at batch 1 is memory-bound on CPU and dispatch-bound for small models, so the layout is
//! chosen for it: q/k/v are one fused projection and gate/up another (one weight read, one kernel
//! call each), RoPE for q and k is one fused step with the attention scale folded into q's
//! tables, and grouped-query attention never copies K/V per query head.

use std::collections::HashMap;

use tch::{Device, Kind, Tensor};

use crate::gemv;
/// A bias-free linear layer holding HF's `[out, in]` weight, contiguous. A single row on CPU (batch-1
/// decode) goes through [`gemv`], everything else through torch.
#[derive(Debug)]
pub struct Linear {
    pub(crate) weight: Tensor,
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
    pub(crate) weight: Tensor,
    pub(crate) eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
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
    pub(crate) gate_up: Linear,
    pub(crate) down: Linear,
    pub(crate) intermediate: i64,
}

impl Mlp {
    /// `silu(gate) * up`: the input of the down projection.
    pub(crate) fn hidden(&self, x: &Tensor) -> Tensor {
        let gu = self.gate_up.forward(x);
        let f = self.intermediate;
        gu.narrow(-1, 0, f).silu() * gu.narrow(-1, f, f)
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.down.forward(&self.hidden(x))
    }
}

/// Attention restricted to the first `sinks` positions and the last `window` ones (the query's
/// own position included): StreamingLLM's attention sinks plus a recent window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KvWindow {
    pub sinks: usize,
    pub window: usize,
}

impl KvWindow {
    /// Whether the query at absolute position `i` sees the key at position `j`.
    pub fn visible(&self, i: usize, j: usize) -> bool {
        j <= i && (j < self.sinks || j + self.window > i)
    }
}

/// Per-forward tables shared by every layer: RoPE per attention shape, the mask, which keys are read.
pub struct StepTables {
    /// `(num_heads, num_kv_heads) -> (cos, sin)`, each `[T, H, head_dim]` with q's scale folded in.
    pub(crate) rope: HashMap<(i64, i64), (Tensor, Tensor)>,
    /// Boolean `[T, keys]` (true = attend) when neither "all keys" nor plain causality describes it.
    pub(crate) mask: Option<Tensor>,
    /// Plain causal attention from position 0 (torch's fused causal kernel).
    pub(crate) causal: bool,
    /// Key positions read: `0..len`, or (one-token steps in a window) `0..sinks` then `start..len`.
    pub(crate) keys: KeySpan,
}

#[derive(Clone, Copy)]
pub(crate) enum KeySpan {
    All { len: i64 },
    SinksAndRecent { sinks: i64, start: i64, len: i64 },
}

/// Grouped-query self-attention with fused qkv projection. After head pruning a KV head may serve
/// fewer query heads than the others; then `kv_index` maps each query head to its KV head.
#[derive(Debug)]
pub struct Attention {
    pub(crate) qkv: Linear,
    pub(crate) o: Linear,
    pub(crate) num_heads: i64,
    pub(crate) num_kv_heads: i64,
    pub(crate) head_dim: i64,
    /// For each query head, the index of its KV head (within this block's KV heads).
    pub(crate) kv_of_head: Vec<usize>,
    /// `kv_of_head` as an int64 tensor when the groups are not all the same size.
    pub(crate) kv_index: Option<Tensor>,
}

impl Attention {
    pub(crate) fn new(
        qkv: Linear,
        o: Linear,
        head_dim: i64,
        kv_of_head: Vec<usize>,
        device: Device,
    ) -> Self {
        let num_heads = kv_of_head.len() as i64;
        let num_kv_heads = kv_of_head.iter().max().map_or(0, |&m| m + 1) as i64;
        let uniform = num_kv_heads > 0 && num_heads % num_kv_heads == 0 && {
            let g = (num_heads / num_kv_heads) as usize;
            kv_of_head.iter().enumerate().all(|(h, &k)| k == h / g)
        };
        let kv_index = (!uniform).then(|| {
            let idx: Vec<i64> = kv_of_head.iter().map(|&k| k as i64).collect();
            Tensor::from_slice(&idx).to_device(device)
        });
        Self { qkv, o, num_heads, num_kv_heads, head_dim, kv_of_head, kv_index }
    }

    /// The attention output before `o_proj` (`[B, T, heads * head_dim]`).
    pub(crate) fn context(
        &self,
        x: &Tensor,
        layer_cache: &mut (Tensor, Tensor),
        pos: i64,
        tables: &StepTables,
    ) -> Tensor {
        let (b, t) = (x.size()[0], x.size()[1]);
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let qkv = self.qkv.forward(x);
        // RoPE on q and k together: rot = qk*cos + swap_halves(qk)*sin, where the sign of
        // rotate_half and q's 1/sqrt(head_dim) are folded into the tables.
        let (cos, sin) = &tables.rope[&(nh, nkv)];
        let qk = qkv.narrow(-1, 0, (nh + nkv) * hd).view([b, t, nh + nkv, hd]);
        let swapped = qk.view([b, t, nh + nkv, 2, hd / 2]).flip([3]).view([b, t, nh + nkv, hd]);
        let mut rot = &qk * cos;
        let _ = rot.addcmul_(&swapped, sin);
        let q = rot.narrow(2, 0, nh).transpose(1, 2);
        let k = rot.narrow(2, nh, nkv).transpose(1, 2);
        let v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).view([b, t, nkv, hd]).transpose(1, 2);
        let (ck, cv) = layer_cache;
        ck.narrow(2, pos, t).copy_(&k);
        cv.narrow(2, pos, t).copy_(&v);
        let (keys, values) = match tables.keys {
            KeySpan::All { len } => (ck.narrow(2, 0, len), cv.narrow(2, 0, len)),
            KeySpan::SinksAndRecent { sinks, start, len } => (
                Tensor::cat(&[ck.narrow(2, 0, sinks), ck.narrow(2, start, len - start)], 2),
                Tensor::cat(&[cv.narrow(2, 0, sinks), cv.narrow(2, start, len - start)], 2),
            ),
        };
        let (keys, values, gqa) = match &self.kv_index {
            Some(idx) => (keys.index_select(1, idx), values.index_select(1, idx), false),
            None => (keys, values, nh != nkv),
        };
        // q already carries 1/sqrt(head_dim).
        let out = Tensor::scaled_dot_product_attention(
            &q,
            &keys,
            &values,
            tables.mask.as_ref(),
            0.0,
            tables.causal,
            1.0,
            gqa,
        );
        out.transpose(1, 2).reshape([b, t, nh * hd])
    }
}

/// Sums of activation magnitudes one calibration pass collects for a layer.
#[derive(Debug)]
pub struct LayerCapture {
    /// `[heads]`: sum over tokens of |o_proj input| over each head's slice.
    pub head_abs: Tensor,
    /// `[intermediate]`: sum over tokens of |down_proj input| per channel.
    pub channel_abs: Tensor,
    /// Sum over tokens of `1 - cos(layer input, layer output)` (block influence).
    pub influence: f64,
    pub tokens: usize,
}

/// One transformer block.
#[derive(Debug)]
pub struct Block {
    pub(crate) input_norm: RmsNorm,
    pub(crate) attn: Attention,
    pub(crate) post_norm: RmsNorm,
    pub(crate) mlp: Mlp,
}

/// The shape of one block, which pruning changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockShape {
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub kv_of_head: Vec<usize>,
    pub intermediate: usize,
}

impl Block {
    pub(crate) fn input_norm_weight(&self) -> &Tensor {
        &self.input_norm.weight
    }
    pub(crate) fn post_norm_weight(&self) -> &Tensor {
        &self.post_norm.weight
    }
    pub fn qkv_weight(&self) -> &Tensor {
        self.attn.qkv.weight()
    }
    pub fn o_weight(&self) -> &Tensor {
        self.attn.o.weight()
    }
    pub fn gate_up_weight(&self) -> &Tensor {
        self.mlp.gate_up.weight()
    }
    pub fn down_weight(&self) -> &Tensor {
        self.mlp.down.weight()
    }

    pub fn shape(&self) -> BlockShape {
        BlockShape {
            num_heads: self.attn.num_heads as usize,
            num_kv_heads: self.attn.num_kv_heads as usize,
            kv_of_head: self.attn.kv_of_head.clone(),
            intermediate: self.mlp.intermediate as usize,
        }
    }

    /// Bytes of the block's weights (all of which one decode step reads).
    pub fn bytes(&self) -> usize {
        let norms = (self.input_norm.weight.numel() + self.post_norm.weight.numel())
            * self.input_norm.weight.kind().elt_size_in_bytes();
        self.attn.qkv.bytes()
            + self.attn.o.bytes()
            + self.mlp.gate_up.bytes()
            + self.mlp.down.bytes()
            + norms
    }

    /// A block from fused weights, `kv_of_head` giving each query head's KV head.
    pub fn from_weights(
        w: LayerWeights,
        eps: f64,
        head_dim: usize,
        kv_of_head: Vec<usize>,
    ) -> Self {
        let device = w.qkv.device();
        let intermediate = w.down.size()[1];
        Block {
            input_norm: RmsNorm::new(w.input_norm, eps),
            attn: Attention::new(
                Linear::new(w.qkv),
                Linear::new(w.o),
                head_dim as i64,
                kv_of_head,
                device,
            ),
            post_norm: RmsNorm::new(w.post_norm, eps),
            mlp: Mlp { gate_up: Linear::new(w.gate_up), down: Linear::new(w.down), intermediate },
        }
    }

    /// The block's weights (shallow: the same storage).
    pub fn weights(&self) -> LayerWeights {
        LayerWeights {
            input_norm: self.input_norm.weight.shallow_clone(),
            qkv: self.attn.qkv.weight().shallow_clone(),
            o: self.attn.o.weight().shallow_clone(),
            post_norm: self.post_norm.weight.shallow_clone(),
            gate_up: self.mlp.gate_up.weight().shallow_clone(),
            down: self.mlp.down.weight().shallow_clone(),
        }
    }

    /// One block over `x`. With `thresholds` (activation sparsity), the inputs of qkv, o,
    /// gate_up and down whose magnitude is below that matrix's threshold are zeroed first.
    pub fn forward(
        &self,
        x: &Tensor,
        layer_cache: &mut (Tensor, Tensor),
        pos: i64,
        tables: &StepTables,
        capture: Option<&mut LayerCapture>,
        thresholds: Option<&[f32; 4]>,
    ) -> Tensor {
        let cut = |x: Tensor, i: usize| match thresholds {
            Some(t) if t[i] > 0.0 => {
                let keep = x.abs().ge(f64::from(t[i])).to_kind(x.kind());
                x * keep
            }
            _ => x,
        };
        let ctx = self.attn.context(&cut(self.input_norm.forward(x), 0), layer_cache, pos, tables);
        let ctx = cut(ctx, 1);
        let h = x + self.attn.o.forward(&ctx);
        let hidden = self.mlp.hidden(&cut(self.post_norm.forward(&h), 2));
        let hidden = cut(hidden, 3);
        let out = h + self.mlp.down.forward(&hidden);
        if let Some(c) = capture {
            let (b, t) = (x.size()[0], x.size()[1]);
            let (nh, hd) = (self.attn.num_heads, self.attn.head_dim);
            let head_abs = ctx.to_kind(Kind::Float).abs().view([b * t, nh, hd]).sum_dim_intlist(
                [0i64, 2].as_slice(),
                false,
                Kind::Float,
            );
            let channel_abs = hidden.to_kind(Kind::Float).abs().view([b * t, -1]).sum_dim_intlist(
                [0i64].as_slice(),
                false,
                Kind::Float,
            );
            let cos = Tensor::cosine_similarity(
                &x.to_kind(Kind::Float),
                &out.to_kind(Kind::Float),
                -1,
                1e-8,
            );
            c.head_abs += head_abs.to_device(Device::Cpu);
            c.channel_abs += channel_abs.to_device(Device::Cpu);
            c.influence += (cos.ones_like() - cos).sum(Kind::Double).double_value(&[]);
            c.tokens += (b * t) as usize;
        }
        out
    }
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

impl LayerCapture {
    /// Zeroed sums for a block of `shape`.
    pub fn zeros(shape: &BlockShape) -> Self {
        Self {
            head_abs: Tensor::zeros([shape.num_heads as i64], (Kind::Float, Device::Cpu)),
            channel_abs: Tensor::zeros([shape.intermediate as i64], (Kind::Float, Device::Cpu)),
            influence: 0.0,
            tokens: 0,
        }
    }
}
