//! The Q-network both sides run: an MLP from the state to one value per action, with ReLU between
//! layers, and its wire codec (what `PolicyUpdate.weights` carries).
//!
//! Codec: `b"CQN1"`, `u32` layer-width count, the widths (`u32` each, input first), then per
//! layer the weight `[out, in]` and bias `[out]` as little-endian f32. Decoding checks the magic,
//! the widths (against the expected ones when given), the exact length and that every value is
//! finite.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

/// Why weights could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("policy weights: {0}")]
    Invalid(String),
}

/// The Q-network.
#[derive(Debug)]
pub struct QNet {
    dims: Vec<usize>,
    layers: Vec<(Tensor, Tensor)>,
}

const MAGIC: &[u8; 4] = b"CQN1";

/// The index of the highest value (ties: the lowest index; NaN never wins, and all-NaN or empty
/// gives 0): how every greedy choice is made, so training, test mode and eval agree.
pub fn argmax(q: &[f32]) -> usize {
    q.iter().enumerate().fold(0, |best, (i, &v)| {
        if v > q[best] || q[best].is_nan() && !v.is_nan() {
            i
        } else {
            best
        }
    })
}

impl QNet {
    /// A network with widths `dims` (state size first, action count last), initialised as torch's
    /// `Linear` does (uniform in ±1/sqrt(fan_in)) from `seed`. Parameters require gradients.
    pub fn new(dims: &[usize], seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let layers = dims
            .windows(2)
            .map(|w| {
                let (i, o) = (w[0], w[1]);
                let bound = 1.0 / (i as f32).sqrt();
                let mut draw = |n: usize| -> Tensor {
                    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-bound..bound)).collect();
                    Tensor::from_slice(&v)
                };
                let w = draw(o * i).view([o as i64, i as i64]).set_requires_grad(true);
                let b = draw(o).set_requires_grad(true);
                (w, b)
            })
            .collect();
        Self { dims: dims.to_vec(), layers }
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn actions(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }

    /// Q-values `[B, actions]` of states `[B, state]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let n = self.layers.len();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h.linear(w, Some(b));
            if i + 1 < n {
                h = h.relu();
            }
        }
        h
    }

    /// The Q-values of one state, one per action.
    pub fn q_values(&self, state: &[f32]) -> Result<Vec<f32>, tch::TchError> {
        let _guard = tch::no_grad_guard();
        let q = self.forward(&Tensor::from_slice(state).view([1, -1]));
        Vec::<f32>::try_from(q.reshape([-1]))
    }

    /// The action with the highest Q-value for one state (ties: the lowest index).
    pub fn greedy(&self, state: &[f32]) -> Result<usize, tch::TchError> {
        self.q_values(state).map(|q| argmax(&q))
    }

    /// Every parameter tensor (weights and biases, layer by layer).
    pub fn parameters(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|(w, b)| [w, b]).collect()
    }

    /// Copies `other`'s values into this network (same widths).
    pub fn copy_from(&mut self, other: &QNet) {
        let _guard = tch::no_grad_guard();
        for ((w, b), (ow, ob)) in self.layers.iter_mut().zip(&other.layers) {
            w.copy_(ow);
            b.copy_(ob);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend((self.dims.len() as u32).to_le_bytes());
        for &d in &self.dims {
            out.extend((d as u32).to_le_bytes());
        }
        for t in self.parameters() {
            let v = Vec::<f32>::try_from(&t.detach().to_kind(Kind::Float).contiguous().view([-1]))
                .unwrap_or_default();
            for x in v {
                out.extend(x.to_le_bytes());
            }
        }
        out
    }

    /// Decodes weights, checking them (see the module's notes).
    pub fn decode(bytes: &[u8], expected: Option<&[usize]>) -> Result<Self, CodecError> {
        let bad = |why: String| CodecError::Invalid(why);
        let word = |at: usize| -> Result<u32, CodecError> {
            bytes
                .get(at..at + 4)
                .and_then(|s| <[u8; 4]>::try_from(s).ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| bad(format!("truncated at byte {at}")))
        };
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err(bad("not CQN1 data".into()));
        }
        let n = word(4)? as usize;
        if !(2..=16).contains(&n) {
            return Err(bad(format!("{n} layer widths")));
        }
        let dims: Vec<usize> =
            (0..n).map(|i| word(8 + 4 * i).map(|d| d as usize)).collect::<Result<_, _>>()?;
        if dims.iter().any(|&d| d == 0 || d > 1 << 16) {
            return Err(bad(format!("widths {dims:?}")));
        }
        if let Some(e) = expected {
            if e != dims.as_slice() {
                return Err(bad(format!("widths {dims:?}, expected {e:?}")));
            }
        }
        let params: usize = dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        let start = 8 + 4 * n;
        if bytes.len() != start + 4 * params {
            return Err(bad(format!(
                "{} bytes, widths {dims:?} need {}",
                bytes.len(),
                start + 4 * params
            )));
        }
        let values: Vec<f32> = bytes[start..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!("value {i} is {}", values[i])));
        }
        let mut at = 0;
        let mut take = |n: usize| {
            let t = Tensor::from_slice(&values[at..at + n]);
            at += n;
            t
        };
        let layers = dims
            .windows(2)
            .map(|w| {
                let wt = take(w[0] * w[1]).view([w[1] as i64, w[0] as i64]).set_requires_grad(true);
                (wt, take(w[1]).set_requires_grad(true))
            })
            .collect();
        Ok(Self { dims, layers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_highest_and_never_nan() {
        assert_eq!(argmax(&[0.1, 0.3, 0.3, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.5]), 2);
        assert_eq!(argmax(&[0.2, f32::NAN, 0.1]), 0);
        assert_eq!(argmax(&[]), 0);
        let net = QNet::new(&[3, 8, 4], 1);
        let state = [0.2, 0.5, 0.9];
        let q = net.q_values(&state).expect("q-values");
        assert_eq!(q.len(), 4);
        assert_eq!(net.greedy(&state).expect("greedy"), argmax(&q));
    }

    #[test]
    fn codec_round_trips_and_rejects_bad_data() {
        let q = QNet::new(&[5, 16, 3], 1);
        let bytes = q.encode();
        let back = QNet::decode(&bytes, Some(&[5, 16, 3])).unwrap();
        let x = Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4, 0.5]).view([1, 5]);
        assert!(q.forward(&x).equal(&back.forward(&x)));
        assert!(QNet::decode(&bytes, Some(&[5, 16, 4]))
            .unwrap_err()
            .to_string()
            .contains("expected"));
        assert!(QNet::decode(&bytes[..bytes.len() - 1], None)
            .unwrap_err()
            .to_string()
            .contains("bytes"));
        assert!(QNet::decode(b"nope", None).is_err());
        let mut nan = bytes.clone();
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(QNet::decode(&nan, None).unwrap_err().to_string().contains("NaN"));
        assert_eq!(QNet::new(&[5, 16, 3], 1).encode(), bytes, "seeded");
    }
}
