//! Pruned profiles: built once per action from the importances (weights sliced and contiguous),
//! cached within a memory budget (least recently used evicted), switched by pointer, and a
//! restore that is verified bit for bit against the dense model's logits on a probe input.

use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use super::importance::Importance;
use super::sparsity::Thresholds;
use casrap_common::action::{Action, Allocation};
use casrap_engine::block::{Block, KvWindow, LayerWeights};
use casrap_engine::error::{Error, Result};
use casrap_engine::model::{LayerRef, Logits, ProfileId};
use casrap_engine::Llama;

/// FFN widths stay multiples of this.
pub const FFN_MULTIPLE: usize = 64;

fn err(action: &Action, why: impl std::fmt::Display) -> Error {
    Error::arg("action", format!("`{}`: {why}", action.label()))
}

fn indices(v: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device)
}

/// Query heads each layer keeps under `heads` pruning: the globally least important heads go
/// (scores normalised by their layer's mean), never a layer's last head.
pub fn heads_kept(imp: &Importance, intensity: f64, action: &Action) -> Result<Vec<Vec<usize>>> {
    let layers = imp.heads.len();
    let nh = imp.heads.first().map_or(0, Vec::len);
    let total = layers * nh;
    let remove = ((total as f64 * intensity).round() as usize).max(1);
    if remove > total - layers {
        return Err(err(
            action,
            format!(
                "removes {remove} of {total} query heads; at most {} can go (one stays per layer)",
                total - layers
            ),
        ));
    }
    let mut ranked: Vec<(f64, usize, usize)> = Vec::with_capacity(total);
    for (l, scores) in imp.heads.iter().enumerate() {
        let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / nh as f64;
        let mean = if mean > 0.0 { mean } else { 1.0 };
        ranked.extend(scores.iter().enumerate().map(|(h, &s)| (s as f64 / mean, l, h)));
    }
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut kept: Vec<Vec<bool>> = vec![vec![true; nh]; layers];
    let mut left = vec![nh; layers];
    let mut removed = 0;
    for &(_, l, h) in &ranked {
        if removed == remove {
            break;
        }
        if left[l] > 1 {
            kept[l][h] = false;
            left[l] -= 1;
            removed += 1;
        }
    }
    Ok(kept
        .into_iter()
        .map(|k| k.iter().enumerate().filter(|(_, &keep)| keep).map(|(h, _)| h).collect())
        .collect())
}

/// FFN channels each layer keeps under `ffn` pruning (ascending indices).
pub fn channels_kept(imp: &Importance, intensity: f64, action: &Action) -> Result<Vec<Vec<usize>>> {
    imp.channels
        .iter()
        .map(|scores| {
            let f = scores.len();
            if f < 2 * FFN_MULTIPLE {
                return Err(err(action, format!("the FFN has {f} channels; it needs {} to keep a multiple of {FFN_MULTIPLE} after pruning", 2 * FFN_MULTIPLE)));
            }
            let target = f as f64 * (1.0 - intensity) / FFN_MULTIPLE as f64;
            let keep = ((target.round() as usize) * FFN_MULTIPLE).clamp(FFN_MULTIPLE, f - FFN_MULTIPLE);
            let mut order: Vec<usize> = (0..f).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let mut kept = order[..keep].to_vec();
            kept.sort_unstable();
            Ok(kept)
        })
        .collect()
}

/// Layers skipped under `layers` pruning: the `round(L * intensity)` (at least 1) least
/// influential, never the first or the last.
pub fn layers_skipped(imp: &Importance, intensity: f64, action: &Action) -> Result<Vec<usize>> {
    let n = imp.layers.len();
    let k = ((n as f64 * intensity).round() as usize).max(1);
    if n < 3 || k > n - 2 {
        return Err(err(
            action,
            format!(
                "skips {k} of {n} layers; at most {} can go (never the first or the last)",
                n.saturating_sub(2)
            ),
        ));
    }
    let mut middle: Vec<usize> = (1..n - 1).collect();
    middle.sort_by(|&a, &b| imp.layers[a].total_cmp(&imp.layers[b]).then(a.cmp(&b)));
    let mut skip = middle[..k].to_vec();
    skip.sort_unstable();
    Ok(skip)
}

