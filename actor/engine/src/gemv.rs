//! Batch-1 matrix-vector products for CPU decode, on a small spinning thread pool.
//!
//! At batch 1 a linear layer reads every weight once and does two flops per weight, so decode is
//! bound by memory bandwidth (large models) or by per-call overhead (small ones). The MKL sgemv torch
//! calls for `[1, K] x [K, N]` measured 17-25 GB/s on the 2-core development machine, where a
//! plain 2-thread reduction read 52 GB/s, and took as long on two threads as on one for small
//! layers. Here every output row is a dot
//! product of one contiguous weight row with `x` (AVX-512, AVX-512 BF16 or AVX2+FMA), rows split
//! evenly over the pool's threads, each thread streaming its rows in order. f32 and bf16 weights;
//! accumulation in f32; inputs in f32, or in bf16 for bf16 weights where the CPU has BF16 dot
//! products (HF's bf16 matmuls also take bf16 inputs).
//!
//! The pool's workers spin between calls (a decode step issues hundreds of them microseconds
//! apart) and park after [`SPIN`] without work, so an idle actor burns no CPU. A call's rows are
//! split into chunks that the caller and the workers claim one at a time: on a busy machine, where
//! the OS may deschedule a worker for a whole time slice, the caller runs the chunks the worker
//! has not taken instead of spinning until it returns, and yields its core while it waits.
//!
//! Torch's own intra-op threads also spin after each parallel region; to keep the two pools from
//! fighting over the cores, [`set_threads`] gives torch one thread while this pool is active, and
//! [`TorchThreads`] lends torch the whole budget for compute-bound work (prefill).

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isa {
    /// AVX-512F and BW plus the BF16 dot-product instructions (bf16 weights times bf16 inputs).
    Avx512Bf16,
    /// AVX-512F and BW.
    Avx512,
    Avx2,
}

fn isa() -> Option<Isa> {
    static ISA: OnceLock<Option<Isa>> = OnceLock::new();
    *ISA.get_or_init(|| {
        if std::env::var_os("CASRAP_NO_GEMV").is_some() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                if is_x86_feature_detected!("avx512bf16")
                    && std::env::var_os("CASRAP_NO_AVX512BF16").is_none()
                {
                    return Some(Isa::Avx512Bf16);
                }
                return Some(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    })
}

/// Weight element type the kernels read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WKind {
    F32,
    Bf16,
}

/// One call's work, shared with the workers by address. Pointers stay valid until every worker has
/// reported done, which [`Pool::run`] waits for before returning.
#[derive(Clone, Copy)]
enum Job {
    /// `y[i] = W x[i]` for `m` inputs (`m == 1`: a plain gemv), rows of `W` split over the chunks;
    /// each weight row is read from memory once for all `m` inputs.
    Rows { w: usize, x: usize, y: usize, k: usize, n: usize, m: usize, wkind: WKind, isa: Isa },
    /// Input-major sparse product: chunk `c` writes `part[c] = sum_t xv[t] * Wt[idx[t], :]` over
    /// its share of the `kept` inputs; the caller adds the parts.
    Sparse {
        wt: usize,
        idx: usize,
        xv: usize,
        kept: usize,
        n: usize,
        part: usize,
        wkind: WKind,
        isa: Isa,
    },
}

impl Job {
    /// Units `[u0, u1)` of chunk `c` of `chunks`: rows in multiples of 8 so blocks stay whole, or
    /// kept inputs (trailing chunks of a small call may be empty).
    fn range(&self, c: usize, chunks: usize) -> (usize, usize) {
        let (units, align) = match *self {
            Job::Rows { n, .. } => (n, 8),
            Job::Sparse { kept, .. } => (kept, 4),
        };
        let per = (units.div_ceil(chunks)).div_ceil(align) * align;
        ((c * per).min(units), ((c + 1) * per).min(units))
    }

