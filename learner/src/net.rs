//! The Q-network the trainer differentiates: [`QNet`]'s layers as tch tensors that require
//! gradients, with the batched forward pass, parameter access for Adam and a hard copy for the
//! target network. It starts from, and is published as, the plain [`QNet`] every reader uses.

use casrap_common::qnet::{CodecError, Layer, QNet};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct Net {
    dims: Vec<usize>,
    layers: Vec<(Tensor, Tensor)>,
}

impl Net {
    /// The seeded network of [`QNet::new`], as trainable tensors.
    pub fn new(dims: &[usize], seed: u64) -> Self {
        Self::from_policy(&QNet::new(dims, seed))
    }

    pub fn from_policy(q: &QNet) -> Self {
        let dims = q.dims().to_vec();
        let layers = q
            .layers()
            .iter()
            .zip(dims.windows(2))
            .map(|(l, w)| {
                let weight = Tensor::from_slice(&l.weight)
                    .view([w[1] as i64, w[0] as i64])
                    .set_requires_grad(true);
                (weight, Tensor::from_slice(&l.bias).set_requires_grad(true))
            })
            .collect();
        Self { dims, layers }
    }

    /// The current values as a plain network (what is published and checkpoint readers see).
    pub fn to_policy(&self) -> Result<QNet, CodecError> {
        let values = |t: &Tensor| {
            Vec::<f32>::try_from(&t.detach().to_kind(Kind::Float).contiguous().view([-1]))
                .map_err(|e| CodecError::Invalid(e.to_string()))
        };
        let layers = self
            .layers
            .iter()
            .map(|(w, b)| Ok(Layer { weight: values(w)?, bias: values(b)? }))
            .collect::<Result<Vec<_>, CodecError>>()?;
        QNet::from_layers(&self.dims, layers)
    }

    /// The codec bytes of [`Net::to_policy`]; an error when the values cannot be read or are
    /// not finite (such a network is never published).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        self.to_policy().map(|q| q.encode())
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
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

    /// Every parameter tensor (weights and biases, layer by layer).
    pub fn parameters(&self) -> Vec<&Tensor> {
        self.layers.iter().flat_map(|(w, b)| [w, b]).collect()
    }

    /// Copies `other`'s values into this network (same widths).
    pub fn copy_from(&mut self, other: &Net) {
        let _guard = tch::no_grad_guard();
        for ((w, b), (ow, ob)) in self.layers.iter_mut().zip(&other.layers) {
            w.copy_(ow);
            b.copy_(ob);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trained_network_agrees_with_the_plain_one() {
        let q = QNet::new(&[5, 16, 3], 1);
        let net = Net::new(&[5, 16, 3], 1);
        assert_eq!(net.to_policy().unwrap(), q, "same seeded values");
        assert_eq!(net.encode().unwrap(), q.encode());
        let states = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.9, 0.0, 0.7, 0.3, 0.1];
        let batch = Tensor::from_slice(&states).view([2, 5]);
        let tq = Vec::<f32>::try_from(net.forward(&batch).detach().view([-1])).unwrap();
        let plain: Vec<f32> = q.q_batch(&states).unwrap().concat();
        for (a, b) in tq.iter().zip(&plain) {
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "tch {a} vs plain {b}");
        }
    }
}
