//! Perplexity of a model on a token stream, and the unigram baseline on the same positions.
//!
//! The stream is cut into non-overlapping windows of `window` tokens; every token of a window but
//! its first is predicted from the tokens before it in that window (teacher forced, one forward pass
//! per batch of windows). The unigram baseline scores exactly the same predicted positions.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use crate::error::{Error, Result, TorchContext};
use crate::model::{LayerRef, Llama, Logits};

/// Summed negative log-likelihood over a number of predicted tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Nll {
    pub sum: f64,
    pub tokens: usize,
}

impl Nll {
    pub fn perplexity(&self) -> f64 {
        (self.sum / self.tokens.max(1) as f64).exp()
    }
    pub fn add(&mut self, other: Nll) {
        self.sum += other.sum;
        self.tokens += other.tokens;
    }
}

/// Non-overlapping windows of `window` tokens; a shorter last window is kept if it predicts anything.
pub fn windows(tokens: &[u32], window: usize) -> Vec<&[u32]> {
    tokens.chunks(window.max(2)).filter(|w| w.len() >= 2).collect()
}

/// The active profile's NLL on `tokens`, `batch` windows per forward pass.
pub fn evaluate(model: &Llama, tokens: &[u32], window: usize, batch: usize) -> Result<Nll> {
    let _guard = tch::no_grad_guard();
    let vocab = model.config().vocab_size;
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::arg(
            "tokens",
            format!("token id {bad} is outside the vocabulary of {vocab}"),
        ));
    }
    let all = windows(tokens, window);
    let mut total = Nll::default();
    let mut i = 0;
    while i < all.len() {
        // Stack full windows of equal length; a short window goes alone.
        let len = all[i].len();
        let mut j = i + 1;
        while j < all.len() && j - i < batch.max(1) && all[j].len() == len {
            j += 1;
        }
        let flat: Vec<i64> =
            all[i..j].iter().flat_map(|w| w.iter().map(|&t| i64::from(t))).collect();
        let b = (j - i) as i64;
        let ids = Tensor::from_slice(&flat).view([b, len as i64]).to_device(model.device());
        let mut cache = model.new_cache(b as usize, len);
        let logits = model.forward(&ids, &mut cache, Logits::All);
        let logp =
            logits.narrow(1, 0, len as i64 - 1).to_kind(Kind::Float).log_softmax(-1, Kind::Float);
        let targets = ids.narrow(1, 1, len as i64 - 1).unsqueeze(-1);
        let picked = logp.gather(-1, &targets, false);
        let sum = picked.sum(Kind::Double).f_double_value(&[]).ctx(|| "reading the NLL".into())?;
        total.add(Nll { sum: -sum, tokens: (j - i) * (len - 1) });
        i = j;
    }
    Ok(total)
}

/// The best unigram model of the predicted positions (token frequencies fitted on those very
/// positions): a lower bound on any unigram model's perplexity there.
pub fn unigram(tokens: &[u32], window: usize) -> Nll {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut n = 0usize;
    for w in windows(tokens, window) {
        for &t in &w[1..] {
            *counts.entry(t).or_default() += 1;
            n += 1;
        }
    }
    let sum = counts.values().map(|&c| -(c as f64) * (c as f64 / n as f64).ln()).sum();
    Nll { sum, tokens: n }
}

/// Dense perplexity, the unigram baseline and (optionally) each single layer skipped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub dense: Nll,
    pub unigram: Nll,
    /// `(layer, NLL with that layer skipped)`.
    pub skip_layer: Vec<(usize, Nll)>,
}

/// Evaluates the dense `model` on `tokens` (see the module's notes on windows); with
/// `skip_each_layer`, also through a profile per layer that skips it (removed afterwards).
pub fn report(
    model: &mut Llama,
    tokens: &[u32],
    window: usize,
    batch: usize,
    skip_each_layer: bool,
) -> Result<Report> {
    model.activate_dense();
    let dense = evaluate(model, tokens, window, batch)?;
    let mut skip_layer = Vec::new();
    if skip_each_layer {
        let n = model.config().num_layers;
        for layer in 0..n {
            let layers =
                (0..n).map(|i| if i == layer { LayerRef::Skip } else { LayerRef::Dense }).collect();
            let id = model.add_profile(&format!("skip layer {layer}"), layers, None)?;
            model.activate(id)?;
            let nll = evaluate(model, tokens, window, batch);
            model.activate_dense();
            model.remove_profile(id)?;
            skip_layer.push((layer, nll?));
        }
    }
    Ok(Report { dense, unigram: unigram(tokens, window), skip_layer })
}

impl Report {
    /// A Markdown table of every row, with each perplexity relative to the dense model's.
    pub fn table(&self) -> String {
        let d = self.dense.perplexity();
        let mut s = String::from("| evaluation | perplexity | vs dense |\n| --- | ---: | ---: |\n");
        s += &format!("| dense model | {d:.2} | 1.00x |\n");
        s += &format!(
            "| unigram, fitted on these tokens (lower bound for any unigram model) | {:.2} | {:.2}x |\n",
            self.unigram.perplexity(),
            self.unigram.perplexity() / d
        );
        for (layer, nll) in &self.skip_layer {
            let p = nll.perplexity();
            s += &format!("| layer {layer} skipped | {p:.2} | {:.2}x |\n", p / d);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_drop_only_unpredictable_tails() {
        let t: Vec<u32> = (0..10).collect();
        let w = windows(&t, 4);
        assert_eq!(w, vec![&t[0..4], &t[4..8], &t[8..10]]);
        assert_eq!(windows(&t[..9], 4).len(), 2);
    }

    #[test]
    fn unigram_of_uniform_tokens_is_the_alphabet_size() {
        let t: Vec<u32> = (0..400).map(|i| i % 4).collect();
        let nll = unigram(&t, 400);
        assert_eq!(nll.tokens, 399);
        assert!((nll.perplexity() - 4.0).abs() < 1e-2, "{}", nll.perplexity());
    }
}
