//! Double DQN: the online network picks the next action, the target network values it; Huber loss,
//! Adam (written out, so its state can be checkpointed), gradient-norm clipping, a hard target
//! update every `target_update` updates, and an ε schedule published with the weights.
//!
//! A rate limiter ties updates to inserts as Reverb's `SampleToInsertRatio` does: an update may
//! draw its batch only while `sampled + batch <= samples_per_insert * inserted + tolerance` and
//! the store holds at least `min_replay` transitions, so a small buffer is not overfitted; when
//! actors outpace it the learner trains flat out (the lag is visible in the status counters).
//! Sampling is uniform, or prioritised (`trainer.prioritized`, see [`crate::priority`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use casrap_common::record::TrainingLine;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tch::{Kind, Reduction, Tensor};

use casrap_common::config::TrainerConfig;

use casrap_store::checkpoint::{self, hash_hex, State as CheckpointState};

use crate::error::{Error, Result};
use crate::net::Net;
use crate::priority::Priorities;
use crate::ring::Ring;
use crate::service::{Policy, Shared};
use casrap_store::replay::Record;

/// Reverb-style sample-to-insert limiter.
#[derive(Debug, Clone, Copy)]
pub struct RateLimiter {
    pub samples_per_insert: f64,
    pub tolerance: f64,
    pub min_size: u64,
}

impl RateLimiter {
    /// Whether `batch` more samples may be drawn now.
    pub fn can_sample(&self, inserted: u64, sampled: u64, size: u64, batch: usize) -> bool {
        size >= self.min_size.max(1)
            && (sampled + batch as u64) as f64
                <= self.samples_per_insert * inserted as f64 + self.tolerance
    }
}

/// The learning state: networks, Adam moments and counters.
pub struct Trainer {
    pub cfg: TrainerConfig,
    online: Net,
    target: Net,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    pub updates: u64,
    pub version: u64,
    pub sampled: u64,
    pub rng: SmallRng,
}

impl Trainer {
    pub fn new(cfg: TrainerConfig, state_dim: usize, actions: usize) -> Self {
        let dims = cfg.qnet_dims(state_dim, actions);
        let online = Net::new(&dims, cfg.seed);
        let mut target = Net::new(&dims, cfg.seed);
        target.copy_from(&online);
        let zeros = |q: &Net| q.parameters().iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
        let (m, v) = (zeros(&online), zeros(&online));
        let rng = SmallRng::seed_from_u64(cfg.seed);
        Self { cfg, online, target, m, v, updates: 0, version: 0, sampled: 0, rng }
    }

    pub fn dims(&self) -> &[usize] {
        self.online.dims()
    }

    pub fn online(&self) -> &Net {
        &self.online
    }

    pub fn epsilon(&self) -> f32 {
        let e = &self.cfg.epsilon;
        let f = (self.updates as f64 / e.decay_updates.max(1) as f64).min(1.0);
        (e.start + (e.end - e.start) * f) as f32
    }

    /// One Double-DQN step on `batch`; returns the loss.
    pub fn update(&mut self, batch: &[Record]) -> f64 {
        self.update_weighted(batch, None).0
    }

    /// One step with per-transition loss weights (prioritised replay's importance weights);
    /// returns the loss and each transition's TD error.
    pub fn update_weighted(
        &mut self,
        batch: &[Record],
        weights: Option<&[f32]>,
    ) -> (f64, Vec<f32>) {
        let n = batch.len() as i64;
        let d = self.online.dims()[0] as i64;
        let flat = |f: &dyn Fn(&Record) -> &[f32]| {
            Tensor::from_slice(
                &batch.iter().flat_map(|r| f(r).iter().copied()).collect::<Vec<f32>>(),
            )
            .view([n, d])
        };
        let s = flat(&|r| &r.transition.state);
        let s2 = flat(&|r| &r.transition.next_state);
        let a = Tensor::from_slice(
            &batch.iter().map(|r| i64::from(r.transition.action)).collect::<Vec<_>>(),
        )
        .view([n, 1]);
        let r = Tensor::from_slice(&batch.iter().map(|r| r.transition.reward).collect::<Vec<_>>());
        let not_done = Tensor::from_slice(
            &batch.iter().map(|r| if r.transition.done { 0f32 } else { 1.0 }).collect::<Vec<_>>(),
        );
        let y = tch::no_grad(|| {
            let next_a = self.online.forward(&s2).argmax(-1, true);
            let next_q = self.target.forward(&s2).gather(1, &next_a, false).squeeze_dim(1);
            &r + next_q * not_done * self.cfg.gamma
        });
        let q = self.online.forward(&s).gather(1, &a, false).squeeze_dim(1);
        let td = Vec::<f32>::try_from(&(&q - &y).detach()).unwrap_or_default();
        let loss = match weights {
            None => q.huber_loss(&y, Reduction::Mean, self.cfg.huber_delta),
            Some(w) => (q.huber_loss(&y, Reduction::None, self.cfg.huber_delta)
                * Tensor::from_slice(w))
            .mean(Kind::Float),
        };
        for p in self.online.parameters() {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        loss.backward();
        self.adam_step();
        self.updates += 1;
        self.sampled += batch.len() as u64;
        if self.updates.is_multiple_of(self.cfg.target_update) {
            self.target.copy_from(&self.online);
        }
        (loss.double_value(&[]), td)
    }

    fn adam_step(&mut self) {
        let _guard = tch::no_grad_guard();
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let params = self.online.parameters();
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).collect();
        let norm = grads
            .iter()
            .filter(|g| g.defined())
            .map(|g| g.square().sum(Kind::Double).double_value(&[]))
            .sum::<f64>()
            .sqrt();
        let scale =
            if norm > self.cfg.grad_clip { self.cfg.grad_clip / (norm + 1e-12) } else { 1.0 };
        let t = (self.updates + 1) as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for (((p, g), m), v) in
            params.into_iter().zip(grads).zip(self.m.iter_mut()).zip(self.v.iter_mut())
        {
            if !g.defined() {
                continue;
            }
            let g = g * scale;
            *m *= b1;
            *m += &g * (1.0 - b1);
            *v *= b2;
            *v += g.square() * (1.0 - b2);
            let step = (&*m / c1) / ((&*v / c2).sqrt() + eps) * self.cfg.lr;
            let mut p = p.shallow_clone();
            p -= step;
        }
    }

