//! The replay store on sled: transitions in insertion order with FIFO eviction at a capacity,
//! uniform sampling, exactly-once storage per `(actor_id, seq)`, and per-episode metric records
//! kept (never evicted) for reports.
//!
//! One tree, keyspaces by prefix (keys big-endian so ranges are ordered), so that each batch is
//! one atomic `apply_batch` (a crash keeps a batch whole or not at all; sled transactions over
//! several trees were measured about a third slower):
//! - `t` + index: an encoded transition (actor id included);
//! - `e` + index: the episode's metrics JSON, for transitions that carry one;
//! - `a` + actor id: the highest seq stored for that actor;
//! - `m` + `head` / `next`: the oldest index kept and the next one to assign.
//!
//! A seq at or below the actor's mark is a duplicate (acknowledged, not stored). [`Replay::insert`]
//! returns once the batch is durable; concurrent inserts share one flush (group commit).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use casrap_common::rl::Transition;
use rand::Rng;
use sled::Tree;

use crate::error::{Error, Result};

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub stored: u32,
    pub duplicates: u32,
    /// Highest seq of the actor now durable.
    pub durable_seq: u64,
}

/// A transition read back, with the actor that sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub index: u64,
    pub actor: String,
    pub transition: Transition,
}

/// The single writer's view (behind `write`).
struct Writer {
    /// Batches applied so far: each batch's ticket for the group commit.
    applied: u64,
    head: u64,
    next: u64,
    /// Actor marks seen so far (others are read from the tree on first use).
    high: HashMap<String, u64>,
}

