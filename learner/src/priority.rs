//! Proportional prioritised sampling over the replay store's sliding window of indices: a sum
//! tree with one slot per kept transition (`index % capacity`). Priorities live in the trainer's
//! memory, not in the store: after a restart every kept transition starts at the same priority.

use rand::Rng;

use casrap_common::config::Prioritized;

use crate::ring::Ring;
use casrap_store::replay::Record;

/// A sum tree over `size` leaves (a power of two at least the capacity).
pub struct SumTree {
    size: usize,
    tree: Vec<f64>,
}

impl SumTree {
    pub fn new(capacity: usize) -> Self {
        let size = capacity.max(1).next_power_of_two();
        Self { size, tree: vec![0.0; 2 * size] }
    }
    pub fn total(&self) -> f64 {
        self.tree[1]
    }
    pub fn get(&self, slot: usize) -> f64 {
        self.tree[self.size + slot]
    }
    pub fn set(&mut self, slot: usize, value: f64) {
        let mut i = self.size + slot;
        self.tree[i] = value;
        while i > 1 {
            i /= 2;
            self.tree[i] = self.tree[2 * i] + self.tree[2 * i + 1];
        }
    }
    /// The slot whose cumulative range contains `u` (`0 <= u < total`).
    pub fn find(&self, mut u: f64) -> usize {
        let mut i = 1;
        while i < self.size {
            let left = self.tree[2 * i];
            if u < left {
                i *= 2;
            } else {
                u -= left;
                i = 2 * i + 1;
            }
        }
        i - self.size
    }
}

/// The trainer's prioritised-sampling state.
pub struct Priorities {
    pub cfg: Prioritized,
    capacity: u64,
    tree: SumTree,
    /// Replay index held by each slot.
    index: Vec<u64>,
    /// Next replay index not yet given a priority.
    seen: u64,
    /// Highest priority so far (new transitions start there).
    max: f64,
}

/// A prioritised batch: the records, their slots and their importance weights.
pub struct Drawn {
    pub records: Vec<Record>,
    pub slots: Vec<usize>,
    pub weights: Vec<f32>,
}

impl Priorities {
    pub fn new(cfg: Prioritized, capacity: u64) -> Self {
        Self {
            cfg,
            capacity,
            tree: SumTree::new(capacity as usize),
            index: vec![u64::MAX; capacity as usize],
            seen: 0,
            max: 1.0,
        }
    }

    /// Gives every transition stored since the last call the highest priority (their slots'
    /// previous occupants were evicted).
    fn sync(&mut self, replay: &Ring) {
        let next = replay.next_index();
        let from = self.seen.max(next.saturating_sub(self.capacity));
        for idx in from..next {
            let slot = (idx % self.capacity) as usize;
            self.index[slot] = idx;
            self.tree.set(slot, self.max.powf(self.cfg.alpha));
        }
        self.seen = next;
    }

    /// Draws `n` transitions in proportion to their priorities.
    pub fn sample(&mut self, replay: &Ring, n: usize, beta: f64, rng: &mut impl Rng) -> Drawn {
        self.sync(replay);
        let (mut records, mut slots, mut probs) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let total = self.tree.total();
        let mut misses = 0;
        while records.len() < n && total > 0.0 && misses < 10 * n {
            let slot = self.tree.find(rng.gen_range(0.0..total)).min(self.capacity as usize - 1);
            let p = self.tree.get(slot);
            match replay.get(self.index[slot]) {
                Some(r) if p > 0.0 => {
                    records.push(r);
                    slots.push(slot);
                    probs.push(p / total);
                }
                _ => {
                    // Evicted from the store: it can no longer be drawn.
                    self.tree.set(slot, 0.0);
                    misses += 1;
                }
            }
        }
        let kept = replay.kept().max(1) as f64;
        let raw: Vec<f64> = probs.iter().map(|p| (kept * p).powf(-beta)).collect();
        let top = raw.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
        let weights = raw.iter().map(|w| (w / top) as f32).collect();
        Drawn { records, slots, weights }
    }

    /// New priorities `|td| + eps` for the drawn slots.
    pub fn update(&mut self, slots: &[usize], td: &[f32]) {
        for (&slot, &e) in slots.iter().zip(td) {
            let p = f64::from(e.abs()) + self.cfg.eps;
            self.max = self.max.max(p);
            self.tree.set(slot, p.powf(self.cfg.alpha));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sum_tree_draws_in_proportion() {
        let mut t = SumTree::new(5);
        for (slot, p) in [1.0, 2.0, 0.0, 3.0, 4.0].into_iter().enumerate() {
            t.set(slot, p);
        }
        assert_eq!(t.total(), 10.0);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut counts = [0usize; 5];
        for _ in 0..100_000 {
            counts[t.find(rng.gen_range(0.0..t.total()))] += 1;
        }
        for (slot, want) in [0.1, 0.2, 0.0, 0.3, 0.4].into_iter().enumerate() {
            let got = counts[slot] as f64 / 100_000.0;
            assert!((got - want).abs() < 0.01, "slot {slot}: {got} vs {want}");
        }
    }
}