    /// # Safety
    /// `Rows`: `w` points at `n * k` weights of `wkind`, `x` at `m * k` inputs (bf16 bits for
    /// bf16 weights on [`Isa::Avx512Bf16`], f32 otherwise), `y` at `m * n` f32, all live, and no
    /// other thread writes rows `u0..u1` of any `y[i]`. `Sparse`: `wt` holds `K * n` weights,
    /// `idx` `kept` row indices below `K`, `xv` `kept` f32, `part` `chunks * n` f32, and no other
    /// thread writes part `c`.
    unsafe fn exec(&self, c: usize, chunks: usize) {
        let (u0, u1) = self.range(c, chunks);
        #[cfg(target_arch = "x86_64")]
        match *self {
            Job::Rows { w, x, y, k, m: 1, wkind, isa, .. } => match (isa, wkind) {
                (Isa::Avx512 | Isa::Avx512Bf16, WKind::F32) => {
                    x86::rows_f32_avx512(w as _, x as _, y as _, k, u0, u1)
                }
                (Isa::Avx512Bf16, WKind::Bf16) => {
                    x86::rows_bf16_avx512bf16(w as _, x as _, y as _, k, u0, u1)
                }
                (Isa::Avx512, WKind::Bf16) => {
                    x86::rows_bf16_avx512(w as _, x as _, y as _, k, u0, u1)
                }
                (Isa::Avx2, WKind::F32) => x86::rows_f32_avx2(w as _, x as _, y as _, k, u0, u1),
                (Isa::Avx2, WKind::Bf16) => x86::rows_bf16_avx2(w as _, x as _, y as _, k, u0, u1),
            },
            Job::Rows { w, x, y, k, n, m, wkind, isa } => match (isa, wkind) {
                (Isa::Avx512 | Isa::Avx512Bf16, WKind::F32) => {
                    x86::multi_f32_avx512(w as _, x as _, y as _, k, n, m, u0, u1)
                }
                (Isa::Avx512Bf16, WKind::Bf16) => {
                    x86::multi_bf16_avx512bf16(w as _, x as _, y as _, k, n, m, u0, u1)
                }
                (Isa::Avx512, WKind::Bf16) => {
                    x86::multi_bf16_avx512(w as _, x as _, y as _, k, n, m, u0, u1)
                }
                (Isa::Avx2, WKind::F32) => {
                    x86::multi_f32_avx2(w as _, x as _, y as _, k, n, m, u0, u1)
                }
                (Isa::Avx2, WKind::Bf16) => {
                    x86::multi_bf16_avx2(w as _, x as _, y as _, k, n, m, u0, u1)
                }
            },
            Job::Sparse { wt, idx, xv, n, part, wkind, isa, .. } => {
                let out = (part as *mut f32).add(c * n);
                match (isa, wkind) {
                    (Isa::Avx512 | Isa::Avx512Bf16, WKind::F32) => {
                        x86::sparse_f32_avx512(wt as _, idx as _, xv as _, u0, u1, n, out)
                    }
                    (Isa::Avx512 | Isa::Avx512Bf16, WKind::Bf16) => {
                        x86::sparse_bf16_avx512(wt as _, idx as _, xv as _, u0, u1, n, out)
                    }
                    (Isa::Avx2, WKind::F32) => {
                        x86::sparse_f32_avx2(wt as _, idx as _, xv as _, u0, u1, n, out)
                    }
                    (Isa::Avx2, WKind::Bf16) => {
                        x86::sparse_bf16_avx2(wt as _, idx as _, xv as _, u0, u1, n, out)
                    }
                }
            }
        }
    }
}

/// Chunks of one call: rows are split into this many per thread, claimed one at a time, so a
/// thread the OS has descheduled (other work on the core) holds up at most the one chunk it took.
const CHUNKS_PER_THREAD: usize = 4;

/// Chunks per thread of a sparse call (each adds a partial output for the caller to sum).
const SPARSE_CHUNKS_PER_THREAD: usize = 2;

thread_local! {
    /// A sparse call's kept indices, their values and the chunks' partial outputs, reused.
    #[allow(clippy::type_complexity)]
    static SPARSE_BUFFERS: std::cell::RefCell<(Vec<u32>, Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// How many times a waiting caller polls before it starts yielding its core.
const WAIT_SPINS: u32 = 4096;

/// The claim word packs the call's epoch (high 32 bits) and the next unclaimed chunk (low 32).
const CHUNK_BITS: u32 = 32;
const CHUNK_MASK: u64 = (1 << CHUNK_BITS) - 1;

struct Shared {
    /// `epoch << 32 | next chunk` of the current call. A claim succeeds only for the epoch the
    /// claimer read its job for, so a worker that wakes late never runs a stale job.
    claim: AtomicU64,
    /// Chunks of the current call that are finished.
    finished: AtomicUsize,
    /// The current call and its epoch (workers take it after seeing the epoch change).
    job: Mutex<Option<(u64, Job, usize)>>,
    stop: AtomicBool,
}

impl Shared {
    /// Claims and runs chunks of `job` (epoch `epoch`, `chunks` chunks) until none are left.
    fn work(&self, epoch: u64, job: &Job, chunks: usize) {
        loop {
            let c = self.claim.load(Ordering::Acquire);
            let next = (c & CHUNK_MASK) as usize;
            if c >> CHUNK_BITS != epoch || next >= chunks {
                return;
            }
            if self
                .claim
                .compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // SAFETY: the caller of Pool::run keeps the pointers valid until every chunk is
            // finished; chunk `next` was claimed by this thread alone, and chunks are disjoint.
            unsafe { job.exec(next, chunks) };
            self.finished.fetch_add(1, Ordering::AcqRel);
        }
    }
}

struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    epoch: std::cell::Cell<u64>,
}

impl Pool {
    fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            claim: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            job: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|t| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("casrap-gemv-{t}"))
                    .spawn(move || worker(shared))
                    .expect("spawning a gemv worker thread")
            })
            .collect();
        Self { threads, shared, workers, epoch: std::cell::Cell::new(0) }
    }

    /// Runs `job` on this thread and whichever workers are awake: every thread claims chunks
    /// until none are left, then the caller waits for chunks others are still running, spinning
    /// briefly and then yielding its core (a busy machine may have descheduled that worker).
    /// How many chunks each call is split into.
    fn chunks(&self) -> usize {
        if self.threads == 1 {
            1
        } else {
            self.threads * CHUNKS_PER_THREAD
        }
    }

    fn run(&self, job: Job) {
        self.run_in(job, self.chunks())
    }

    /// [`Pool::run`] with the work split into `chunks` chunks.
    fn run_in(&self, job: Job, chunks: usize) {
        let epoch = self.epoch.get().wrapping_add(1) & (u64::MAX >> CHUNK_BITS);
        self.epoch.set(epoch);
        *self.shared.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, job, chunks));
        self.shared.finished.store(0, Ordering::Release);
        self.shared.claim.store(epoch << CHUNK_BITS, Ordering::Release);
        for w in &self.workers {
            w.thread().unpark();
        }
        self.shared.work(epoch, &job, chunks);
        let mut spins = 0u32;
        while self.shared.finished.load(Ordering::Acquire) < chunks {
            if spins < WAIT_SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let epoch = self.epoch.get().wrapping_add(1) & (u64::MAX >> CHUNK_BITS);
        self.shared.claim.store(epoch << CHUNK_BITS, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

fn worker(shared: Arc<Shared>) {
    // Epoch 0 is the pool before its first call.
    let mut seen = 0;
    loop {
        let mut since = Instant::now();
        let mut spins = 0u32;
        while shared.claim.load(Ordering::Acquire) >> CHUNK_BITS == seen {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) && since.elapsed() > SPIN {
                std::thread::park_timeout(Duration::from_millis(50));
                since = Instant::now();
            } else {
                std::hint::spin_loop();
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let current = *shared.job.lock().unwrap_or_else(|e| e.into_inner());
        let Some((epoch, job, chunks)) = current else {
            seen = shared.claim.load(Ordering::Acquire) >> CHUNK_BITS;
            continue;
        };
        seen = epoch;
        shared.work(epoch, &job, chunks);
    }
}

/// The pool, created on first use with [`threads`] threads; calls are serialised.
static POOL: Mutex<Option<Pool>> = Mutex::new(None);
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Threads the pool uses (default: available parallelism).
pub fn threads() -> usize {
    match THREADS.load(Ordering::Acquire) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

/// Whether batch-1 CPU linears go through this module on this machine.
pub fn enabled() -> bool {
    isa().is_some()
}

/// Sets the CPU thread budget: this pool uses `n` threads; torch gets 1 (or `n` when the kernels
/// are unavailable). Call before running models.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Release);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.as_ref().is_some_and(|p| p.threads != n) {
        *pool = None;
    }
    tch::set_num_threads(if enabled() { 1 } else { n as i32 });
}

/// Applies the default thread budget ([`threads`]) unless [`set_threads`] was called already.
pub fn ensure_configured() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if THREADS.load(Ordering::Acquire) == 0 {
            set_threads(threads());
        }
    });
}