pub struct Replay {
    path: PathBuf,
    db: sled::Db,
    tree: Tree,
    capacity: u64,
    write: Mutex<Writer>,
    /// `head` and `next` for readers, updated after each batch is applied.
    head: AtomicU64,
    next: AtomicU64,
    /// Group commit: one flush makes every batch applied before it durable.
    sync: Mutex<SyncState>,
    synced: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Highest ticket known durable.
    durable: u64,
    /// Whether some writer is flushing now.
    flushing: bool,
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

fn read_u64(bytes: Option<sled::IVec>) -> u64 {
    bytes.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map_or(0, u64::from_be_bytes)
}

/// `[version 1][actor len u16][actor][seq u64][action u32][reward f32][done u8][n u32][state][m u32][next]`, little-endian.
fn encode(actor: &str, t: &Transition) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + actor.len() + 4 * (t.state.len() + t.next_state.len()));
    out.push(1u8);
    out.extend((actor.len() as u16).to_le_bytes());
    out.extend(actor.as_bytes());
    out.extend(t.seq.to_le_bytes());
    out.extend(t.action.to_le_bytes());
    out.extend(t.reward.to_le_bytes());
    out.push(u8::from(t.done));
    for v in [&t.state, &t.next_state] {
        out.extend((v.len() as u32).to_le_bytes());
        for x in v.iter() {
            out.extend(x.to_le_bytes());
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|s| s.try_into().ok())
    }
    fn floats(&mut self) -> Option<Vec<f32>> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        let raw = self.take(n.checked_mul(4)?)?;
        Some(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

fn decode(bytes: &[u8]) -> Option<(String, Transition)> {
    let mut r = Reader(bytes);
    if r.array::<1>()? != [1] {
        return None;
    }
    let n = u16::from_le_bytes(r.array()?) as usize;
    let actor = String::from_utf8(r.take(n)?.to_vec()).ok()?;
    let seq = u64::from_le_bytes(r.array()?);
    let action = u32::from_le_bytes(r.array()?);
    let reward = f32::from_le_bytes(r.array()?);
    let done = r.array::<1>()?[0] != 0;
    let state = r.floats()?;
    let next_state = r.floats()?;
    Some((actor, Transition { seq, state, action, reward, next_state, done, metrics: None }))
}

impl Replay {
    /// Opens (or creates) the store at `path`, keeping at most `capacity` transitions.
    pub fn open(path: &Path, capacity: u64) -> Result<Self> {
        let err = |source| Error::Store { path: path.into(), source };
        // sled releases its file lock from a background thread shortly after a close, so an
        // in-process reopen (a restart in tests, say) may need a moment.
        let mut tries = 0;
        let db = loop {
            match sled::open(path) {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(err(e)),
            }
        };
        let tree = db.open_tree("replay").map_err(err)?;
        let head = read_u64(tree.get(key(b'm', b"head")).map_err(err)?);
        let next = read_u64(tree.get(key(b'm', b"next")).map_err(err)?);
        Ok(Self {
            path: path.into(),
            db,
            tree,
            capacity: capacity.max(1),
            write: Mutex::new(Writer { applied: 0, head, next, high: HashMap::new() }),
            head: AtomicU64::new(head),
            next: AtomicU64::new(next),
            sync: Mutex::new(SyncState::default()),
            synced: Condvar::new(),
        })
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Store { path: self.path.clone(), source }
    }

    /// Stores the transitions of `actor` not stored before, evicting the oldest beyond capacity,
    /// and returns once they are durable. Concurrent callers share flushes (group commit).
    pub fn insert(&self, actor: &str, batch: &[Transition]) -> Result<Stored> {
        let mut w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mark = key(b'a', actor.as_bytes());
        let mut high = match w.high.get(actor) {
            Some(&h) => h,
            None => read_u64(self.tree.get(&mark).map_err(|e| self.err(e))?),
        };
        let (mut head, mut next) = (w.head, w.next);
        let (mut stored, mut duplicates) = (0u32, 0u32);
        let mut b = sled::Batch::default();
        for tr in batch {
            if tr.seq <= high {
                duplicates += 1;
                continue;
            }
            b.insert(key(b't', &be(next)), encode(actor, tr));
            if let Some(json) = &tr.metrics {
                b.insert(key(b'e', &be(next)), json.as_bytes());
            }
            next += 1;
            high = tr.seq;
            stored += 1;
        }
        while next - head > self.capacity {
            b.remove(key(b't', &be(head)));
            head += 1;
        }
        if stored > 0 {
            b.insert(mark, &be(high));
            b.insert(key(b'm', b"head"), &be(head));
            b.insert(key(b'm', b"next"), &be(next));
            self.tree.apply_batch(b).map_err(|e| self.err(e))?;
            w.head = head;
            w.next = next;
            self.head.store(head, Ordering::Release);
            self.next.store(next, Ordering::Release);
        }
        w.high.insert(actor.to_string(), high);
        w.applied += 1;
        let ticket = w.applied;
        drop(w);
        self.wait_durable(ticket)?;
        Ok(Stored { stored, duplicates, durable_seq: high })
    }

    /// Blocks until every batch up to `ticket` is on disk. The first waiter flushes for everyone
    /// applied before its flush began; the others wait for it (and flush again if still behind).
    fn wait_durable(&self, ticket: u64) -> Result<()> {
        let mut st = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if st.durable >= ticket {
                return Ok(());
            }
            if st.flushing {
                st = self.synced.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.flushing = true;
            drop(st);
            // Every batch with a ticket up to `applied` was applied before this flush starts.
            let applied = self.write.lock().unwrap_or_else(|e| e.into_inner()).applied;
            let flushed = self.db.flush();
            st = self.sync.lock().unwrap_or_else(|e| e.into_inner());
            st.flushing = false;
            if flushed.is_ok() {
                st.durable = st.durable.max(applied);
            }
            self.synced.notify_all();
            flushed.map_err(|e| self.err(e))?;
        }
    }

    /// Highest seq of `actor` stored (0: none).
    pub fn durable_seq(&self, actor: &str) -> Result<u64> {
        Ok(read_u64(self.tree.get(key(b'a', actor.as_bytes())).map_err(|e| self.err(e))?))
    }

    /// `(head, next)`: the oldest index kept and the next one to assign.
    fn bounds(&self) -> Result<(u64, u64)> {
        Ok((self.head.load(Ordering::Acquire), self.next.load(Ordering::Acquire)))
    }

    /// Transitions kept.
    pub fn len(&self) -> Result<u64> {
        let (head, next) = self.bounds()?;
        Ok(next - head)
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Transitions stored since the store was created (evicted ones included).
    pub fn total(&self) -> Result<u64> {
        Ok(self.bounds()?.1)
    }

    fn record(&self, index: u64, bytes: &[u8]) -> Result<Record> {
        let (actor, transition) = decode(bytes).ok_or_else(|| Error::Corrupt {
            path: self.path.clone(),
            key: format!("transitions/{index}"),
            reason: "cannot be decoded".into(),
        })?;
        Ok(Record { index, actor, transition })
    }

    /// The transition at `index`, if it is still kept.
    pub fn get(&self, index: u64) -> Result<Option<Record>> {
        match self.tree.get(key(b't', &be(index))).map_err(|e| self.err(e))? {
            Some(bytes) => Ok(Some(self.record(index, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The most transitions kept.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The next index to be assigned (every smaller one was stored at some point).
    pub fn next_index(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// `n` transitions drawn uniformly with replacement (empty when the store is).
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(n);
        let mut misses = 0;
        while out.len() < n {
            let (head, next) = self.bounds()?;
            if next == head {
                break;
            }
            let index = rng.gen_range(head..next);
            match self.tree.get(key(b't', &be(index))).map_err(|e| self.err(e))? {
                Some(bytes) => out.push(self.record(index, &bytes)?),
                // Evicted between reading the bounds and the read: draw again.
                None if misses < 1000 => misses += 1,
                None => break,
            }
        }
        Ok(out)
    }

    /// Every transition kept, oldest first.
    pub fn records(&self) -> Result<Vec<Record>> {
        self.tree
            .scan_prefix([b't'])
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.err(e))?;
                self.record(read_u64(Some(k.subslice(1, 8))), &v)
            })
            .collect()
    }

    /// Every episode record (JSON), in insertion order, evicted transitions' included.
    pub fn episodes(&self) -> Result<Vec<(u64, String)>> {
        self.tree
            .scan_prefix([b'e'])
            .map(|kv| {
                let (k, v) = kv.map_err(|e| self.err(e))?;
                let index = read_u64(Some(k.subslice(1, 8)));
                let json = String::from_utf8(v.to_vec()).map_err(|_| Error::Corrupt {
                    path: self.path.clone(),
                    key: format!("episodes/{index}"),
                    reason: "not UTF-8".into(),
                })?;
                Ok((index, json))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_and_rejects_truncation() {
        let t = Transition { seq: 7, state: vec![0.5, -1.0], action: 3, reward: -0.25, next_state: vec![1.0, 2.0], done: true, metrics: None };
        let bytes = encode("actor-1", &t);
        assert_eq!(decode(&bytes), Some(("actor-1".to_string(), t)));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
    }
}
