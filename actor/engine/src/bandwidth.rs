//! The memory-bandwidth ceiling of batch-1 decode: read bandwidth of a large reduction, measured
//! with the same thread budget the engine uses, as close in time to the run it bounds as possible
//! (on shared machines it drifts by tens of percent within minutes).

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::gemv::TorchThreads;
use crate::generate::synchronize;

/// A 1 GiB f32 buffer (on the model's device) whose sum is timed.
pub struct BandwidthProbe {
    buf: Tensor,
    device: Device,
}

impl BandwidthProbe {
    pub fn new(device: Device) -> Self {
        Self { buf: Tensor::ones([256 * 1024 * 1024], (Kind::Float, device)), device }
    }

    /// Bytes per second of `sum` over the buffer: median of `reps` timings after one warm-up.
    pub fn measure(&self, reps: usize) -> f64 {
        let _threads = TorchThreads::lend();
        let bytes = (self.buf.numel() * 4) as f64;
        let mut rates: Vec<f64> = (0..reps.max(1) + 1)
            .map(|_| {
                synchronize(self.device);
                let t = Instant::now();
                let s = self.buf.sum(Kind::Float).double_value(&[]);
                synchronize(self.device);
                std::hint::black_box(s);
                bytes / t.elapsed().as_secs_f64()
            })
            .skip(1)
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }
}