/// While alive, torch may use the whole thread budget (for compute-bound GEMMs such as prefill).
pub struct TorchThreads {
    restore: Option<i32>,
}

impl TorchThreads {
    pub fn lend() -> Self {
        if !enabled() {
            return Self { restore: None };
        }
        let before = tch::get_num_threads();
        tch::set_num_threads(threads() as i32);
        Self { restore: Some(before) }
    }
}

impl Drop for TorchThreads {
    fn drop(&mut self) {
        if let Some(n) = self.restore {
            tch::set_num_threads(n);
        }
    }
}

/// `x @ w.T` for one row `x` (`numel == K`) and a contiguous CPU weight `w` `[N, K]` (f32 or bf16).
/// Returns `None` when this case is not handled here (the caller falls back to torch).
pub fn gemv(w: &Tensor, x: &Tensor) -> Option<Tensor> {
    let wv = WeightView::of(w)?;
    if x.numel() != wv.k || x.device() != Device::Cpu {
        return None;
    }
    let xf = x.to_kind(Kind::Float).contiguous();
    let y = Tensor::empty([wv.n as i64], (Kind::Float, Device::Cpu));
    // SAFETY: `xf` holds k contiguous f32 and `y` n fresh ones, both alive for the call.
    unsafe { wv.run(xf.data_ptr() as *const f32, y.data_ptr() as *mut f32) };
    let mut shape = x.size();
    if let Some(last) = shape.last_mut() {
        *last = wv.n as i64;
    }
    let y = y.view(shape.as_slice());
    Some(if x.kind() == Kind::Float { y } else { y.to_kind(x.kind()) })
}

/// A contiguous CPU `[N, K]` weight (f32 or bf16) the kernels can read, borrowed from its tensor.
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    ptr: usize,
    wkind: WKind,
    isa: Isa,
    pub n: usize,
    pub k: usize,
    _tensor: std::marker::PhantomData<&'a Tensor>,
}

impl<'a> WeightView<'a> {
    /// `None` when the kernels are unavailable or `w` is not a contiguous 2-D f32/bf16 CPU tensor.
    pub fn of(w: &'a Tensor) -> Option<Self> {
        let isa = isa()?;
        if w.device() != Device::Cpu || w.dim() != 2 || !w.is_contiguous() {
            return None;
        }
        let wkind = match w.kind() {
            Kind::Float => WKind::F32,
            Kind::BFloat16 => WKind::Bf16,
            _ => return None,
        };
        let (n, k) = (w.size()[0] as usize, w.size()[1] as usize);
        Some(Self {
            ptr: w.data_ptr() as usize,
            wkind,
            isa,
            n,
            k,
            _tensor: std::marker::PhantomData,
        })
    }

    /// `y = W x` with `x` of `k` and `y` of `n` f32, on the pool.
    ///
    /// # Safety
    /// `x` and `y` are valid for `k` / `n` f32 values and do not overlap.
    pub unsafe fn run(&self, x: *const f32, y: *mut f32) {
        self.run_many(x, 1, y)
    }

