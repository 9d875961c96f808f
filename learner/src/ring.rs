//! The trainer's copy of the replay store, in memory: what was kept at start, then every
//! transition the store's feed ([`Replay::feed`]) delivers once durable, evicted as the store
//! evicts. The trainer draws its batches here, never from the store: at a fleet's rate that was
//! about 20,000 sled reads a second from a low-priority thread, beside the committer's writes and
//! sharing sled's caches with them (docs/learner.md, "The trainer's priority"). Memory grows with
//! the store's capacity: each kept transition's fields and its two states, without its record.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};

use casrap_store::replay::{Record, Replay};
use rand::Rng;

use crate::error::Result;

pub struct Ring {
    capacity: u64,
    /// Index of `slots[0]`.
    first: u64,
    /// `slots[i]` holds index `first + i` (`None`: a gap not delivered, never drawn).
    slots: VecDeque<Option<Record>>,
    feed: Receiver<Vec<Record>>,
}

impl Ring {
    /// Subscribes to `replay`'s feed (ending an earlier subscriber's), then copies what it keeps.
    pub fn open(replay: &Replay) -> Result<Self> {
        let feed = replay.feed();
        let mut ring =
            Self { capacity: replay.capacity().max(1), first: 0, slots: VecDeque::new(), feed };
        for r in replay.records()? {
            ring.put(r);
        }
        Ok(ring)
    }

    /// Takes in what the feed delivered since the last call.
    pub fn sync(&mut self) {
        loop {
            match self.feed.try_recv() {
                Ok(batch) => batch.into_iter().for_each(|r| self.put(r)),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            }
        }
    }

    fn put(&mut self, r: Record) {
        let index = r.index;
        if self.slots.is_empty() {
            self.first = index;
        }
        if index < self.first {
            return; // Already evicted here.
        }
        let at = (index - self.first) as usize;
        if at >= self.slots.len() {
            self.slots.resize(at + 1, None);
        }
        self.slots[at] = Some(r);
        let next = self.next_index();
        while self.first + self.capacity < next {
            self.slots.pop_front();
            self.first += 1;
        }
    }

    /// `n` transitions drawn uniformly with replacement (empty when none is kept).
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<Record> {
        let mut out = Vec::with_capacity(n);
        let mut misses = 0;
        while out.len() < n && !self.slots.is_empty() && misses < 10 * n {
            match &self.slots[rng.gen_range(0..self.slots.len())] {
                Some(r) => out.push(r.clone()),
                None => misses += 1,
            }
        }
        out
    }
}

impl Ring {
    /// The next index to be assigned (every smaller one was stored at some point).
    pub fn next_index(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// The transition at `index`, if it is still kept.
    pub fn get(&self, index: u64) -> Option<Record> {
        index
            .checked_sub(self.first)
            .and_then(|i| self.slots.get(i as usize))
            .and_then(|r| r.clone())
    }

    /// Transitions kept.
    pub fn kept(&self) -> u64 {
        self.slots.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use casrap_common::rl::Transition;
    use rand::SeedableRng;

    fn t(seq: u64) -> Transition {
        Transition {
            seq,
            state: vec![seq as f32; 3],
            action: 0,
            reward: 0.5,
            next_state: vec![0.0; 3],
            done: true,
            metrics: Some(format!("{{\"seq\":{seq}}}")),
        }
    }

    #[test]
    fn the_ring_holds_what_the_store_keeps_and_what_it_stores_later() {
        let dir = tempfile::tempdir().unwrap();
        let replay = Replay::open(dir.path(), 5).unwrap();
        replay.insert("a", &(1..=3).map(t).collect::<Vec<_>>()).unwrap();
        let mut ring = Ring::open(&replay).unwrap();
        assert_eq!((ring.next_index(), ring.kept()), (3, 3), "what was kept at start");
        replay.insert("a", &(1..=6).map(t).collect::<Vec<_>>()).unwrap(); // 1-3 are resends
        ring.sync();
        assert_eq!((ring.next_index(), ring.kept()), (6, 5), "evicted as the store does");
        assert_eq!(ring.get(0), None);
        for i in 1..6 {
            let (mine, stored) = (ring.get(i).unwrap(), replay.get(i).unwrap().unwrap());
            assert_eq!(mine.transition.metrics, None, "episode records are not kept here");
            assert_eq!(mine.transition, Transition { metrics: None, ..stored.transition });
            assert_eq!((mine.index, mine.actor.as_str()), (i, "a"));
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
        let drawn = ring.sample(1000, &mut rng);
        assert_eq!(drawn.len(), 1000);
        assert!(drawn.iter().all(|r| (1..6).contains(&r.index)));
        assert!((1..6).all(|i| drawn.iter().any(|r| r.index == i)), "every kept one is drawn");
    }

    #[test]
    fn a_later_subscriber_takes_the_feed_over() {
        let dir = tempfile::tempdir().unwrap();
        let replay = Replay::open(dir.path(), 100).unwrap();
        let mut first = Ring::open(&replay).unwrap();
        let mut second = Ring::open(&replay).unwrap();
        replay.insert("b", &[t(1)]).unwrap();
        first.sync();
        second.sync();
        assert_eq!((first.kept(), second.kept()), (0, 1));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0);
        assert!(first.sample(4, &mut rng).is_empty(), "an empty ring draws nothing");
    }

    #[test]
    fn a_record_that_cannot_be_read_at_start_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let replay = Replay::open(dir.path(), 100).unwrap();
        replay.insert("a", &(1..=4).map(t).collect::<Vec<_>>()).unwrap();
        replay.put_raw_transition(2, b"not a transition").unwrap();
        let err = Ring::open(&replay).err().expect("a damaged store was copied").to_string();
        assert!(err.contains("transitions/2"), "{err}");
    }
}