    /// The online network as a policy with the next version number; an error (and no new
    /// version) when its weights are not finite.
    pub fn next_policy(&mut self) -> Result<Policy> {
        let weights = self
            .online
            .encode()
            .map_err(|e| Error::Trainer(format!("the online network cannot be published: {e}")))?;
        self.version += 1;
        Ok(Policy { version: self.version, epsilon: self.epsilon(), weights: weights.into() })
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (name, ts) in [
            (
                "online",
                self.online.parameters().into_iter().map(Tensor::shallow_clone).collect::<Vec<_>>(),
            ),
            ("target", self.target.parameters().into_iter().map(Tensor::shallow_clone).collect()),
            ("adam_m", self.m.iter().map(Tensor::shallow_clone).collect()),
            ("adam_v", self.v.iter().map(Tensor::shallow_clone).collect()),
        ] {
            out.extend(
                ts.into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("{name}.{i}"), t.detach().contiguous())),
            );
        }
        out
    }

    /// Writes `dir/ckpt-<updates>/` atomically (a temp folder renamed into place) and prunes old ones.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<PathBuf> {
        let io = |p: &Path, e: std::io::Error| Error::checkpoint(p, e.to_string());
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let name = format!("ckpt-{:012}", self.updates);
        let tmp = dir.join(format!("{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        let tensors_path = tmp.join(checkpoint::TENSORS_FILE);
        let named = self.named_tensors();
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        Tensor::write_safetensors(&refs, &tensors_path)
            .map_err(|e| Error::checkpoint(&tensors_path, e.to_string()))?;
        let bytes = std::fs::read(&tensors_path).map_err(|e| io(&tensors_path, e))?;
        let state = CheckpointState {
            updates: self.updates,
            version: self.version,
            sampled: self.sampled,
            dims: self.online.dims().to_vec(),
            tensors_hash: hash_hex(&bytes),
        };
        let state_path = tmp.join(checkpoint::STATE_FILE);
        let json = serde_json::to_string_pretty(&state)
            .map_err(|e| Error::checkpoint(&state_path, e.to_string()))?;
        std::fs::write(&state_path, json).map_err(|e| io(&state_path, e))?;
        for f in [&tensors_path, &state_path] {
            std::fs::File::open(f).and_then(|f| f.sync_all()).map_err(|e| io(f, e))?;
        }
        let final_dir = dir.join(&name);
        let _ = std::fs::remove_dir_all(&final_dir);
        std::fs::rename(&tmp, &final_dir).map_err(|e| io(&final_dir, e))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
        let mut all = checkpoint::list(dir);
        while all.len() > self.cfg.keep_checkpoints.max(1) {
            let old = all.remove(0);
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(final_dir)
    }

    /// Loads the checkpoint folder `path` (a `ckpt-N`), checking its hash and widths.
    pub fn load_checkpoint(
        path: &Path,
        cfg: &TrainerConfig,
        state_dim: usize,
        actions: usize,
    ) -> Result<Self> {
        let bad = |reason: String| Error::checkpoint(path, reason);
        let (state, _) = checkpoint::read_checked(path)?;
        let mut t = Self::new(cfg.clone(), state_dim, actions);
        if state.dims != t.online.dims() {
            return Err(bad(format!(
                "network widths {:?}, the config gives {:?}",
                state.dims,
                t.online.dims()
            )));
        }
        let tensors_path = path.join(checkpoint::TENSORS_FILE);
        let named = Tensor::read_safetensors(&tensors_path)
            .map_err(|e| bad(format!("tensors.safetensors: {e}")))?;
        let _guard = tch::no_grad_guard();
        let want = t.named_tensors();
        if named.len() != want.len() {
            return Err(bad(format!("{} tensors, expected {}", named.len(), want.len())));
        }
        for (name, dst) in &want {
            let (_, src) = named
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| bad(format!("tensor `{name}` missing")))?;
            if src.size() != dst.size() {
                return Err(bad(format!(
                    "tensor `{name}` has shape {:?}, expected {:?}",
                    src.size(),
                    dst.size()
                )));
            }
            // `dst` shares storage with the live parameter or moment.
            let mut d = dst.shallow_clone();
            d.copy_(src);
        }
        // named_tensors detached copies for online/target params share storage (detach keeps it).
        t.updates = state.updates;
        t.version = state.version;
        t.sampled = state.sampled;
        t.rng = SmallRng::seed_from_u64(cfg.seed ^ state.updates);
        Ok(t)
    }

    /// The newest valid checkpoint in `dir`, trying older ones when one is corrupt (each failure
    /// is logged). `None` when there is none.
    pub fn resume(
        dir: &Path,
        cfg: &TrainerConfig,
        state_dim: usize,
        actions: usize,
    ) -> Option<(Self, PathBuf)> {
        // A checkpoint write killed half-way leaves its temp folder: never read, only removed.
        for stale in checkpoint::partial(dir) {
            match std::fs::remove_dir_all(&stale) {
                Ok(()) => {
                    tracing::warn!(path = %stale.display(), "removed a checkpoint left half-written by a kill")
                }
                Err(e) => {
                    tracing::warn!(path = %stale.display(), error = %e, "cannot remove a half-written checkpoint")
                }
            }
        }
        for path in checkpoint::list(dir).into_iter().rev() {
            match Self::load_checkpoint(&path, cfg, state_dim, actions) {
                Ok(t) => {
                    tracing::info!(checkpoint = %path.display(), updates = t.updates, version = t.version, "resumed from checkpoint");
                    return Some((t, path));
                }
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint unusable; trying the previous one")
                }
            }
        }
        None
    }
}