    /// `y[i] = W x[i]` for `m` inputs stored one after the other (`x`: `m * k`, `y`: `m * n`),
    /// reading each weight row once for all of them. Each `y[i]` is bit-identical to what
    /// [`WeightView::run`] computes for `x[i]` alone (the same products summed in the same order).
    ///
    /// # Safety
    /// `x` and `y` are valid for `m * k` / `m * n` f32 values and do not overlap.
    pub unsafe fn run_many(&self, x: *const f32, m: usize, y: *mut f32) {
        if m == 0 {
            return;
        }
        // The BF16 dot-product kernel takes its inputs as bf16 too (as HF's bf16 matmuls do).
        let x_bf16: Vec<u16> = if self.isa == Isa::Avx512Bf16 && self.wkind == WKind::Bf16 {
            std::slice::from_raw_parts(x, m * self.k)
                .iter()
                .map(|&v| half::bf16::from_f32(v).to_bits())
                .collect()
        } else {
            Vec::new()
        };
        let x = if x_bf16.is_empty() { x as usize } else { x_bf16.as_ptr() as usize };
        let job = Job::Rows {
            w: self.ptr,
            x,
            y: y as usize,
            k: self.k,
            n: self.n,
            m,
            wkind: self.wkind,
            isa: self.isa,
        };
        let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let pool = guard.get_or_insert_with(|| Pool::new(threads()));
        pool.run(job);
    }

    /// The same view with its borrow erased.
    ///
    /// # Safety
    /// The caller keeps the tensor alive and unchanged for as long as the result is used.
    pub unsafe fn detach(self) -> WeightView<'static> {
        WeightView { _tensor: std::marker::PhantomData, ..self }
    }

    /// `y = W x` on slices.
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        assert!(
            x.len() == self.k && y.len() == self.n,
            "gemv: x {} / y {} for a {}x{} weight",
            x.len(),
            y.len(),
            self.n,
            self.k
        );
        // SAFETY: lengths checked above; `&[f32]` and `&mut [f32]` cannot overlap.
        unsafe { self.run(x.as_ptr(), y.as_mut_ptr()) }
    }

    /// `y[i] = W x[i]` for `x.len() / k` inputs, each weight row read once (see [`Self::run_many`]).
    pub fn matmul(&self, x: &[f32], y: &mut [f32]) {
        let m = x.len() / self.k.max(1);
        assert!(
            x.len() == m * self.k && y.len() == m * self.n,
            "gemv: x {} / y {} for {m} inputs of a {}x{} weight",
            x.len(),
            y.len(),
            self.n,
            self.k
        );
        // SAFETY: lengths checked above; `&[f32]` and `&mut [f32]` cannot overlap.
        unsafe { self.run_many(x.as_ptr(), m, y.as_mut_ptr()) }
    }
}

/// A contiguous CPU weight stored input-major, `[K, N]` (the transpose of HF's `[N, K]`), so the
/// weights one input multiplies are one contiguous row: a sparse product that skips an input
/// skips its row's bytes. Borrowed from its tensor like [`WeightView`].
#[derive(Clone, Copy, Debug)]
pub struct InputMajorView<'a> {
    ptr: usize,
    wkind: WKind,
    isa: Isa,
    /// Outputs (columns).
    pub n: usize,
    /// Inputs (rows).
    pub k: usize,
    _tensor: std::marker::PhantomData<&'a Tensor>,
}

impl<'a> InputMajorView<'a> {
    /// `wt` is `[K, N]`, contiguous, f32 or bf16, on CPU; `None` otherwise or without the kernels.
    pub fn of(wt: &'a Tensor) -> Option<Self> {
        let v = WeightView::of(wt)?;
        Some(Self {
            ptr: v.ptr,
            wkind: v.wkind,
            isa: v.isa,
            n: v.k,
            k: v.n,
            _tensor: std::marker::PhantomData,
        })
    }