fn head_pruned_block(model: &Llama, dense: &Block, kept: &[usize]) -> Block {
    let cfg = model.config();
    let (nh, nkv, hd, g) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.group_size());
    let mut kv: Vec<usize> = kept.iter().map(|&h| h / g).collect();
    kv.dedup();
    let kv_of_head: Vec<usize> =
        kept.iter().map(|&h| kv.iter().position(|&k| k == h / g).unwrap_or(0)).collect();
    let rows = |base: usize, heads: &[usize]| -> Vec<i64> {
        heads.iter().flat_map(|&h| (base + h * hd..base + (h + 1) * hd).map(|r| r as i64)).collect()
    };
    let qkv_rows: Vec<i64> =
        [rows(0, kept), rows(nh * hd, &kv), rows((nh + nkv) * hd, &kv)].concat();
    let o_cols = rows(0, kept);
    let w = dense.weights();
    let device = w.qkv.device();
    let pruned = LayerWeights {
        qkv: w.qkv.index_select(0, &indices(&qkv_rows, device)),
        o: w.o.index_select(1, &indices(&o_cols, device)).contiguous(),
        ..w
    };
    Block::from_weights(pruned, cfg.rms_norm_eps, hd, kv_of_head)
}

fn ffn_pruned_block(model: &Llama, dense: &Block, kept: &[usize]) -> Block {
    let cfg = model.config();
    let f = cfg.intermediate_size;
    let rows: Vec<i64> =
        kept.iter().map(|&c| c as i64).chain(kept.iter().map(|&c| (c + f) as i64)).collect();
    let cols: Vec<i64> = kept.iter().map(|&c| c as i64).collect();
    let w = dense.weights();
    let device = w.qkv.device();
    let pruned = LayerWeights {
        gate_up: w.gate_up.index_select(0, &indices(&rows, device)),
        down: w.down.index_select(1, &indices(&cols, device)).contiguous(),
        ..w
    };
    Block::from_weights(pruned, cfg.rms_norm_eps, cfg.head_dim, dense.shape().kv_of_head)
}

/// The per-layer plan of `action` (`None` for the dense model).
pub fn build(
    model: &Llama,
    imp: &Importance,
    action: &Action,
) -> Result<Option<(Vec<LayerRef>, Option<KvWindow>)>> {
    let _guard = tch::no_grad_guard();
    let n = model.config().num_layers;
    let dense = model.dense_blocks();
    Ok(Some(match *action {
        Action::None => return Ok(None),
        Action::Heads { intensity } => {
            let kept = heads_kept(imp, intensity, action)?;
            let layers = kept
                .iter()
                .zip(dense)
                .map(|(k, b)| {
                    if k.len() == model.config().num_heads {
                        LayerRef::Dense
                    } else {
                        LayerRef::Own(head_pruned_block(model, b, k))
                    }
                })
                .collect();
            (layers, None)
        }
        Action::Ffn { intensity } => {
            let kept = channels_kept(imp, intensity, action)?;
            (
                kept.iter()
                    .zip(dense)
                    .map(|(k, b)| LayerRef::Own(ffn_pruned_block(model, b, k)))
                    .collect(),
                None,
            )
        }
        Action::Layers { intensity } => {
            let skip = layers_skipped(imp, intensity, action)?;
            (
                (0..n)
                    .map(|i| if skip.contains(&i) { LayerRef::Skip } else { LayerRef::Dense })
                    .collect(),
                None,
            )
        }
        Action::KvWindow { sinks, window } => {
            ((0..n).map(|_| LayerRef::Dense).collect(), Some(KvWindow { sinks, window }))
        }
        // Lookup runs on the profile of its lossy part; sparsity has profiles of its own
        // (see ProfileCache::ensure).
        Action::Lookup { .. } => return Ok(None),
        Action::Sparsity { .. } | Action::SparseLookup { .. } => {
            return Err(err(action, "activation sparsity is not a structured profile"))
        }
    }))
}