/// Appends one JSON line per published version to the training log (`training.jsonl`): updates,
/// version, ε, the mean loss since the previous line, transitions inserted, seconds since start.
struct TrainingLog {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    started: std::time::Instant,
    loss_sum: f64,
    losses: u64,
}

impl TrainingLog {
    fn open(path: PathBuf) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Trainer(format!("{}: {e}", path.display())))?;
        Ok(Self {
            file: std::io::BufWriter::new(file),
            path,
            started: std::time::Instant::now(),
            loss_sum: 0.0,
            losses: 0,
        })
    }

    fn line(&mut self, t: &Trainer, inserted: u64) {
        use std::io::Write;
        let loss = if self.losses > 0 { Some(self.loss_sum / self.losses as f64) } else { None };
        let line = TrainingLine {
            updates: t.updates,
            version: t.version,
            epsilon: t.epsilon(),
            loss,
            inserted,
            time_s: self.started.elapsed().as_secs_f64(),
        };
        let written = line.to_line().map_err(std::io::Error::other).and_then(|line| {
            writeln!(self.file, "{line}")?;
            self.file.flush()
        });
        if let Err(e) = written {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot write the training log");
        }
        (self.loss_sum, self.losses) = (0.0, 0);
    }
}

/// Sets the calling thread's nice value (`trainer.nice`): on a machine the trainer shares with
/// the ingest path, a runnable trainer then waits for the threads that acknowledge, not the
/// reverse. Measured at 10,000 actors on 2 cores (docs/learner.md): nice 0 let the acks queue
/// behind the updates. A failure (not Linux, or a sandbox that forbids it) is logged, not fatal.
#[allow(unsafe_code)]
pub fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread, no memory passed. On Linux the nice value
        // belongs to the thread (task) `gettid` names.
        let r = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if r == 0 {
            tracing::info!(nice, "trainer thread's priority lowered");
            return;
        }
        let e = std::io::Error::last_os_error();
        tracing::warn!(nice, error = %e, "cannot lower the trainer thread's priority");
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(nice, "trainer.nice is applied on Linux only");
}

/// The calling thread's nice value (Linux), for tests.
#[cfg(all(test, target_os = "linux"))]
#[allow(unsafe_code)]
fn current_nice() -> i32 {
    // SAFETY: as above. errno is cleared first: -1 is a valid nice value.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
    }
}