    /// The same view with its borrow erased.
    ///
    /// # Safety
    /// The caller keeps the tensor alive and unchanged for as long as the result is used.
    pub unsafe fn detach(self) -> InputMajorView<'static> {
        InputMajorView { _tensor: std::marker::PhantomData, ..self }
    }

    /// `y = W x'` where `x'` is `x` with every input of magnitude below `threshold` zeroed, reading
    /// only the rows of the inputs kept. Returns how many inputs were kept.
    pub fn matvec_sparse(&self, x: &[f32], threshold: f32, y: &mut [f32]) -> usize {
        assert!(
            x.len() == self.k && y.len() == self.n,
            "sparse gemv: x {} / y {} for a {}x{} input-major weight",
            x.len(),
            y.len(),
            self.k,
            self.n
        );
        SPARSE_BUFFERS.with(|b| {
            let (idx, xv, part) = &mut *b.borrow_mut();
            idx.clear();
            xv.clear();
            for (j, &v) in x.iter().enumerate() {
                if v.abs() >= threshold {
                    idx.push(j as u32);
                    xv.push(v);
                }
            }
            let kept = idx.len();
            let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
            let pool = guard.get_or_insert_with(|| Pool::new(threads()));
            // Each chunk sums into a partial output the caller adds up afterwards, so fewer chunks
            // than a dense call (whose chunks write disjoint rows) keep that reduction small.
            let chunks =
                if pool.threads == 1 { 1 } else { pool.threads * SPARSE_CHUNKS_PER_THREAD };
            part.resize(chunks * self.n, 0.0);
            let job = Job::Sparse {
                wt: self.ptr,
                idx: idx.as_ptr() as usize,
                xv: xv.as_ptr() as usize,
                kept,
                n: self.n,
                part: part.as_mut_ptr() as usize,
                wkind: self.wkind,
                isa: self.isa,
            };
            // The job's pointers: `idx` and `xv` hold `kept` entries with indices below `k`,
            // `part` `chunks * n` f32, all alive and unmoved until `run_in` returns.
            pool.run_in(job, chunks);
            drop(guard);
            y.copy_from_slice(&part[..self.n]);
            for p in part[self.n..chunks * self.n].chunks_exact(self.n) {
                y.iter_mut().zip(p).for_each(|(a, b)| *a += b);
            }
            kept
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Weight element types: f32, or bf16 stored as its bit pattern.
    pub trait Scalar: Copy {
        fn f(self) -> f32;
    }
    impl Scalar for f32 {
        fn f(self) -> f32 {
            self
        }
    }
    impl Scalar for u16 {
        fn f(self) -> f32 {
            f32::from_bits((self as u32) << 16)
        }
    }

    /// Dot product of `row[from..k]` with `x[from..k]` (the part that fills no whole vector).
    unsafe fn tail<W: Scalar, X: Scalar>(row: *const W, x: *const X, from: usize, k: usize) -> f32 {
        let mut s = 0f32;
        for j in from..k {
            s += (*row.add(j)).f() * (*x.add(j)).f();
        }
        s
    }

    // One row at a time: consecutive rows are adjacent, so each thread reads its share of the
    // matrix as a single sequential stream, which the hardware prefetchers follow at close to full
    // bandwidth (interleaving several rows' streams, each only a page or two long, measured 10-15%
    // slower on a fast memory system). Four accumulators hide the FMA latency.
    macro_rules! rows_kernel {
        ($name:ident, $feat:literal, $wty:ty, $xty:ty, $step:expr, $zero:ident, $dot:ident, $add:ident, $reduce:ident) => {
            /// `y[r] = dot(w[r, :], x)` for rows `r0..r1`.
            ///
            /// # Safety
            /// The CPU supports the target features; `w` holds rows `r0..r1` of length `k`, `x`
            /// holds `k` values, `y` at least `r1` values.
            #[target_feature(enable = $feat)]
            pub unsafe fn $name(
                w: *const $wty,
                x: *const $xty,
                y: *mut f32,
                k: usize,
                r0: usize,
                r1: usize,
            ) {
                let full4 = k / (4 * $step) * (4 * $step);
                let full = k / $step * $step;
                for r in r0..r1 {
                    let p = w.add(r * k);
                    let (mut a0, mut a1, mut a2, mut a3) = ($zero(), $zero(), $zero(), $zero());
                    let mut j = 0;
                    while j < full4 {
                        a0 = $dot(a0, p.add(j), x.add(j));
                        a1 = $dot(a1, p.add(j + $step), x.add(j + $step));
                        a2 = $dot(a2, p.add(j + 2 * $step), x.add(j + 2 * $step));
                        a3 = $dot(a3, p.add(j + 3 * $step), x.add(j + 3 * $step));
                        j += 4 * $step;
                    }
                    while j < full {
                        a0 = $dot(a0, p.add(j), x.add(j));
                        j += $step;
                    }
                    *y.add(r) = $reduce($add($add(a0, a1), $add(a2, a3))) + tail(p, x, full, k);
                }
            }
        };
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn zero512() -> __m512 {
        _mm512_setzero_ps()
    }
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn add512(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn sum512(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
    /// 16 f32 weights times 16 f32 inputs.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dot_f32_512(acc: __m512, w: *const f32, x: *const f32) -> __m512 {
        _mm512_fmadd_ps(_mm512_loadu_ps(w), _mm512_loadu_ps(x), acc)
    }
    /// 16 bf16 weights (widened exactly to f32) times 16 f32 inputs.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn dot_bf16_512(acc: __m512, w: *const u16, x: *const f32) -> __m512 {
        let wv = _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
            _mm256_loadu_si256(w as *const __m256i),
        )));
        _mm512_fmadd_ps(wv, _mm512_loadu_ps(x), acc)
    }
    /// 32 bf16 weights times 32 bf16 inputs, pairwise products summed into 16 f32 lanes.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn dot_bf16_dp(acc: __m512, w: *const u16, x: *const u16) -> __m512 {
        let wv: __m512bh = std::mem::transmute(_mm512_loadu_si512(w as *const _));
        let xv: __m512bh = std::mem::transmute(_mm512_loadu_si512(x as *const _));
        _mm512_dpbf16_ps(acc, wv, xv)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn zero256() -> __m256 {
        _mm256_setzero_ps()
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn add256(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn sum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_f32_256(acc: __m256, w: *const f32, x: *const f32) -> __m256 {
        _mm256_fmadd_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(x), acc)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot_bf16_256(acc: __m256, w: *const u16, x: *const f32) -> __m256 {
        let wv = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
            _mm_loadu_si128(w as *const __m128i),
        )));
        _mm256_fmadd_ps(wv, _mm256_loadu_ps(x), acc)
    }

    // Several inputs per weight row (a verification pass over a few positions): the row is read
    // from memory once and stays in L1 while groups of up to four inputs go over it. For each
    // input the products and sums are the ones `rows_kernel` makes, in the same order, so every
    // output is bit-identical to the one-input kernel's.
    // Inputs per group: each takes four accumulator registers beside the weight vector (the
    // inputs are FMA memory operands), so AVX2's 16 registers hold three, AVX-512's 32 six.
    macro_rules! multi_kernel {
        ($name:ident, $one:ident, $feat:literal, $wty:ty, $xty:ty, $step:expr, $zero:ident, $dot:ident, $add:ident, $reduce:ident, $group:expr) => {
            #[target_feature(enable = $feat)]
            #[inline]
            #[allow(clippy::needless_range_loop)]
            unsafe fn $one<const M: usize>(
                p: *const $wty,
                x: *const $xty,
                y: *mut f32,
                k: usize,
                n: usize,
            ) {
                let full4 = k / (4 * $step) * (4 * $step);
                let full = k / $step * $step;
                let mut a = [[$zero(); 4]; M];
                let mut j = 0;
                while j < full4 {
                    for s in 0..4 {
                        for i in 0..M {
                            a[i][s] =
                                $dot(a[i][s], p.add(j + s * $step), x.add(i * k + j + s * $step));
                        }
                    }
                    j += 4 * $step;
                }
                while j < full {
                    for i in 0..M {
                        a[i][0] = $dot(a[i][0], p.add(j), x.add(i * k + j));
                    }
                    j += $step;
                }
                for i in 0..M {
                    let v = $reduce($add($add(a[i][0], a[i][1]), $add(a[i][2], a[i][3])));
                    *y.add(i * n) = v + tail(p, x.add(i * k), full, k);
                }
            }

            /// `y[i][r] = dot(w[r, :], x[i])` for rows `r0..r1` and inputs `i < m`.
            ///
            /// # Safety
            /// The CPU supports the target features; `w` holds rows `r0..r1` of length `k`, `x`
            /// holds `m * k` values, `y` `m * n` with `r1 <= n`.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $name(
                w: *const $wty,
                x: *const $xty,
                y: *mut f32,
                k: usize,
                n: usize,
                m: usize,
                r0: usize,
                r1: usize,
            ) {
                const G: usize = $group;
                for r in r0..r1 {
                    let p = w.add(r * k);
                    let mut i = 0;
                    while i + G <= m {
                        $one::<G>(p, x.add(i * k), y.add(i * n + r), k, n);
                        i += G;
                    }
                    let (x, y) = (x.add(i * k), y.add(i * n + r));
                    match m - i {
                        5 => $one::<5>(p, x, y, k, n),
                        4 => $one::<4>(p, x, y, k, n),
                        3 => $one::<3>(p, x, y, k, n),
                        2 => $one::<2>(p, x, y, k, n),
                        1 => $one::<1>(p, x, y, k, n),
                        _ => {}
                    }
                }
            }
        };
    }

    // Input-major sparse product: `out = sum_t xv[t] * wt[idx[t], :]` over kept inputs `i0..i1`.
    // Rows go eight at a time (one load and store of the accumulator per eight weight vectors),
    // columns in blocks of two vectors. Each row is a contiguous stream, so the rows of skipped
    // inputs are never read. bf16 rows are widened by interleaving with zeros (one instruction
    // per vector), which leaves each block's columns permuted: `$unperm` restores the order.
    macro_rules! sparse_kernel {
        ($name:ident, $feat:literal, $wty:ty, $lanes:expr, $vt:ty, $load2:ident, $set1:ident, $fma:ident, $ld:ident, $st:ident, $unperm:expr) => {
            /// # Safety
            /// The CPU supports the target features; `idx[i0..i1]` index rows of `wt` (each `n`
            /// long), `xv` holds `i1` values, `out` `n` f32.
            #[target_feature(enable = $feat)]
            #[allow(clippy::needless_range_loop)]
            pub unsafe fn $name(
                wt: *const $wty,
                idx: *const u32,
                xv: *const f32,
                i0: usize,
                i1: usize,
                n: usize,
                out: *mut f32,
            ) {
                const B: usize = 2 * $lanes;
                const R: usize = 8;
                let full = n / B * B;
                for c in 0..n {
                    *out.add(c) = 0.0;
                }
                let mut t = i0;
                while t < i1 {
                    let g = (i1 - t).min(R);
                    let mut rows = [wt; R];
                    let mut xs = [0f32; R];
                    let mut vx = [$set1(0.0); R];
                    for q in 0..g {
                        rows[q] = wt.add(*idx.add(t + q) as usize * n);
                        xs[q] = *xv.add(t + q);
                        vx[q] = $set1(xs[q]);
                    }
                    // The next group's rows, fetched while this group's are summed: rows of
                    // kept inputs are scattered, so the hardware prefetchers cannot guess them.
                    let next = (i1 - t - g).min(R);
                    let mut ahead = [rows[0]; R];
                    for q in 0..next {
                        ahead[q] = wt.add(*idx.add(t + g + q) as usize * n);
                    }
                    let line = 64 / std::mem::size_of::<$wty>();
                    let mut c = 0;
                    if g == R {
                        while c < full {
                            if c % line == 0 {
                                for q in 0..next {
                                    _mm_prefetch::<_MM_HINT_T0>(ahead[q].add(c) as *const i8);
                                }
                            }
                            let mut lo = $ld(out.add(c));
                            let mut hi = $ld(out.add(c + $lanes));
                            for q in 0..R {
                                let (a, b) = $load2(rows[q].add(c));
                                lo = $fma(a, vx[q], lo);
                                hi = $fma(b, vx[q], hi);
                            }
                            $st(out.add(c), lo);
                            $st(out.add(c + $lanes), hi);
                            c += B;
                        }
                    } else {
                        while c < full {
                            let mut lo = $ld(out.add(c));
                            let mut hi = $ld(out.add(c + $lanes));
                            for q in 0..g {
                                let (a, b) = $load2(rows[q].add(c));
                                lo = $fma(a, vx[q], lo);
                                hi = $fma(b, vx[q], hi);
                            }
                            $st(out.add(c), lo);
                            $st(out.add(c + $lanes), hi);
                            c += B;
                        }
                    }
                    for c in full..n {
                        let mut v = *out.add(c);
                        for q in 0..g {
                            v += (*rows[q].add(c)).f() * xs[q];
                        }
                        *out.add(c) = v;
                    }
                    t += g;
                }
                if $unperm {
                    unpermute::<$lanes>(out, full);
                }
            }
        };
    }

    /// Undoes the column order of bf16 blocks widened by interleaving: in each block of `2 * W`
    /// columns, the first `W` hold columns `8j..8j+4` and the next `W` columns `8j+4..8j+8`, for
    /// each 128-bit lane `j`.
    unsafe fn unpermute<const W: usize>(out: *mut f32, full: usize) {
        let mut tmp = [0f32; 64];
        let mut c = 0;
        while c < full {
            let block = std::slice::from_raw_parts_mut(out.add(c), 2 * W);
            for j in 0..W / 4 {
                for q in 0..4 {
                    tmp[8 * j + q] = block[4 * j + q];
                    tmp[8 * j + 4 + q] = block[W + 4 * j + q];
                }
            }
            block.copy_from_slice(&tmp[..2 * W]);
            c += 2 * W;
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load2_f32_512(p: *const f32) -> (__m512, __m512) {
        (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
    }
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn load2_bf16_512(p: *const u16) -> (__m512, __m512) {
        let w = _mm512_loadu_si512(p as *const _);
        let z = _mm512_setzero_si512();
        (
            _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, w)),
            _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, w)),
        )
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load2_f32_256(p: *const f32) -> (__m256, __m256) {
        (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load2_bf16_256(p: *const u16) -> (__m256, __m256) {
        let w = _mm256_loadu_si256(p as *const __m256i);
        let z = _mm256_setzero_si256();
        (
            _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, w)),
            _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, w)),
        )
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load_f32_512(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn set1_512(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn fma512(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn st512(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_f32_256(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn set1_256(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn fma256(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn st256(p: *mut f32, v: __m256) {
        _mm256_storeu_ps(p, v)
    }

    sparse_kernel!(
        sparse_f32_avx512,
        "avx512f",
        f32,
        16,
        __m512,
        load2_f32_512,
        set1_512,
        fma512,
        load_f32_512,
        st512,
        false
    );
    sparse_kernel!(
        sparse_bf16_avx512,
        "avx512f,avx512bw",
        u16,
        16,
        __m512,
        load2_bf16_512,
        set1_512,
        fma512,
        load_f32_512,
        st512,
        true
    );
    sparse_kernel!(
        sparse_f32_avx2,
        "avx2,fma",
        f32,
        8,
        __m256,
        load2_f32_256,
        set1_256,
        fma256,
        load_f32_256,
        st256,
        false
    );
    sparse_kernel!(
        sparse_bf16_avx2,
        "avx2,fma",
        u16,
        8,
        __m256,
        load2_bf16_256,
        set1_256,
        fma256,
        load_f32_256,
        st256,
        true
    );

    multi_kernel!(
        multi_f32_avx512,
        one_f32_avx512,
        "avx512f",
        f32,
        f32,
        16,
        zero512,
        dot_f32_512,
        add512,
        sum512,
        6
    );
    multi_kernel!(
        multi_bf16_avx512,
        one_bf16_avx512,
        "avx512f",
        u16,
        f32,
        16,
        zero512,
        dot_bf16_512,
        add512,
        sum512,
        6
    );
    multi_kernel!(
        multi_bf16_avx512bf16,
        one_bf16_avx512bf16,
        "avx512f,avx512bf16",
        u16,
        u16,
        32,
        zero512,
        dot_bf16_dp,
        add512,
        sum512,
        6
    );
    multi_kernel!(
        multi_f32_avx2,
        one_f32_avx2,
        "avx2,fma",
        f32,
        f32,
        8,
        zero256,
        dot_f32_256,
        add256,
        sum256,
        3
    );
    multi_kernel!(
        multi_bf16_avx2,
        one_bf16_avx2,
        "avx2,fma",
        u16,
        f32,
        8,
        zero256,
        dot_bf16_256,
        add256,
        sum256,
        3
    );

    rows_kernel!(rows_f32_avx512, "avx512f", f32, f32, 16, zero512, dot_f32_512, add512, sum512);
    rows_kernel!(rows_bf16_avx512, "avx512f", u16, f32, 16, zero512, dot_bf16_512, add512, sum512);
    rows_kernel!(
        rows_bf16_avx512bf16,
        "avx512f,avx512bf16",
        u16,
        u16,
        32,
        zero512,
        dot_bf16_dp,
        add512,
        sum512
    );
    rows_kernel!(rows_f32_avx2, "avx2,fma", f32, f32, 8, zero256, dot_f32_256, add256, sum256);
    rows_kernel!(rows_bf16_avx2, "avx2,fma", u16, f32, 8, zero256, dot_bf16_256, add256, sum256);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every instruction set this CPU can run.
    fn isas() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let avx512 =
                is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
            if avx512 && is_x86_feature_detected!("avx512bf16") {
                v.push(Isa::Avx512Bf16);
            }
            if avx512 {
                v.push(Isa::Avx512);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                v.push(Isa::Avx2);
            }
        }
        v
    }

    /// `y = W x` with the kernels of `isa`.
    fn matvec_with(isa: Isa, w: &Tensor, x: &[f32]) -> Vec<f32> {
        let mut view = WeightView::of(w).expect("a weight the kernels take");
        view.isa = isa;
        let mut y = vec![0f32; view.n];
        view.matvec(x, &mut y);
        y
    }

    /// Against torch's matmul, for every ISA this CPU has, odd sizes included (row and column tails).
    #[test]
    fn matches_torch_matmul() {
        if !enabled() {
            eprintln!("no AVX2/AVX-512 here: gemv falls back to torch, nothing to compare");
            return;
        }
        tch::manual_seed(3);
        for isa in isas() {
            for (n, k) in [(640usize, 256usize), (7, 19), (1, 16), (33, 1000), (4096, 64), (5, 130)]
            {
                let w = Tensor::randn([n as i64, k as i64], (Kind::Float, Device::Cpu));
                let x = Tensor::randn([k as i64], (Kind::Float, Device::Cpu));
                let xs = Vec::<f32>::try_from(&x).expect("f32");
                let want = Vec::<f32>::try_from(&w.mv(&x)).expect("f32");
                let got = matvec_with(isa, &w, &xs);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4 * (k as f32).sqrt(), "{isa:?} f32 {n}x{k}: diff {diff}");

                // bf16 weights and inputs: exact products, f32 sums.
                let wb = w.to_kind(Kind::BFloat16);
                let xb = x.to_kind(Kind::BFloat16).to_kind(Kind::Float);
                let xbs = Vec::<f32>::try_from(&xb).expect("f32");
                let want = Vec::<f32>::try_from(&wb.to_kind(Kind::Float).mv(&xb)).expect("f32");
                let got = matvec_with(isa, &wb, &xbs);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-4 * (k as f32).sqrt(), "{isa:?} bf16 {n}x{k}: diff {diff}");
            }
        }
    }

    /// Several inputs at once give, for each, exactly the one-input kernel's output.
    #[test]
    fn many_inputs_match_one_at_a_time_bit_for_bit() {
        if !enabled() {
            return;
        }
        tch::manual_seed(5);
        for isa in isas() {
            for kind in [Kind::Float, Kind::BFloat16] {
                for (n, k) in [(96usize, 256usize), (7, 19), (33, 1000), (5, 130)] {
                    let w = Tensor::randn([n as i64, k as i64], (kind, Device::Cpu));
                    let mut view = WeightView::of(&w).expect("a weight the kernels take");
                    view.isa = isa;
                    for m in [1usize, 2, 3, 4, 5, 9, 16] {
                        let x = Tensor::randn([(m * k) as i64], (Kind::Float, Device::Cpu));
                        let xs = Vec::<f32>::try_from(&x).expect("f32");
                        let mut y = vec![0f32; m * n];
                        view.matmul(&xs, &mut y);
                        for i in 0..m {
                            let mut one = vec![0f32; n];
                            view.matvec(&xs[i * k..(i + 1) * k], &mut one);
                            let same = one
                                .iter()
                                .zip(&y[i * n..(i + 1) * n])
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{isa:?} {kind:?} {n}x{k} m={m} input {i}");
                        }
                    }
                }
            }
        }
    }

    /// The input-major sparse product equals the dense product of the thresholded input.
    #[test]
    fn sparse_input_major_matches_masked_dense() {
        if !enabled() {
            return;
        }
        tch::manual_seed(9);
        for isa in isas() {
            for kind in [Kind::Float, Kind::BFloat16] {
                for (n, k) in [(640usize, 256usize), (7, 19), (33, 1000), (4096, 64), (3, 5)] {
                    let w = Tensor::randn([n as i64, k as i64], (kind, Device::Cpu));
                    let wt = w.tr().contiguous();
                    let mut view = InputMajorView::of(&wt).expect("input-major view");
                    view.isa = isa;
                    assert_eq!((view.k, view.n), (k, n));
                    let x = Tensor::randn([k as i64], (Kind::Float, Device::Cpu));
                    let xs = Vec::<f32>::try_from(&x).expect("f32");
                    for threshold in [0.0f32, 0.3, 0.8, 10.0] {
                        let masked: Vec<f32> = xs
                            .iter()
                            .map(|&v| if v.abs() >= threshold { v } else { 0.0 })
                            .collect();
                        let want = Vec::<f32>::try_from(
                            &w.to_kind(Kind::Float).mv(&Tensor::from_slice(&masked)),
                        )
                        .expect("f32");
                        let mut got = vec![f32::NAN; n];
                        let kept = view.matvec_sparse(&xs, threshold, &mut got);
                        assert_eq!(
                            kept,
                            masked.iter().zip(&xs).filter(|(_, &v)| v.abs() >= threshold).count()
                        );
                        let diff =
                            got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                        assert!(
                            diff < 1e-4 * (k as f32).sqrt(),
                            "{isa:?} {kind:?} {n}x{k} t={threshold}: diff {diff}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tensor_entry_point_keeps_shape_and_dtype() {
        if !enabled() {
            return;
        }
        let w = Tensor::randn([48, 32], (Kind::Float, Device::Cpu));
        let x = Tensor::randn([1, 1, 32], (Kind::Float, Device::Cpu));
        let got = gemv(&w, &x).expect("handled");
        assert_eq!(got.size(), vec![1, 1, 48]);
        let diff = (&got - x.matmul(&w.tr())).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "diff {diff}");
        let got = gemv(&w.to_kind(Kind::BFloat16), &x.to_kind(Kind::BFloat16)).expect("handled");
        assert_eq!((got.kind(), got.size()), (Kind::BFloat16, vec![1, 1, 48]));
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let w = Tensor::ones([8, 4], (Kind::Float, Device::Cpu));
        assert!(
            gemv(&w.tr(), &Tensor::ones([8], (Kind::Float, Device::Cpu))).is_none(),
            "non-contiguous"
        );
        assert!(gemv(&w, &Tensor::ones([2, 4], (Kind::Float, Device::Cpu))).is_none(), "two rows");
        assert!(
            gemv(&w.to_kind(Kind::Half), &Tensor::ones([4], (Kind::Half, Device::Cpu))).is_none(),
            "f16"
        );
    }
}
