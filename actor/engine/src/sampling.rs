//! Next-token selection: greedy, or seeded temperature / top-p sampling.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    Greedy,
    /// Softmax at `temperature`, keep the smallest set of tokens whose mass reaches `top_p`,
    /// draw from it with a generator seeded by `seed`.
    TopP {
        temperature: f64,
        top_p: f64,
        seed: u64,
    },
}

impl Sampling {
    /// Checks ranges; `temperature == 0` means greedy.
    pub fn new(temperature: f64, top_p: f64, seed: u64) -> Result<Self> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(Error::arg("temperature", format!("{temperature} must be >= 0")));
        }
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(Error::arg("top-p", format!("{top_p} must be in (0, 1]")));
        }
        Ok(if temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::TopP { temperature, top_p, seed }
        })
    }
}

/// Stateful sampler for one generation.
pub struct Sampler {
    sampling: Sampling,
    rng: StdRng,
}

impl Sampler {
    pub fn new(sampling: Sampling) -> Self {
        let seed = match &sampling {
            Sampling::TopP { seed, .. } => *seed,
            Sampling::Greedy => 0,
        };
        Self { sampling, rng: StdRng::seed_from_u64(seed) }
    }

    /// Picks one token per row of `logits` (`[B, V]`).
    pub fn sample(&mut self, logits: &Tensor) -> Vec<u32> {
        match self.sampling {
            Sampling::Greedy => {
                let ids = logits.argmax(-1, false).to_device(tch::Device::Cpu);
                Vec::<i64>::try_from(&ids)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| i as u32)
                    .collect()
            }
            Sampling::TopP { temperature, top_p, .. } => {
                let probs = (logits.to_kind(Kind::Float) / temperature)
                    .softmax(-1, Kind::Float)
                    .to_device(tch::Device::Cpu);
                let rows = probs.size()[0];
                (0..rows)
                    .map(|r| {
                        let p = Vec::<f32>::try_from(&probs.get(r)).unwrap_or_default();
                        top_p_draw(&p, top_p, &mut self.rng)
                    })
                    .collect()
            }
        }
    }
}

/// Draws from the nucleus of `probs`: the most likely tokens whose mass first reaches `top_p`.
fn top_p_draw(probs: &[f32], top_p: f64, rng: &mut StdRng) -> u32 {
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    order
        .sort_unstable_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b)));
    let mut mass = 0.0f64;
    let mut keep = 0;
    for &i in &order {
        mass += probs[i as usize] as f64;
        keep += 1;
        if mass >= top_p {
            break;
        }
    }
    let mut u = rng.gen::<f64>() * mass;
    for &i in &order[..keep] {
        u -= probs[i as usize] as f64;
        if u <= 0.0 {
            return i;
        }
    }
    order[keep.saturating_sub(1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let probs = [0.5f32, 0.3, 0.15, 0.05];
        let mut rng = StdRng::seed_from_u64(7);
        let draws: Vec<u32> = (0..2000).map(|_| top_p_draw(&probs, 0.8, &mut rng)).collect();
        assert!(draws.iter().all(|&t| t < 2), "tokens 2 and 3 lie outside the 0.8 nucleus");
        let zeros = draws.iter().filter(|&&t| t == 0).count() as f64 / draws.len() as f64;
        assert!((zeros - 0.5 / 0.8).abs() < 0.05, "token 0 drawn with share {zeros}");
    }

    #[test]
    fn same_seed_same_draws() {
        let probs = [0.25f32; 4];
        let a: Vec<u32> = {
            let mut r = StdRng::seed_from_u64(1);
            (0..32).map(|_| top_p_draw(&probs, 1.0, &mut r)).collect()
        };
        let b: Vec<u32> = {
            let mut r = StdRng::seed_from_u64(1);
            (0..32).map(|_| top_p_draw(&probs, 1.0, &mut r)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().any(|&t| t != a[0]), "uniform draws should vary");
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(Sampling::new(-1.0, 0.9, 0).is_err());
        assert!(Sampling::new(1.0, 0.0, 0).is_err());
        assert!(Sampling::new(f64::NAN, 0.9, 0).is_err());
        assert_eq!(Sampling::new(0.0, 0.9, 0).ok(), Some(Sampling::Greedy));
    }
}
