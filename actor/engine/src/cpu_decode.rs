//! One decode step (batch 1, one token) of an f32 or bf16 model on CPU without torch ops.
//!
//! At batch 1 a small model spends more time dispatching torch ops (about 60 per layer, each a few
//! microseconds) than computing. This path runs the same arithmetic as the model's torch forward on plain
//! `f32` buffers (bf16 weights and cache entries widened exactly, cache writes rounded): RMSNorm,
//! the fused projections through [`gemv`], RoPE, grouped-query attention over the KV cache (written
//! in place), SwiGLU. For bf16 models activations stay f32 between ops where HF's bf16 path rounds
//! after each one, so this path is the more precise of the two. It reads the same weight and cache
//! tensors, so the two paths interleave freely (prefill through torch, decode here). Tests hold it
//! to the torch path and to Hugging Face.

#![allow(unsafe_code)]

use tch::{Device, Kind, Tensor};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::block::{Block, KvWindow};
use crate::config::Config;
use crate::gemv::{self, InputMajorView, WeightView};

/// Borrowed parts of a model under one profile, for the CPU decode plan.
pub(crate) struct Parts<'a> {
    pub cfg: &'a Config,
    pub embed: &'a Tensor,
    pub head: &'a Tensor,
    pub norm: &'a Tensor,
    /// Per layer, the block run there (`None`: skipped).
    pub layers: Vec<Option<&'a Block>>,
    pub inv_freq: &'a Tensor,
    pub kv_window: Option<KvWindow>,
    /// Per layer, with activation sparsity: the input-major weights and their thresholds.
    pub sparse: Vec<Option<(&'a [Tensor; 4], [f32; 4])>>,
}

/// The batch-1 KV cache a plan's steps write through: every layer's K and V buffers
/// (`[1, kv_heads, capacity, head_dim]`) and the positions already cached. The owner advances its
/// length by the positions a step returned logits for.
pub(crate) struct CacheView<'a> {
    pub layers: &'a mut [(Tensor, Tensor)],
    pub len: usize,
    pub capacity: usize,
}

/// The model dimensions a step needs.
#[derive(Clone, Copy)]
struct Dims {
    hidden: usize,
    head_dim: usize,
    vocab: usize,
    eps: f64,
}

/// How weights and the KV cache are stored: f32, or bf16 kept as its bit pattern. Arithmetic is
/// always f32; bf16 values are widened exactly and rounded to nearest-even when stored.
pub(crate) trait Elem: Copy + 'static {
    const KIND: Kind;
    fn get(self) -> f32;
    fn put(v: f32) -> Self;
}

impl Elem for f32 {
    const KIND: Kind = Kind::Float;
    fn get(self) -> f32 {
        self
    }
    fn put(v: f32) -> Self {
        v
    }
}

impl Elem for u16 {
    const KIND: Kind = Kind::BFloat16;
    fn get(self) -> f32 {
        f32::from_bits((self as u32) << 16)
    }
    fn put(v: f32) -> Self {
        half::bf16::from_f32(v).to_bits()
    }
}

/// `t` as a slice of `E` when it is a contiguous CPU tensor of that kind.
///
/// # Safety
/// The caller keeps `t` alive and unwritten for as long as the slice is used (the lifetime is free).
unsafe fn slice<'a, E: Elem>(t: &Tensor) -> Option<&'a [E]> {
    if t.kind() != E::KIND || t.device() != Device::Cpu || !t.is_contiguous() {
        return None;
    }
    Some(std::slice::from_raw_parts(t.data_ptr() as *const E, t.numel()))
}

/// `t` as a mutable slice (see [`slice`]); the KV cache is written only by one model call at a time.
fn slice_mut<E: Elem>(t: &mut Tensor) -> Option<&mut [E]> {
    if t.kind() != E::KIND || t.device() != Device::Cpu || !t.is_contiguous() {
        return None;
    }
    // SAFETY: contiguous storage of numel elements of E, and `&mut Tensor` gives this call
    // exclusive use of it for the returned borrow.
    Some(unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut E, t.numel()) })
}

/// A norm weight widened to f32 (they are small; copying them keeps the hot loop simple).
fn widened<E: Elem>(t: &Tensor) -> Option<Vec<f32>> {
    // SAFETY: the slice is used only inside this call, while `t` is borrowed.
    Some(unsafe { slice::<E>(t)? }.iter().map(|v| v.get()).collect())
}

