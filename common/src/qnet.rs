//! The Q-network's weights as every reader of a policy holds them: an MLP from the state to one
//! value per action, with ReLU between layers, evaluated in plain f32 (no libtorch: actors, test
//! mode, eval and the orchestrator's reports read policies with it; the learner trains its own
//! copy in tch and publishes it through this codec).
//!
//! Codec (what `PolicyUpdate.weights` carries): `b"CQN1"`, `u32` layer-width count, the widths
//! (`u32` each, input first), then per layer the weight `[out, in]` and bias `[out]` as
//! little-endian f32. Decoding checks the magic, the widths (against the expected ones when
//! given), the exact length and that every value is finite.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Why weights could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("policy weights: {0}")]
    Invalid(String),
    #[error("state has {got} values, the Q-network takes {want}")]
    State { got: usize, want: usize },
    #[error("{values} values are not a whole number of states of {width}")]
    Batch { values: usize, width: usize },
}

/// Widths a network may have: 2 to 16 of them (input first), each from 1 to 65536.
fn check_dims(dims: &[usize]) -> Result<(), CodecError> {
    if !(2..=16).contains(&dims.len()) {
        return Err(CodecError::Invalid(format!("{} layer widths", dims.len())));
    }
    if dims.iter().any(|&d| d == 0 || d > 1 << 16) {
        return Err(CodecError::Invalid(format!("widths {dims:?}")));
    }
    Ok(())
}

/// One layer: `weight` is `[out, in]` row-major, `bias` is `[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The Q-network.
#[derive(Debug, Clone, PartialEq)]
pub struct QNet {
    dims: Vec<usize>,
    layers: Vec<Layer>,
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
    /// `Linear` does (uniform in ±1/sqrt(fan_in)) from `seed`.
    pub fn new(dims: &[usize], seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let layers = dims
            .windows(2)
            .map(|w| {
                let (i, o) = (w[0], w[1]);
                let bound = 1.0 / (i as f32).sqrt();
                let mut draw = |n: usize| -> Vec<f32> {
                    (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
                };
                let weight = draw(o * i);
                Layer { weight, bias: draw(o) }
            })
            .collect();
        Self { dims: dims.to_vec(), layers }
    }

    /// A network from its layers, checked against `dims` (see [`QNet::decode`]'s width rules;
    /// every value finite).
    pub fn from_layers(dims: &[usize], layers: Vec<Layer>) -> Result<Self, CodecError> {
        let bad = |why: String| CodecError::Invalid(why);
        check_dims(dims)?;
        if layers.len() != dims.len() - 1 {
            return Err(bad(format!("{} layers for widths {dims:?}", layers.len())));
        }
        for (k, (l, w)) in layers.iter().zip(dims.windows(2)).enumerate() {
            if l.weight.len() != w[0] * w[1] || l.bias.len() != w[1] {
                return Err(bad(format!(
                    "layer {k}: {} weights and {} biases, widths {dims:?} need {} and {}",
                    l.weight.len(),
                    l.bias.len(),
                    w[0] * w[1],
                    w[1]
                )));
            }
            if let Some(v) = l.weight.iter().chain(&l.bias).find(|v| !v.is_finite()) {
                return Err(bad(format!("layer {k} holds {v}")));
            }
        }
        Ok(Self { dims: dims.to_vec(), layers })
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn actions(&self) -> usize {
        self.dims.last().copied().unwrap_or(0)
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The Q-values of one state, one per action.
    pub fn q_values(&self, state: &[f32]) -> Result<Vec<f32>, CodecError> {
        let want = self.dims[0];
        if state.len() != want {
            return Err(CodecError::State { got: state.len(), want });
        }
        let mut h = state.to_vec();
        let n = self.layers.len();
        for (k, l) in self.layers.iter().enumerate() {
            // Widths are at least 1 (checked when the network is made or decoded).
            let inputs = h.len().max(1);
            h = l
                .weight
                .chunks_exact(inputs)
                .zip(&l.bias)
                .map(|(row, b)| {
                    let v = row.iter().zip(&h).map(|(w, x)| w * x).sum::<f32>() + b;
                    if k + 1 < n {
                        v.max(0.0)
                    } else {
                        v
                    }
                })
                .collect();
        }
        Ok(h)
    }

    /// The Q-values of `states` (one after another, `dims()[0]` values each), one row per state.
    pub fn q_batch(&self, states: &[f32]) -> Result<Vec<Vec<f32>>, CodecError> {
        let width = self.dims[0].max(1);
        if !states.len().is_multiple_of(width) {
            return Err(CodecError::Batch { values: states.len(), width });
        }
        states.chunks_exact(width).map(|s| self.q_values(s)).collect()
    }

    /// The action with the highest Q-value for one state (ties: the lowest index).
    pub fn greedy(&self, state: &[f32]) -> Result<usize, CodecError> {
        self.q_values(state).map(|q| argmax(&q))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend((self.dims.len() as u32).to_le_bytes());
        for &d in &self.dims {
            out.extend((d as u32).to_le_bytes());
        }
        for l in &self.layers {
            for x in l.weight.iter().chain(&l.bias) {
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
        check_dims(&dims)?;
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
        let mut rest = values.as_slice();
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head.to_vec()
        };
        let layers = dims
            .windows(2)
            .map(|w| {
                let weight = take(w[0] * w[1]);
                Layer { weight, bias: take(w[1]) }
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
        assert_eq!(net.q_values(&[0.1]), Err(CodecError::State { got: 1, want: 3 }));
    }

    #[test]
    fn q_values_are_the_mlp_written_out() {
        // Widths [2, 2, 1]: h = relu(W0 x + b0), q = W1 h + b1, with one hidden unit cut by ReLU.
        let layers = vec![
            Layer { weight: vec![1.0, 2.0, -1.0, -1.0], bias: vec![0.5, 0.0] },
            Layer { weight: vec![3.0, 10.0], bias: vec![-1.0] },
        ];
        let net = QNet::from_layers(&[2, 2, 1], layers).unwrap();
        // x = (1, 2): h = (1 + 4 + 0.5, relu(-3)) = (5.5, 0); q = 16.5 - 1.
        assert_eq!(net.q_values(&[1.0, 2.0]).unwrap(), vec![15.5]);
        assert_eq!(net.q_batch(&[1.0, 2.0, 0.0, 0.0]).unwrap(), vec![vec![15.5], vec![0.5]]);
        let e = net.q_batch(&[1.0, 2.0, 3.0]).unwrap_err().to_string();
        assert_eq!(e, "3 values are not a whole number of states of 2");
        let short = vec![Layer { weight: vec![1.0], bias: vec![0.0] }];
        assert!(QNet::from_layers(&[2, 1], short).unwrap_err().to_string().contains("layer 0"));
        let empty = vec![Layer { weight: vec![], bias: vec![] }];
        assert!(QNet::from_layers(&[0, 0], empty).unwrap_err().to_string().contains("widths"));
    }

    #[test]
    fn codec_round_trips_and_rejects_bad_data() {
        let q = QNet::new(&[5, 16, 3], 1);
        let bytes = q.encode();
        let back = QNet::decode(&bytes, Some(&[5, 16, 3])).unwrap();
        assert_eq!(back, q);
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