/// The action whose profile `action` runs on: sparsity for sparsity with lookup, `none` for
/// lookup alone (it decodes the dense model), the action itself otherwise.
pub fn profile_action(action: &Action) -> Action {
    match *action {
        Action::Lookup { .. } => Action::None,
        Action::SparseLookup { level, .. } => Action::Sparsity { level },
        a => a,
    }
}

/// Bytes of tensors a profile holds that the dense model does not share.
fn own_bytes(model: &Llama, id: ProfileId) -> usize {
    let Some(p) = model.profile(id) else { return 0 };
    let bytes = |t: &Tensor| t.numel() * t.kind().elt_size_in_bytes();
    p.layers()
        .iter()
        .zip(model.dense_blocks())
        .map(|(l, d)| match l {
            LayerRef::Own(b) => {
                let (w, dw) = (b.weights(), d.weights());
                [
                    (w.qkv, dw.qkv),
                    (w.o, dw.o),
                    (w.gate_up, dw.gate_up),
                    (w.down, dw.down),
                    (w.input_norm, dw.input_norm),
                    (w.post_norm, dw.post_norm),
                ]
                .iter()
                .filter(|(a, b)| a.data_ptr() != b.data_ptr())
                .map(|(a, _)| bytes(a))
                .sum()
            }
            _ => 0,
        })
        .sum()
}

struct Entry {
    label: String,
    id: ProfileId,
    bytes: usize,
}

/// What building a profile cost.
#[derive(Debug, Clone, Copy)]
pub struct Built {
    pub id: ProfileId,
    /// Time to slice the weights and build the decode plan; `None` when it was cached.
    pub build: Option<Duration>,
    /// Bytes of weights this profile holds beyond the dense model.
    pub bytes: usize,
}

/// The outcome of a verified restore.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Restore {
    /// Switching back to the dense profile.
    pub restore: Duration,
    /// Running and comparing the probe.
    pub verify: Duration,
    /// Whether the probe's logits were bit-identical to the dense reference.
    pub identical: bool,
    /// Whether the dense model had to be rebuilt (after which the probe matched).
    pub rebuilt: bool,
    /// Whether the probe was run at all (see [`ProfileCache::switch_back`]).
    pub checked: bool,
}

/// Every profile built so far for one model, within `max_bytes` of extra weights.
pub struct ProfileCache {
    pub importance: Importance,
    /// Activation sparsity's calibrated distributions (`None`: sparsity actions are refused).
    pub sparsity: Option<Thresholds>,
    /// How a sparsity level is shared among each block's matrices.
    pub allocation: Allocation,
    pub max_bytes: usize,
    entries: Vec<Entry>,
    probe: Option<(Tensor, Tensor)>,
}

impl ProfileCache {
    pub fn new(importance: Importance, max_bytes: usize) -> Self {
        Self {
            importance,
            sparsity: None,
            allocation: Allocation::default(),
            max_bytes,
            entries: Vec::new(),
            probe: None,
        }
    }