/// Runs the training loop on the calling thread until `stop` is set: rate-limited updates from
/// the replay store, publishing every `publish_every` updates (and once at start), checkpoints
/// every `checkpoint_every` and on stop; with `log`, a training log line per published version.
pub fn run(
    mut trainer: Trainer,
    shared: Arc<Shared>,
    checkpoints: Option<PathBuf>,
    log: Option<PathBuf>,
    stop: Arc<AtomicBool>,
) -> Result<Trainer> {
    let mut log = log.map(TrainingLog::open).transpose()?;
    let limiter = RateLimiter {
        samples_per_insert: trainer.cfg.samples_per_insert,
        tolerance: trainer.cfg.spi_tolerance,
        min_size: trainer.cfg.min_replay,
    };
    let mut priorities =
        trainer.cfg.prioritized.clone().map(|p| Priorities::new(p, shared.replay.capacity()));
    shared.publish(trainer.next_policy()?);
    if let Some(l) = &mut log {
        l.line(&trainer, shared.replay.total()?);
    }
    shared.updates.store(trainer.updates, Ordering::Relaxed);
    let mut ring = Ring::open(&shared.replay)?;
    while !stop.load(Ordering::Relaxed) {
        if let Some(why) = shared.replay.wedged() {
            return Err(Error::Trainer(why));
        }
        ring.sync();
        let inserted = ring.next_index();
        let size = ring.kept();
        if !limiter.can_sample(inserted, trainer.sampled, size, trainer.cfg.batch) {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        // From memory: a store recovering from a failed write (a full disk) does not stop
        // training on what was already durable.
        let (batch, drawn) = match &mut priorities {
            Some(p) => {
                let d = p.sample(&ring, trainer.cfg.batch, p.cfg.beta, &mut trainer.rng);
                (d.records, Some((d.slots, d.weights)))
            }
            None => (ring.sample(trainer.cfg.batch, &mut trainer.rng), None),
        };
        if batch.is_empty() {
            continue;
        }
        let (loss, td) = trainer.update_weighted(&batch, drawn.as_ref().map(|(_, w)| w.as_slice()));
        if let (Some(p), Some((slots, _))) = (&mut priorities, &drawn) {
            p.update(slots, &td);
        }
        if !loss.is_finite() {
            tracing::error!(
                updates = trainer.updates,
                loss,
                "non-finite loss; stopping the trainer"
            );
            break;
        }
        shared.updates.store(trainer.updates, Ordering::Relaxed);
        shared.loss_bits.store(loss.to_bits(), Ordering::Relaxed);
        if let Some(l) = &mut log {
            l.loss_sum += loss;
            l.losses += 1;
        }
        if trainer.updates.is_multiple_of(trainer.cfg.publish_every) {
            shared.publish(trainer.next_policy()?);
            if let Some(l) = &mut log {
                l.line(&trainer, inserted);
            }
        }
        if let Some(dir) = &checkpoints {
            if trainer.cfg.checkpoint_every > 0
                && trainer.updates.is_multiple_of(trainer.cfg.checkpoint_every)
            {
                trainer.save_checkpoint(dir)?;
            }
        }
    }
    if let Some(dir) = &checkpoints {
        let path = trainer.save_checkpoint(dir)?;
        tracing::info!(checkpoint = %path.display(), "final checkpoint written");
    }
    Ok(trainer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_trainer_lowers_its_own_thread_only() {
        let before = current_nice();
        let (theirs, mine) = std::thread::spawn(move || {
            lower_priority(19);
            current_nice()
        })
        .join()
        .map(|t| (t, current_nice()))
        .unwrap();
        assert_eq!(theirs, 19, "the thread that asked runs at nice 19");
        assert_eq!(mine, before, "other threads keep theirs");
    }

    #[test]
    fn limiter_ties_samples_to_inserts() {
        let l = RateLimiter { samples_per_insert: 4.0, tolerance: 64.0, min_size: 10 };
        assert!(!l.can_sample(5, 0, 5, 32), "below the minimum size");
        assert!(l.can_sample(10, 0, 10, 32));
        assert!(l.can_sample(10, 72, 10, 32), "4 * 10 + 64 = 104 >= 72 + 32");
        assert!(!l.can_sample(10, 73, 10, 32));
    }

    #[test]
    fn epsilon_decays_linearly_then_holds() {
        let mut t = Trainer::new(
            TrainerConfig {
                epsilon: casrap_common::config::Epsilon {
                    start: 1.0,
                    end: 0.1,
                    decay_updates: 100,
                },
                ..Default::default()
            },
            3,
            2,
        );
        assert!((t.epsilon() - 1.0).abs() < 1e-6);
        t.updates = 50;
        assert!((t.epsilon() - 0.55).abs() < 1e-6);
        t.updates = 500;
        assert!((t.epsilon() - 0.1).abs() < 1e-6);
    }
}