/// `a · b` with 16 independent partial sums, so the compiler can keep them in vector registers.
fn dot<E: Elem>(a: &[f32], b: &[E]) -> f32 {
    const W: usize = 16;
    let mut acc = [0f32; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y.get()).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..W {
            acc[i] += x[i] * y[i].get();
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn rms_norm(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    let var = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    let r = (1.0 / (var + eps).sqrt()) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (v * r);
    }
}

struct LayerViews {
    /// The layer's index (its slot in the KV cache).
    index: usize,
    heads: usize,
    kv_heads: usize,
    kv_of_head: Vec<usize>,
    intermediate: usize,
    input_norm: Vec<f32>,
    post_norm: Vec<f32>,
    qkv: WeightView<'static>,
    o: WeightView<'static>,
    gate_up: WeightView<'static>,
    down: WeightView<'static>,
    /// Activation sparsity: input-major views of qkv, o, gate_up, down and their thresholds.
    sparse: Option<[(InputMajorView<'static>, f32); 4]>,
}

/// Which of a block's four matrices a product uses (the index into [`LayerViews::sparse`]).
#[derive(Clone, Copy)]
enum Mat {
    Qkv = 0,
    O = 1,
    GateUp = 2,
    Down = 3,
}

impl LayerViews {
    fn dense(&self, m: Mat) -> &WeightView<'static> {
        match m {
            Mat::Qkv => &self.qkv,
            Mat::O => &self.o,
            Mat::GateUp => &self.gate_up,
            Mat::Down => &self.down,
        }
    }

    /// `y[i] = W x[i]` for every position `i`; with sparsity, inputs below the matrix's threshold
    /// are skipped (each position on its own: which rows are read depends on its input). A
    /// position whose inputs all pass goes through the dense kernel, so a threshold of 0 gives
    /// the dense result bit for bit. Returns the weight bytes read.
    fn project(&self, m: Mat, x: &[f32], y: &mut [f32], elt: usize) -> u64 {
        let dense = self.dense(m);
        let Some(sparse) = &self.sparse else {
            dense.matmul(x, y);
            return (dense.n * dense.k * elt * (x.len() / dense.k)) as u64;
        };
        let (view, threshold) = sparse[m as usize];
        let mut read = 0;
        for (xi, yi) in x.chunks_exact(dense.k).zip(y.chunks_exact_mut(dense.n)) {
            if xi.iter().all(|v| v.abs() >= threshold) {
                dense.matvec(xi, yi);
                read += dense.n * dense.k * elt;
            } else {
                read += view.matvec_sparse(xi, threshold, yi) * view.n * elt;
            }
        }
        read as u64
    }
}

/// Views of a model's weight tensors, built once when the model is built.
///
/// The views point into tensors the model owns. It keeps this plan in a field next to them and
/// rebuilds or drops it whenever it replaces a weight (which takes `&mut self`), so the views
/// never outlive or disagree with the tensors; tensor storage lives on libtorch's heap and does not
/// move with the `Llama`.
pub(crate) enum DecodePlan {
    F32(Plan<f32>),
    Bf16(Plan<u16>),
}

pub(crate) struct Plan<E: Elem> {
    embed: &'static [E],
    head: WeightView<'static>,
    norm: Vec<f32>,
    /// The layers that run (skipped ones are absent).
    layers: Vec<LayerViews>,
    inv_freq: Vec<f32>,
    kv_window: Option<KvWindow>,
    dims: Dims,
    /// Weight bytes read by the steps run so far, and how many positions they decoded.
    read: AtomicU64,
    positions: AtomicU64,
}

impl DecodePlan {
    /// `None` unless the model is f32 or bf16 on CPU and the gemv kernels run here.
    ///
    /// # Safety
    /// See the type: the plan must be dropped or rebuilt before any of the tensors `parts`
    /// borrows is freed or replaced.
    pub(crate) unsafe fn build(parts: &Parts<'_>) -> Option<Self> {
        if !gemv::enabled() || parts.embed.device() != Device::Cpu {
            return None;
        }
        match parts.embed.kind() {
            Kind::Float => Plan::build(parts).map(DecodePlan::F32),
            Kind::BFloat16 => Plan::build(parts).map(DecodePlan::Bf16),
            _ => None,
        }
    }

    /// Logits `[T, V]` (in the model's dtype) of `tokens` at positions `cache.len..`, writing
    /// their K/V into `cache` (the caller then advances its length by T). Each weight is read
    /// once for all positions (T = 1 is one decode step); position `i`'s logits are
    /// bit-identical to those of `i + 1` single steps. `None` (nothing changed) when the cache
    /// does not fit this path.
    pub(crate) fn steps(&self, tokens: &[usize], cache: CacheView<'_>) -> Option<Tensor> {
        match self {
            DecodePlan::F32(p) => p.steps(tokens, cache),
            DecodePlan::Bf16(p) => p.steps(tokens, cache),
        }
    }

    /// Weight bytes read and positions decoded since the plan was built.
    pub(crate) fn reads(&self) -> (u64, u64) {
        let (read, positions) = match self {
            DecodePlan::F32(p) => (&p.read, &p.positions),
            DecodePlan::Bf16(p) => (&p.read, &p.positions),
        };
        (read.load(Ordering::Relaxed), positions.load(Ordering::Relaxed))
    }

    /// Weight bytes read per decoded position since the plan was built (`None` before any).
    pub(crate) fn bytes_per_position(&self) -> Option<f64> {
        let (read, n) = self.reads();
        (n > 0).then(|| read as f64 / n as f64)
    }
}

impl<E: Elem> Plan<E> {
    /// # Safety
    /// As [`DecodePlan::build`].
    unsafe fn build(p: &Parts<'_>) -> Option<Self> {
        let layers = p
            .layers
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.map(|b| (i, b)))
            .map(|(index, b)| {
                let shape = b.shape();
                Some(LayerViews {
                    index,
                    heads: shape.num_heads,
                    kv_heads: shape.num_kv_heads,
                    kv_of_head: shape.kv_of_head,
                    intermediate: shape.intermediate,
                    input_norm: widened::<E>(b.input_norm_weight())?,
                    post_norm: widened::<E>(b.post_norm_weight())?,
                    qkv: WeightView::of(b.qkv_weight())?.detach(),
                    o: WeightView::of(b.o_weight())?.detach(),
                    gate_up: WeightView::of(b.gate_up_weight())?.detach(),
                    down: WeightView::of(b.down_weight())?.detach(),
                    sparse: match p.sparse.get(index).copied().flatten() {
                        None => None,
                        Some((wt, t)) => Some([
                            (InputMajorView::of(&wt[0])?.detach(), t[0]),
                            (InputMajorView::of(&wt[1])?.detach(), t[1]),
                            (InputMajorView::of(&wt[2])?.detach(), t[2]),
                            (InputMajorView::of(&wt[3])?.detach(), t[3]),
                        ]),
                    },
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            embed: slice::<E>(p.embed)?,
            head: WeightView::of(p.head)?.detach(),
            norm: widened::<E>(p.norm)?,
            layers,
            inv_freq: Vec::<f32>::try_from(&p.inv_freq.to_device(Device::Cpu)).ok()?,
            kv_window: p.kv_window,
            dims: Dims {
                hidden: p.cfg.hidden_size,
                head_dim: p.cfg.head_dim,
                vocab: p.cfg.vocab_size,
                eps: p.cfg.rms_norm_eps,
            },
            read: AtomicU64::new(0),
            positions: AtomicU64::new(0),
        })
    }

    fn steps(&self, tokens: &[usize], cache: CacheView<'_>) -> Option<Tensor> {
        let Dims { hidden: d, head_dim: hd, vocab, eps } = self.dims;
        let (half, pos, cap, m) = (hd / 2, cache.len, cache.capacity, tokens.len());
        if m == 0 || pos + m > cap || tokens.iter().any(|&t| t >= vocab) {
            return None;
        }
        let elt = std::mem::size_of::<E>();
        let scale = 1.0 / (hd as f32).sqrt();
        // Per position: RoPE tables and the key positions it attends to (all, or the sinks and
        // the recent window).
        let (cos, sin): (Vec<f32>, Vec<f32>) = (0..m)
            .flat_map(|i| (0..hd).map(move |j| (i, j)))
            .map(|(i, j)| {
                let a = (pos + i) as f32 * self.inv_freq[j % half];
                (a.cos(), a.sin())
            })
            .unzip();
        let keys: Vec<Vec<usize>> = (0..m)
            .map(|i| {
                let n = pos + i + 1;
                match self.kv_window {
                    Some(w) if n > w.sinks + w.window => {
                        (0..w.sinks).chain(n - w.window..n).collect()
                    }
                    _ => (0..n).collect(),
                }
            })
            .collect();
        let max_heads = self.layers.iter().map(|l| l.heads + 2 * l.kv_heads).max().unwrap_or(0);
        let max_f = self.layers.iter().map(|l| l.intermediate).max().unwrap_or(0);
        let mut x: Vec<f32> = tokens
            .iter()
            .flat_map(|&t| self.embed[t * d..(t + 1) * d].iter().map(|v| v.get()))
            .collect();
        let mut h = vec![0f32; m * d];
        let mut qkv_buf = vec![0f32; m * max_heads * hd];
        let mut att_buf = vec![0f32; m * max_heads * hd];
        let mut proj = vec![0f32; m * d];
        let mut gu_buf = vec![0f32; m * 2 * max_f];
        let mut act_buf = vec![0f32; m * max_f];
        let mut scores = vec![0f32; pos + m];
        let mut read = 0u64;
        let caches = cache.layers;
        for l in &self.layers {
            let (nh, nkv, f) = (l.heads, l.kv_heads, l.intermediate);
            let width = (nh + 2 * nkv) * hd;
            let (ck, cv) = caches.get_mut(l.index)?;
            let ck = slice_mut::<E>(ck)?;
            let cv = slice_mut::<E>(cv)?;
            if ck.len() != nkv * cap * hd || cv.len() != ck.len() {
                return None;
            }
            let qkv = &mut qkv_buf[..m * width];
            let att = &mut att_buf[..m * nh * hd];
            let gu = &mut gu_buf[..m * 2 * f];
            let act = &mut act_buf[..m * f];
            for (xi, hi) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
                rms_norm(xi, &l.input_norm, eps, hi);
            }
            read += l.project(Mat::Qkv, &h, qkv, elt);
            for (i, qkv) in qkv.chunks_exact_mut(width).enumerate() {
                let (cos, sin) = (&cos[i * hd..(i + 1) * hd], &sin[i * hd..(i + 1) * hd]);
                // RoPE (HF's rotate_half layout) on every q and k head; q also takes 1/sqrt(head_dim).
                for head in 0..nh + nkv {
                    let v = &mut qkv[head * hd..(head + 1) * hd];
                    let s = if head < nh { scale } else { 1.0 };
                    for j in 0..half {
                        let (a, b) = (v[j], v[j + half]);
                        v[j] = (a * cos[j] - b * sin[j]) * s;
                        v[j + half] = (b * cos[j + half] + a * sin[j + half]) * s;
                    }
                }
                let kv = &qkv[nh * hd..];
                let (k, v) = kv.split_at(nkv * hd);
                for kvh in 0..nkv {
                    let at = (kvh * cap + pos + i) * hd;
                    for (dst, &src) in ck[at..at + hd].iter_mut().zip(&k[kvh * hd..(kvh + 1) * hd])
                    {
                        *dst = E::put(src);
                    }
                    for (dst, &src) in cv[at..at + hd].iter_mut().zip(&v[kvh * hd..(kvh + 1) * hd])
                    {
                        *dst = E::put(src);
                    }
                }
            }
            // Every position's K/V is cached before any attends, and position i reads keys up to
            // its own only: the same as i + 1 single steps.
            for (i, keys) in keys.iter().enumerate() {
                let q = &qkv[i * width..i * width + nh * hd];
                let scores = &mut scores[..keys.len()];
                for head in 0..nh {
                    let kvh = l.kv_of_head[head];
                    let qh = &q[head * hd..(head + 1) * hd];
                    let cached_keys = &ck[kvh * cap * hd..];
                    let mut max = f32::NEG_INFINITY;
                    for (s, &j) in scores.iter_mut().zip(keys) {
                        *s = dot(qh, &cached_keys[j * hd..(j + 1) * hd]);
                        max = max.max(*s);
                    }
                    let mut total = 0f32;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    let out = &mut att[(i * nh + head) * hd..(i * nh + head + 1) * hd];
                    out.fill(0.0);
                    let values = &cv[kvh * cap * hd..];
                    for (&p, &j) in scores.iter().zip(keys) {
                        let p = p / total;
                        for (o, vv) in out.iter_mut().zip(&values[j * hd..(j + 1) * hd]) {
                            *o += p * vv.get();
                        }
                    }
                }
            }
            read += l.project(Mat::O, att, &mut proj, elt);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
            for (xi, hi) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
                rms_norm(xi, &l.post_norm, eps, hi);
            }
            read += l.project(Mat::GateUp, &h, gu, elt);
            for (gu, a) in gu.chunks_exact(2 * f).zip(act.chunks_exact_mut(f)) {
                let (gate, up) = gu.split_at(f);
                for ((a, &g), &u) in a.iter_mut().zip(gate).zip(up) {
                    *a = g / (1.0 + (-g).exp()) * u;
                }
            }
            read += l.project(Mat::Down, act, &mut proj, elt);
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        for (xi, hi) in x.chunks_exact(d).zip(h.chunks_exact_mut(d)) {
            rms_norm(xi, &self.norm, eps, hi);
        }
        let mut logits = vec![0f32; m * vocab];
        self.head.matmul(&h, &mut logits);
        read += (self.head.n * self.head.k * elt) as u64;
        self.read.fetch_add(read, Ordering::Relaxed);
        self.positions.fetch_add(m as u64, Ordering::Relaxed);
        let out = Tensor::from_slice(&logits).view([m as i64, vocab as i64]);
        Some(if E::KIND == Kind::Float { out } else { out.to_kind(E::KIND) })
    }
}