    /// Bytes of extra weights the cached profiles hold.
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.bytes).sum()
    }

    /// The profile of `action`, built now unless cached (`None` for `none` and `lookup`: the
    /// dense model). Sparsity with lookup runs on the sparsity's profile. A sparse profile's
    /// input-major weight copies are shared by every sparse profile and counted apart
    /// ([`Llama::input_major_bytes`]), not in `bytes`.
    pub fn ensure(&mut self, model: &mut Llama, action: &Action) -> Result<Option<Built>> {
        let action = &profile_action(action);
        let label = action.label();
        if let Some(pos) = self.entries.iter().position(|e| e.label == label) {
            let e = self.entries.remove(pos);
            let built = Built { id: e.id, build: None, bytes: e.bytes };
            self.entries.push(e);
            return Ok(Some(built));
        }
        let t = Instant::now();
        let id = if let Action::Sparsity { level } = *action {
            let thresholds = self.sparsity.as_ref().ok_or_else(|| {
                err(action, "activation sparsity needs thresholds calibrated on text (the run's calibration prompts); none were measured")
            })?;
            model.add_sparse_profile(&label, thresholds.at(level, self.allocation)?)?
        } else {
            let Some((layers, window)) = build(model, &self.importance, action)? else {
                return Ok(None);
            };
            model.add_profile(&label, layers, window)?
        };
        let bytes = own_bytes(model, id);
        let build = t.elapsed();
        if bytes > self.max_bytes {
            model.remove_profile(id)?;
            return Err(err(
                action,
                format!(
                    "needs {bytes} bytes of pruned weights, over the cache budget of {}",
                    self.max_bytes
                ),
            ));
        }
        while self.bytes() + bytes > self.max_bytes && !self.entries.is_empty() {
            let old = self.entries.remove(0);
            tracing::info!(profile = %old.label, bytes = old.bytes, "evicting a cached profile");
            model.remove_profile(old.id)?;
        }
        self.entries.push(Entry { label, id, bytes });
        Ok(Some(Built { id, build: Some(build), bytes }))
    }

    /// Switches `model` to `action`'s profile; returns the switch time (building is not counted,
    /// see [`ProfileCache::ensure`]).
    pub fn apply(&mut self, model: &mut Llama, action: &Action) -> Result<Duration> {
        let built = self.ensure(model, action)?;
        let t = Instant::now();
        match built {
            Some(b) => model.activate(b.id)?,
            None => model.activate_dense(),
        }
        Ok(t.elapsed())
    }

    /// Records the dense model's logits on `tokens` as the reference restores are checked against.
    pub fn set_probe(&mut self, model: &mut Llama, tokens: &[u32]) {
        let active = model.active();
        model.activate_dense();
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let probe = Tensor::from_slice(&ids).view([1, -1]).to_device(model.device());
        let logits = probe_logits(model, &probe);
        self.probe = Some((probe, logits));
        let _ = model.activate(active);
    }

    /// Switches back to the dense model and checks the probe bit for bit; on a mismatch logs it,
    /// replaces the model with `reload()` (dropping every profile) and checks again.
    pub fn restore(
        &mut self,
        model: &mut Llama,
        reload: &mut dyn FnMut() -> Result<Llama>,
    ) -> Result<Restore> {
        let t = Instant::now();
        model.activate_dense();
        let restore = t.elapsed();
        let t = Instant::now();
        let identical = self.verify(model);
        let verify = t.elapsed();
        if identical {
            return Ok(Restore { restore, verify, identical, rebuilt: false, checked: true });
        }
        tracing::error!("restored model's probe logits differ from the dense reference; rebuilding the dense model");
        *model = reload()?;
        self.entries.clear();
        if !self.verify(model) {
            return Err(Error::arg(
                "restore",
                "the rebuilt dense model still differs from the reference logits",
            ));
        }
        Ok(Restore { restore, verify, identical, rebuilt: true, checked: true })
    }

    /// Switches back to the dense model without checking it (dense weights are never written, so
    /// this is the restore; the check guards against bugs and memory faults).
    pub fn switch_back(&self, model: &mut Llama) -> Restore {
        let t = Instant::now();
        model.activate_dense();
        Restore {
            restore: t.elapsed(),
            verify: Duration::ZERO,
            identical: true,
            rebuilt: false,
            checked: false,
        }
    }

    /// Whether the active model reproduces the probe's reference logits exactly (true without a probe).
    pub fn verify(&self, model: &Llama) -> bool {
        match &self.probe {
            Some((probe, want)) => probe_logits(model, probe).equal(want),
            None => true,
        }
    }
}

fn probe_logits(model: &Llama, probe: &Tensor) -> Tensor {
    let _guard = tch::no_grad_guard();
    let mut cache = model.new_cache(1, probe.size()[1] as usize);
    model.forward(probe, &mut cache, Logits::All).to_kind(Kind::Float)
}
