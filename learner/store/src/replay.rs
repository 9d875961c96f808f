//! The replay store on sled: transitions in insertion order with FIFO eviction at a capacity,
//! uniform sampling, exactly-once storage per `(actor_id, seq)`, and per-episode metric records
//! kept (never evicted) for reports.
//!
//! One tree, keyspaces by prefix (keys big-endian so ranges are ordered), so that each batch is
//! one atomic `apply_batch` (a crash keeps a batch whole or not at all; sled transactions over
//! several trees were measured about a third slower):
//! - `c` + chunk number: the encoded transitions (actor ids included) of [`chunks::CHUNK`]
//!   consecutive indices ([`crate::chunks`]); stores of earlier versions held one `t` + index key
//!   per transition and are converted when opened;
//! - `x` + actor id + 0 + seq: where that episode's record lies in the episode log
//!   ([`crate::episodes`]: offset, length, transition index), so export reads the records in
//!   actor and seq order without holding them (actor ids are printable ASCII, so the 0 byte ends
//!   the id and ids sort as strings); in stores of earlier versions the value is the index of an
//!   `e` key;
//! - `e` + index: (earlier versions only) the episode's metrics JSON, kept in the tree;
//! - `a` + actor id: the highest seq stored for that actor;
//! - `m` + `head` / `next`: the oldest index kept and the next one to assign;
//! - `m` + `episode-log`: the episode log's committed length;
//! - `m` + `policy`: the newest policy version ever published (so a learner whose checkpoints are
//!   all lost still publishes versions its running actors accept);
//! - `m` + `episode-index`: present when every episode record has its `x` key (stores made
//!   before the index was added have records without one).
//!
//! Seqs of an actor are contiguous: a seq at or below the actor's mark is a duplicate
//! (acknowledged, not stored), the next one must be the mark + 1, and a batch that would leave a
//! gap is refused whole. [`Replay::insert`] returns once the batch is durable; concurrent inserts
//! share one flush (group commit).
//!
//! What is *durable* and what is only *applied* are kept apart: [`Replay::durable_seq`] (what
//! `Register` and `Status` report) moves only after the flush that covers a batch succeeded, so a
//! client resuming from it never skips a transition that a crash could still lose.
//!
//! Every group commit's raised marks go to the witness (`marks.log`, [`crate::witness`]) after
//! sled's flush and before the acks; a store that opens holding less than its witness says was
//! acknowledged is refused (or, when the operator says so, accepted with the loss logged).
//!
//! A failed write or flush (a full disk, say) poisons a sled database for good, so the store
//! marks itself broken and the next insert (at most once a second) reopens it from disk: what
//! was durable is back, what was only applied is gone and its senders resend it. The learner so
//! recovers when space returns, without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use casrap_common::rl::Transition;
use rand::Rng;
use sled::Tree;

use crate::chunks::{self, CHUNK};
use crate::episodes::{self, EpisodeLog, Place};
use crate::error::{Error, Result};
use crate::witness::{self, Witness};

/// Most async inserts one commit round applies together.
const MAX_ROUND: usize = 8192;

/// How often a broken store is reopened at most.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// Default page-cache budget of sled (its own default is 1 GiB, which a long run reaches).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

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
    /// Batches applied so far: each batch's ticket for the group commit (never reset).
    applied: u64,
    head: u64,
    next: u64,
    /// The episode log's length as applied (committed in the tree with each batch).
    log_len: u64,
    /// The encoded transitions of the last, partly filled chunk (`next % CHUNK` of them).
    tail: Vec<Vec<u8>>,
    /// Actor marks applied so far (others are read from the tree on first use).
    high: HashMap<String, u64>,
    /// Marks raised since the last group commit began: what its witness line records.
    raised: HashMap<String, u64>,
    /// Set when a write or flush failed: why, and when the store was last (re)opened.
    broken: Option<String>,
    opened: Instant,
}

/// One opening of the database.
struct Store {
    db: sled::Db,
    tree: Tree,
    episodes: EpisodeLog,
    /// Counts openings: tickets of an earlier opening can no longer become durable.
    epoch: u64,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The most transitions kept (the oldest are evicted beyond it).
    pub capacity: u64,
    /// sled's page-cache budget in bytes (bounds the learner's memory).
    pub cache_bytes: u64,
    /// Serve a store that holds less than its witness says was acknowledged: each loss is
    /// logged, the actors' marks are raised past it (their next seqs are accepted) and the
    /// witness restarts from the store. Without it such a store is refused.
    pub accept_lost_data: bool,
}

impl OpenOptions {
    pub fn new(capacity: u64) -> Self {
        Self { capacity, cache_bytes: DEFAULT_CACHE_BYTES, accept_lost_data: false }
    }
}

pub struct Replay {
    path: PathBuf,
    capacity: u64,
    cache_bytes: u64,
    /// The log of acknowledged marks, appended by each group commit (None while reopening).
    witness: Mutex<Option<Witness>>,
    store: RwLock<Option<Store>>,
    write: Mutex<Writer>,
    /// Set when a failed opening could not be closed (sled hangs in its flush on drop after some
    /// write errors, holding the file lock): only a restart of the process can reopen it.
    wedged: Mutex<Option<String>>,
    /// Highest seq per actor known durable: read at open, raised after each successful flush.
    durable: Mutex<HashMap<String, u64>>,
    /// `head` and `next` for readers, updated after each batch is applied.
    head: AtomicU64,
    next: AtomicU64,
    /// Group commit: one flush makes every batch applied before it durable.
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Async inserts go to the committer thread ([`Replay::start_committer`]), which applies
    /// every insert waiting as one sled batch and makes them durable with one flush.
    committer: std::sync::OnceLock<std::sync::mpsc::Sender<Insert>>,
    /// Where each commit's transitions go once durable ([`Replay::feed`]).
    feed: Mutex<Option<std::sync::mpsc::Sender<Vec<Record>>>>,
}

/// An async insert waiting for the committer.
struct Insert {
    actor: String,
    batch: Vec<Transition>,
    done: tokio::sync::oneshot::Sender<Result<Stored>>,
}

/// A batch applied, waiting for its flush.
struct Applied {
    high: u64,
    stored: u32,
    duplicates: u32,
    ticket: u64,
    epoch: u64,
    /// Its stored transitions, for the feed (empty without one).
    fed: Vec<Record>,
}

#[derive(Default)]
struct SyncState {
    /// Highest ticket known durable.
    durable: u64,
    /// Whether some writer is flushing now.
    flushing: bool,
    /// The current opening; waiters of an older one fail.
    epoch: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn chunk_key(chunk: u64) -> Vec<u8> {
    key(b'c', &be(chunk))
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

/// Removes what a sled snapshot left half-written: `snap.*.generating` files are renamed into
/// place only once complete, yet sled's recovery also reads them, and a 0-byte one left by a
/// full disk makes the store unopenable ("Read corrupted data at file offset None").
fn remove_partial_snapshots(path: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(path) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %e.path().display(), "removing an incomplete sled snapshot");
            std::fs::remove_file(e.path())
                .map_err(|source| Error::Io { path: e.path(), source })?;
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic into its message and place (sled panics on some corrupt files).
/// The panic is not printed: while `f` runs, panics on this thread only record their message;
/// other threads' panics go to the hook that was there before.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    use std::sync::Arc;
    let me = std::thread::current().id();
    let caught: Arc<Mutex<Option<String>>> = Arc::default();
    let previous: Arc<dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync> =
        Arc::from(std::panic::take_hook());
    {
        let (caught, previous) = (caught.clone(), previous.clone());
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == me {
                let what = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line()));
                *lock(&caught) = Some(what + &at.unwrap_or_default());
            } else {
                previous(info);
            }
        }));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| previous(info)));
    result.map_err(|_| lock(&caught).take().unwrap_or_else(|| "a panic".into()))
}

/// An episode record read back for export, in actor and seq order.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEpisode {
    pub index: u64,
    pub actor: String,
    pub seq: u64,
    /// The record's JSON, or why it cannot be read.
    pub json: std::result::Result<String, String>,
}

/// Episode index entries read per scan by [`Replay::for_each_episode`].
const EXPORT_CHUNK: usize = 256;

fn episode_key(actor: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + actor.len());
    k.push(b'x');
    k.extend_from_slice(actor.as_bytes());
    k.push(0);
    k.extend_from_slice(&be(seq));
    k
}

/// `(actor, seq)` of an `x` key.
fn parse_episode_key(k: &[u8]) -> Option<(String, u64)> {
    let n = k.len().checked_sub(10)?;
    let actor = std::str::from_utf8(&k[1..1 + n]).ok()?;
    let seq = u64::from_be_bytes(k[2 + n..].try_into().ok()?);
    (k[1 + n] == 0).then(|| (actor.to_string(), seq))
}

/// Converts a store of an earlier version, one `t` + index key per transition, to chunks, in one
/// atomic batch (a crash leaves it as it was, and the next opening converts it again).
fn convert_to_chunks(path: &Path, db: &sled::Db, tree: &Tree, next: u64) -> Result<()> {
    let err = |source| Error::Store { path: path.into(), source };
    if tree.scan_prefix([b't']).next().is_none() {
        return Ok(());
    }
    let mut b = sled::Batch::default();
    let (mut chunk, mut entries, mut n) = (None::<u64>, Vec::new(), 0u64);
    for kv in tree.scan_prefix([b't']) {
        let (k, v) = kv.map_err(err)?;
        let index = read_u64(Some(k.subslice(1, 8)));
        let (c, slot) = chunks::locate(index);
        if chunk != Some(c) {
            if let Some(done) = chunk {
                b.insert(chunk_key(done), chunks::encode(&entries));
            }
            (chunk, entries) = (Some(c), Vec::new());
        }
        // Slots below the head (evicted before the conversion) stay empty; readers never reach them.
        entries.resize(slot, Vec::new());
        entries.push(v.to_vec());
        b.remove(k);
        n += 1;
    }
    if let Some(done) = chunk {
        b.insert(chunk_key(done), chunks::encode(&entries));
    }
    tree.apply_batch(b).map_err(err)?;
    db.flush().map_err(err)?;
    tracing::info!(store = %path.display(), transitions = n, next, "converted the store's transitions to chunks of {CHUNK}");
    Ok(())
}

/// What an opening read back.
struct Opened {
    store: Store,
    head: u64,
    next: u64,
    log_len: u64,
    tail: Vec<Vec<u8>>,
    marks: HashMap<String, u64>,
    witness: Witness,
}

fn open_store(path: &Path, cache_bytes: u64, epoch: u64, accept_lost_data: bool) -> Result<Opened> {
    let err = |source| Error::Store { path: path.into(), source };
    remove_partial_snapshots(path)?;
    // A store whose witness is gone could have lost anything: refused unless the operator
    // accepts it as it is (stores of versions before the witness log have `witness.json`).
    let existed = path.join("db").exists();
    if existed && !accept_lost_data && !witness::present(path) {
        return Err(Error::Witness {
            path: path.join(witness::FILE),
            reason: "missing, though the store exists (deleted or lost?): what was acknowledged cannot be checked; start the learner once with --accept-lost-data to serve the store as it is".into(),
        });
    }
    if !existed && !witness::present(path) {
        // A new store: its (empty) witness first, so no crash can leave a store without one.
        std::fs::create_dir_all(path).map_err(|source| Error::Io { path: path.into(), source })?;
        drop(Witness::create(path, HashMap::new())?);
    }
    let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
    // sled releases its file lock from a background thread shortly after a close, so a reopen
    // (after a failure, or a restart in tests) may need a moment.
    let mut tries = 0;
    let db = loop {
        // sled panics on some corrupt files ("tried to serialize Uninitialized") rather than
        // returning an error: a corrupt store is bad input, not a bug here.
        let opened = catch_quietly(|| config.open()).map_err(|why| Error::Corrupt {
            path: path.into(),
            key: "(database file)".into(),
            reason: format!(
                "sled could not read it ({why}): the database is damaged; restore it from a copy"
            ),
        })?;
        match opened {
            Ok(db) => break db,
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && tries < 100 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(Error::Unavailable {
                    path: path.into(),
                    reason: format!("locked by another process ({e}): a running learner, or an export, holds it; stop it first (a learner's episodes are exported when its run ends)"),
                })
            }
            Err(e) => return Err(err(e)),
        }
    };
    let tree = db.open_tree("replay").map_err(err)?;
    // A store without records yet gets the episode index from its first record on.
    if tree.get(key(b'm', b"episode-index")).map_err(err)?.is_none()
        && tree.scan_prefix([b'e']).next().is_none()
    {
        tree.insert(key(b'm', b"episode-index"), &be(1)).map_err(err)?;
    }
    let head = read_u64(tree.get(key(b'm', b"head")).map_err(err)?);
    let next = read_u64(tree.get(key(b'm', b"next")).map_err(err)?);
    let log_len = read_u64(tree.get(key(b'm', b"episode-log")).map_err(err)?);
    convert_to_chunks(path, &db, &tree, next)?;
    // The last chunk, partly filled: the writer appends to its copy.
    let tail = if next.is_multiple_of(CHUNK) {
        Vec::new()
    } else {
        let c = tree.get(chunk_key(next / CHUNK)).map_err(err)?;
        match c.as_deref().and_then(chunks::entries) {
            Some(e) if e.len() as u64 == next % CHUNK => {
                e.into_iter().map(<[u8]>::to_vec).collect()
            }
            _ => {
                return Err(Error::Corrupt {
                    path: path.into(),
                    key: format!("chunks/{}", next / CHUNK),
                    reason: format!(
                        "the last chunk should hold {} transitions and does not (damaged)",
                        next % CHUNK
                    ),
                })
            }
        }
    };
    let episodes = EpisodeLog::open(path, log_len, accept_lost_data)?;
    let mut marks = HashMap::new();
    for kv in tree.scan_prefix([b'a']) {
        let (k, v) = kv.map_err(err)?;
        let actor = String::from_utf8(k[1..].to_vec()).map_err(|_| Error::Corrupt {
            path: path.into(),
            key: format!("actors/{:?}", &k[1..]),
            reason: "actor id is not UTF-8".into(),
        })?;
        marks.insert(actor, read_u64(Some(v)));
    }
    let (expected, witness_path) = witness::expected(path)?;
    let lost = witness::losses(&expected, &marks);
    if let Some(first) = lost.first() {
        let transitions = lost.iter().map(witness::Loss::missing).sum();
        if !accept_lost_data {
            return Err(Error::Lost {
                path: path.into(),
                witness: witness_path,
                actor: first.actor.clone(),
                have: first.have,
                acknowledged: first.acknowledged,
                actors: lost.len(),
                transitions,
            });
        }
        // Serve what is left: the lost seqs stay lost (logged), and each actor's mark moves past
        // them so its next seqs are accepted without a gap.
        let mut b = sled::Batch::default();
        for l in &lost {
            tracing::warn!(store = %path.display(), witness = %witness_path.display(), actor = %l.actor, first = l.have + 1, last = l.acknowledged, "accepting the loss of acknowledged transitions");
            b.insert(key(b'a', l.actor.as_bytes()), &be(l.acknowledged));
            marks.insert(l.actor.clone(), l.acknowledged);
        }
        tree.apply_batch(b).map_err(err)?;
        db.flush().map_err(err)?;
        tracing::warn!(store = %path.display(), actors = lost.len(), transitions, "serving a store that lost acknowledged transitions (--accept-lost-data)");
    }
    let witness = Witness::create(path, marks.clone())?;
    Ok(Opened {
        store: Store { db, tree, episodes, epoch },
        head,
        next,
        log_len,
        tail,
        marks,
        witness,
    })
}

impl Drop for Replay {
    /// A clean close: a last flush (the witness already holds every acknowledged mark).
    fn drop(&mut self) {
        if let Some(Err(e)) = self.read().as_ref().map(|s| s.db.flush()) {
            tracing::warn!(path = %self.path.display(), error = %e, "last flush of the replay store failed");
        }
    }
}

impl Replay {
    /// Opens (or creates) the store at `path`, keeping at most `capacity` transitions, with sled's
    /// default page cache of [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path, capacity: u64) -> Result<Self> {
        Self::open_with_cache(path, capacity, DEFAULT_CACHE_BYTES)
    }

    /// [`Replay::open`] with a page-cache budget in bytes (bounds the learner's memory).
    pub fn open_with_cache(path: &Path, capacity: u64, cache_bytes: u64) -> Result<Self> {
        Self::open_with(path, &OpenOptions { cache_bytes, ..OpenOptions::new(capacity) })
    }

    /// Opens (or creates) the store at `path` as `o` says.
    pub fn open_with(path: &Path, o: &OpenOptions) -> Result<Self> {
        let (capacity, cache_bytes) = (o.capacity, o.cache_bytes);
        let o = open_store(path, cache_bytes, 1, o.accept_lost_data)?;
        let replay = Self {
            path: path.into(),
            capacity: capacity.max(1),
            cache_bytes,
            witness: Mutex::new(Some(o.witness)),
            head: AtomicU64::new(o.head),
            next: AtomicU64::new(o.next),
            write: Mutex::new(Writer {
                applied: 0,
                head: o.head,
                next: o.next,
                log_len: o.log_len,
                tail: o.tail,
                high: HashMap::new(),
                raised: HashMap::new(),
                broken: None,
                opened: Instant::now(),
            }),
            durable: Mutex::new(o.marks),
            wedged: Mutex::new(None),
            store: RwLock::new(Some(o.store)),
            sync: Mutex::new(SyncState { epoch: 1, ..SyncState::default() }),
            synced: Condvar::new(),
            committer: std::sync::OnceLock::new(),
            feed: Mutex::new(None),
        };
        Ok(replay)
    }

    /// Reads every record once, so a corrupt page or record is found at open and not by the
    /// trainer hours later; the error names the record. A damaged episode record in the log is
    /// logged by actor and seq, not refused: the store serves, and export names it again.
    pub fn verify(&self) -> Result<u64> {
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("not open"))?;
        let mut n = 0u64;
        let mut damaged = 0u64;
        for kv in s.tree.iter() {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            match k.first() {
                Some(b'c') => {
                    let c = read_u64(Some(k.subslice(1, 8)));
                    let entries = chunks::entries(&v)
                        .ok_or_else(|| self.corrupt(format!("chunks/{c}"), "cannot be decoded"))?;
                    let head = self.head.load(Ordering::Acquire);
                    for (i, e) in entries.into_iter().enumerate() {
                        let index = c * CHUNK + i as u64;
                        if index >= head {
                            self.record(index, e)?;
                            n += 1;
                        }
                    }
                    continue;
                }
                Some(b'e') if std::str::from_utf8(&v).is_err() => {
                    return Err(self.corrupt(
                        format!("episodes/{}", read_u64(Some(k.subslice(1, 8)))),
                        "not UTF-8",
                    ));
                }
                Some(b'x') => {
                    let found = Place::decode(&v).zip(parse_episode_key(&k));
                    if let Some((place, (actor, seq))) = found {
                        if let Err(why) = s.episodes.read(&place, &actor, seq)? {
                            damaged += 1;
                            if damaged <= 10 {
                                tracing::warn!(actor = %actor, seq, "episode record unreadable: {why}");
                            }
                        }
                    }
                }
                _ => {}
            }
            n += 1;
        }
        if damaged > 0 {
            tracing::warn!(path = %s.episodes.path().display(), damaged, "episode records unreadable; the store serves, and export reports each by actor and seq");
        }
        Ok(n)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Store>> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, source: sled::Error) -> Error {
        Error::Store { path: self.path.clone(), source }
    }

    fn corrupt(&self, key: String, reason: &str) -> Error {
        Error::Corrupt { path: self.path.clone(), key, reason: reason.into() }
    }

    fn unavailable(&self, reason: &str) -> Error {
        Error::Unavailable { path: self.path.clone(), reason: reason.into() }
    }

    /// Runs `f` on the open tree.
    fn with_tree<T>(
        &self,
        f: impl FnOnce(&Tree) -> std::result::Result<T, sled::Error>,
    ) -> Result<T> {
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("being reopened after a failure"))?;
        f(&s.tree).map_err(|e| self.err(e))
    }

    /// Marks the store broken after a failed write or flush; the next insert reopens it.
    fn broke(&self, w: &mut Writer, e: &Error) {
        if w.broken.is_none() {
            tracing::error!(path = %self.path.display(), error = %e, "replay store write failed; it will be reopened from disk");
        }
        w.broken = Some(e.to_string());
    }

    /// Reopens a broken store (at most once per [`REOPEN_EVERY`]), else fails at once.
    fn ensure_open(&self, w: &mut Writer) -> Result<()> {
        let Some(reason) = w.broken.clone() else { return Ok(()) };
        if w.opened.elapsed() < REOPEN_EVERY {
            return Err(self.unavailable(&format!("a write failed ({reason}); reopening shortly")));
        }
        if let Some(w) = lock(&self.wedged).clone() {
            return Err(self.unavailable(&w));
        }
        w.opened = Instant::now();
        let mut g = self.store.write().unwrap_or_else(|e| e.into_inner());
        let epoch = g.as_ref().map_or(0, |s| s.epoch) + 1;
        // Close the old opening first: sled holds a file lock until it is dropped. Its drop
        // flushes, which after some write errors never returns, so it runs on a thread of its own.
        let old = g.take();
        let (closed_tx, closed) = std::sync::mpsc::channel::<()>();
        let closer = std::thread::Builder::new().name("sled-close".into()).spawn(move || {
            drop(old);
            let _ = closed_tx.send(());
        });
        if closer.is_err() || closed.recv_timeout(Duration::from_secs(3)).is_err() {
            let why = format!(
                "the replay store cannot be reopened in this process (sled did not close after: {reason}); \
                 restart the learner: everything acknowledged is on disk"
            );
            tracing::error!(path = %self.path.display(), "{why}");
            *lock(&self.wedged) = Some(why.clone());
            return Err(self.unavailable(&why));
        }
        *lock(&self.witness) = None;
        // Never accepting a loss here: that is the operator's call, at a start.
        let o = match open_store(&self.path, self.cache_bytes, epoch, false) {
            Ok(o) => o,
            Err(e) => return Err(self.unavailable(&format!("reopen failed: {e}"))),
        };
        *g = Some(o.store);
        *lock(&self.witness) = Some(o.witness);
        (w.head, w.next, w.log_len, w.tail) = (o.head, o.next, o.log_len, o.tail);
        w.high.clear();
        w.raised.clear();
        w.broken = None;
        self.head.store(o.head, Ordering::Release);
        self.next.store(o.next, Ordering::Release);
        *lock(&self.durable) = o.marks;
        drop(g);
        let mut st = lock(&self.sync);
        st.epoch = epoch;
        drop(st);
        self.synced.notify_all();
        tracing::info!(path = %self.path.display(), stored = o.next, "replay store reopened after a failure");
        Ok(())
    }

    /// Stores the transitions of `actor` not stored before, evicting the oldest beyond capacity,
    /// and returns once they are durable. Concurrent callers share flushes (group commit).
    /// Refused whole (nothing stored) when a new seq is not the actor's mark + 1.
    pub fn insert(&self, actor: &str, batch: &[Transition]) -> Result<Stored> {
        let mut a = self.apply(actor, batch)?;
        if let Err(e) = self.wait_durable(a.ticket, a.epoch) {
            if matches!(e, Error::Store { .. }) {
                self.broke(&mut lock(&self.write), &e);
            }
            return Err(e);
        }
        self.send_fed(std::mem::take(&mut a.fed));
        Ok(self.finish(actor, &a))
    }

    /// The transitions of every later commit, once durable, in index order (for a sampler that
    /// keeps them in memory: the trainer's reads then never contend with the writer's). One
    /// receiver at a time: a later call ends the earlier receiver's feed. Subscribe before
    /// reading what is stored, so that nothing falls between (an index seen twice is the same
    /// transition).
    pub fn feed(&self) -> std::sync::mpsc::Receiver<Vec<Record>> {
        let (tx, rx) = std::sync::mpsc::channel();
        *lock(&self.feed) = Some(tx);
        rx
    }

    fn send_fed(&self, fed: Vec<Record>) {
        if fed.is_empty() {
            return;
        }
        let mut feed = lock(&self.feed);
        // A dropped receiver (a stopped trainer) ends the feed; it is no reason to refuse a write.
        if feed.as_ref().is_some_and(|tx| tx.send(fed).is_err()) {
            *feed = None;
        }
    }

    /// [`Replay::insert`] for async callers: the batch goes to the committer thread
    /// ([`Replay::start_committer`]) and the caller awaits its answer. No thread is held per
    /// waiting batch, and the committer applies every batch waiting (from any number of streams)
    /// as one sled batch and makes them durable with one flush: ten thousand streams cost one
    /// commit per round, not one per message. Without a committer it inserts in place.
    pub async fn insert_async(&self, actor: &str, batch: Vec<Transition>) -> Result<Stored> {
        let Some(queue) = self.committer.get() else { return self.insert(actor, &batch) };
        let (done, answer) = tokio::sync::oneshot::channel();
        queue
            .send(Insert { actor: actor.to_string(), batch, done })
            .map_err(|_| self.unavailable("closed"))?;
        answer.await.map_err(|_| self.unavailable("closed"))?
    }

    /// Starts the committer thread [`Replay::insert_async`] hands its batches to; it ends once
    /// the store is dropped. Each round takes every batch waiting (up to 8,192), applies them as
    /// one sled batch, flushes once (the witness records the round's marks) and answers each;
    /// batches arriving meanwhile make the next round, so the rounds grow with the load.
    pub fn start_committer(self: &std::sync::Arc<Self>) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<Insert>();
        if self.committer.set(tx).is_err() {
            return Ok(());
        }
        let weak = std::sync::Arc::downgrade(self);
        std::thread::Builder::new()
            .name("replay-commit".into())
            .spawn(move || {
                // The sender lives in the store: dropping the store ends this loop.
                while let Ok(first) = rx.recv() {
                    let mut round = vec![first];
                    while round.len() < MAX_ROUND {
                        match rx.try_recv() {
                            Ok(i) => round.push(i),
                            Err(_) => break,
                        }
                    }
                    match weak.upgrade() {
                        Some(replay) => replay.commit_round(round),
                        None => return,
                    }
                }
            })
            .map(drop)
            .map_err(|source| Error::Io { path: self.path.clone(), source })
    }

    /// One round of the committer: apply all, flush once, answer each.
    fn commit_round(&self, round: Vec<Insert>) {
        let items: Vec<(&str, &[Transition])> =
            round.iter().map(|i| (i.actor.as_str(), i.batch.as_slice())).collect();
        let applied = match self.apply_all(&items) {
            Ok(a) => a,
            Err(e) => {
                // Nothing of the round was written (a failed write has marked the store for
                // reopening): every sender resends after a pause.
                let reason = format!("the round's write failed: {e}");
                for i in round {
                    let _ = i.done.send(Err(self.unavailable(&reason)));
                }
                return;
            }
        };
        let ticket = applied.iter().flatten().map(|a| (a.ticket, a.epoch)).max();
        let durable = match ticket {
            Some((t, epoch)) => self.wait_durable(t, epoch).map_err(|e| {
                if matches!(e, Error::Store { .. }) {
                    self.broke(&mut lock(&self.write), &e);
                }
                e.to_string()
            }),
            None => Ok(()),
        };
        let mut fed = Vec::new();
        for (i, a) in round.into_iter().zip(applied) {
            let answer = match (a, &durable) {
                (Ok(mut a), Ok(())) => {
                    fed.append(&mut a.fed);
                    Ok(self.finish(&i.actor, &a))
                }
                (Ok(_), Err(reason)) => Err(self.unavailable(&format!("flush failed: {reason}"))),
                (Err(e), _) => Err(e),
            };
            let _ = i.done.send(answer);
        }
        self.send_fed(fed);
    }

    /// Applies a batch (not yet durable): its ticket for the group commit.
    fn apply(&self, actor: &str, batch: &[Transition]) -> Result<Applied> {
        self.apply_all(&[(actor, batch)])?
            .pop()
            .unwrap_or_else(|| Err(self.unavailable("nothing applied")))
    }

    /// Applies several actors' batches as one sled batch (not yet durable), with one ticket for
    /// the group commit. A batch that would leave a gap in its actor's seqs is refused whole
    /// (its entry is the error) and the others go on; a failed write fails them all.
    fn apply_all(&self, items: &[(&str, &[Transition])]) -> Result<Vec<Result<Applied>>> {
        let mut w = lock(&self.write);
        self.ensure_open(&mut w)?;
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("not open"))?;
        let (mut head, mut next) = (w.head, w.next);
        let mut b = sled::Batch::default();
        // The round's episode records, appended to the log at `w.log_len`.
        let mut log = Vec::new();
        // The last chunk's transitions, this round's appended (written once full, and at the end).
        let mut tail = w.tail.clone();
        // Each actor's mark as this round leaves it, and whether the round raised it.
        let mut marks: HashMap<&str, (u64, bool)> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        let feeding = lock(&self.feed).is_some();
        for &(actor, batch) in items {
            let high = match marks.get(actor) {
                Some(&(h, _)) => h,
                None => match w.high.get(actor) {
                    Some(&h) => h,
                    None => {
                        read_u64(s.tree.get(key(b'a', actor.as_bytes())).map_err(|e| self.err(e))?)
                    }
                },
            };
            // The whole batch is checked before any of it is written.
            let mut h = high;
            let gap = batch.iter().find(|tr| {
                if tr.seq <= h {
                    return false;
                }
                let next_ok = Some(tr.seq) == h.checked_add(1);
                h = tr.seq;
                !next_ok
            });
            if let Some(tr) = gap {
                out.push(Err(Error::InvalidTransition {
                    actor: actor.into(),
                    seq: tr.seq,
                    reason: format!(
                        "leaves a gap: the next seq of this actor is {}",
                        high.saturating_add(1)
                    ),
                }));
                continue;
            }
            let (mut high, mut stored, mut duplicates) = (high, 0u32, 0u32);
            let mut fed = Vec::new();
            for tr in batch {
                if tr.seq <= high {
                    duplicates += 1;
                    continue;
                }
                if feeding {
                    let transition = Transition {
                        seq: tr.seq,
                        state: tr.state.clone(),
                        action: tr.action,
                        reward: tr.reward,
                        next_state: tr.next_state.clone(),
                        done: tr.done,
                        metrics: None,
                    };
                    fed.push(Record { index: next, actor: actor.to_string(), transition });
                }
                tail.push(encode(actor, tr));
                if let Some(json) = &tr.metrics {
                    let offset = w.log_len + log.len() as u64;
                    let len = episodes::encode(&mut log, actor, tr.seq, json);
                    let place = Place { offset, len, index: next };
                    b.insert(episode_key(actor, tr.seq), &place.encode());
                }
                next += 1;
                if next.is_multiple_of(CHUNK) {
                    b.insert(chunk_key(next / CHUNK - 1), chunks::encode(&tail));
                    tail.clear();
                }
                high = tr.seq;
                stored += 1;
            }
            let raised = marks.get(actor).is_some_and(|m| m.1) || stored > 0;
            marks.insert(actor, (high, raised));
            out.push(Ok(Applied { high, stored, duplicates, ticket: 0, epoch: s.epoch, fed }));
        }
        if !tail.is_empty() && next > w.next {
            b.insert(chunk_key(next / CHUNK), chunks::encode(&tail));
        }
        // Chunks all of whose transitions are evicted go (a later insert of the same key in this
        // batch, with a capacity under a chunk, is overridden by the removal: it is all evicted).
        let first = head / CHUNK;
        head = head.max(next.saturating_sub(self.capacity));
        for c in first..head / CHUNK {
            b.remove(chunk_key(c));
        }
        if marks.values().any(|m| m.1) {
            for (actor, &(high, raised)) in &marks {
                if raised {
                    b.insert(key(b'a', actor.as_bytes()), &be(high));
                }
            }
            b.insert(key(b'm', b"head"), &be(head));
            b.insert(key(b'm', b"next"), &be(next));
            let log_len = w.log_len + log.len() as u64;
            if !log.is_empty() {
                // Durable before the batch that names them is applied (sled may write an
                // applied batch out at any time).
                if let Err(e) = s.episodes.write_durable(w.log_len, &log) {
                    // Transient like a failed sled write (a full disk): reopened, then resent.
                    let e = self.unavailable(&e.to_string());
                    drop(g);
                    self.broke(&mut w, &e);
                    return Err(e);
                }
                b.insert(key(b'm', b"episode-log"), &be(log_len));
            }
            if let Err(e) = s.tree.apply_batch(b) {
                let e = self.err(e);
                drop(g);
                self.broke(&mut w, &e);
                return Err(e);
            }
            w.head = head;
            w.next = next;
            w.log_len = log_len;
            w.tail = tail;
            self.head.store(head, Ordering::Release);
            self.next.store(next, Ordering::Release);
        }
        for (actor, (high, raised)) in marks {
            if raised {
                w.raised.insert(actor.to_string(), high);
            }
            w.high.insert(actor.to_string(), high);
        }
        w.applied += 1;
        let ticket = w.applied;
        for a in out.iter_mut().flatten() {
            a.ticket = ticket;
        }
        Ok(out)
    }

    /// Raises the actor's durable mark once its batch is durable.
    fn finish(&self, actor: &str, a: &Applied) -> Stored {
        let mut d = lock(&self.durable);
        let slot = d.entry(actor.to_string()).or_insert(0);
        *slot = (*slot).max(a.high);
        Stored { stored: a.stored, duplicates: a.duplicates, durable_seq: *slot }
    }

    /// Blocks until every batch up to `ticket` is on disk. The first waiter flushes for everyone
    /// applied before its flush began; the others wait for it (and flush again if still behind).
    /// Fails when the store was reopened since the batch was applied (it may be gone).
    fn wait_durable(&self, ticket: u64, epoch: u64) -> Result<()> {
        let mut st = lock(&self.sync);
        loop {
            if st.epoch != epoch {
                return Err(self.unavailable(
                    "reopened after a failure before this batch was flushed; resend it",
                ));
            }
            if st.durable >= ticket {
                return Ok(());
            }
            if st.flushing {
                st = self.synced.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.flushing = true;
            drop(st);
            // Every batch with a ticket up to `applied` was applied before this flush starts
            // (read before taking the store, the reverse of the writer's lock order), and
            // `raised` holds the marks they raised since the last commit.
            let (applied, raised) = {
                let mut w = lock(&self.write);
                (w.applied, std::mem::take(&mut w.raised))
            };
            let flushed = {
                let g = self.read();
                match g.as_ref() {
                    Some(s) if s.epoch == epoch => s.db.flush().map(drop).map_err(|e| self.err(e)),
                    _ => Err(self.unavailable(
                        "reopened after a failure before this batch was flushed; resend it",
                    )),
                }
            };
            // The witness records the commit before anything it covers is acknowledged.
            let flushed = flushed.and_then(|()| match lock(&self.witness).as_mut() {
                Some(w) => w.append(&raised),
                None => Err(self.unavailable("reopened before this batch's marks were recorded")),
            });
            if flushed.is_err() {
                // Not recorded: the next commit of this opening records them (a resend is
                // acknowledged only then); a reopened store reads its marks from disk instead.
                let mut w = lock(&self.write);
                let same = self.read().as_ref().is_some_and(|s| s.epoch == epoch);
                for (a, s) in raised.into_iter().filter(|_| same) {
                    let m = w.raised.entry(a).or_insert(0);
                    *m = (*m).max(s);
                }
            }
            st = lock(&self.sync);
            st.flushing = false;
            if flushed.is_ok() && st.epoch == epoch {
                st.durable = st.durable.max(applied);
            }
            self.synced.notify_all();
            flushed?;
        }
    }

    /// Highest seq of `actor` that is durable (0: none). A batch applied but not yet flushed
    /// does not count: a client resuming after this seq never skips a transition that could
    /// still be lost.
    pub fn durable_seq(&self, actor: &str) -> Result<u64> {
        Ok(lock(&self.durable).get(actor).copied().unwrap_or(0))
    }

    /// Why the store cannot recover without a restart of the process, if so.
    pub fn wedged(&self) -> Option<String> {
        lock(&self.wedged).clone()
    }

    /// Whether the store is waiting to be reopened after a failed write, and why.
    pub fn broken(&self) -> Option<String> {
        lock(&self.write).broken.clone()
    }

    /// Records that policy `version` is about to be published and returns once that is durable:
    /// a learner killed after sending it restarts past it, never reusing the number.
    pub fn note_policy_version(&self, version: u64) -> Result<()> {
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("being reopened after a failure"))?;
        s.tree.insert(key(b'm', b"policy"), &be(version)).map_err(|e| self.err(e))?;
        s.db.flush().map(drop).map_err(|e| self.err(e))
    }

    /// Overwrites the transition at `index` with `bytes`: for tests of what a corrupt record does
    /// (feature `test-util`, which the learner's tests turn on).
    #[cfg(feature = "test-util")]
    pub fn put_raw_transition(&self, index: u64, bytes: &[u8]) -> Result<()> {
        let (c, slot) = chunks::locate(index);
        // The writer's copy of the last chunk too, or its next round would restore it.
        let mut w = lock(&self.write);
        if c == w.next / CHUNK {
            if let Some(e) = w.tail.get_mut(slot) {
                *e = bytes.to_vec();
            }
        }
        let chunk = self.with_tree(|t| t.get(chunk_key(c)))?;
        let mut entries: Vec<Vec<u8>> = chunk
            .as_deref()
            .and_then(chunks::entries)
            .map(|e| e.into_iter().map(<[u8]>::to_vec).collect())
            .ok_or_else(|| self.unavailable("no such transition"))?;
        *entries.get_mut(slot).ok_or_else(|| self.unavailable("no such transition"))? =
            bytes.to_vec();
        self.with_tree(|t| t.insert(chunk_key(c), chunks::encode(&entries)).map(drop))
    }

    /// Rewrites the transitions kept in the layout of versions before chunks (one `t` + index key
    /// each): for tests that such stores are converted when opened (feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn write_legacy_layout(&self) -> Result<()> {
        let records = self.records()?;
        let mut b = sled::Batch::default();
        for c in self.head.load(Ordering::Acquire) / CHUNK..=self.next_index() / CHUNK {
            b.remove(chunk_key(c));
        }
        for r in records {
            b.insert(key(b't', &be(r.index)), encode(&r.actor, &r.transition));
        }
        self.with_tree(|t| t.apply_batch(b))
    }

    /// Stores `json` as `actor`'s record of `seq` the way versions before the episode log did
    /// (an `e` key at `index`, its place in the index): for tests that stores of those versions
    /// still read (feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn put_legacy_episode(&self, actor: &str, seq: u64, index: u64, json: &str) -> Result<()> {
        self.with_tree(|t| {
            t.insert(key(b'e', &be(index)), json.as_bytes())?;
            t.insert(episode_key(actor, seq), &be(index)).map(drop)
        })
    }

    /// The newest policy version ever noted (0: none).
    pub fn policy_version(&self) -> Result<u64> {
        self.with_tree(|t| t.get(key(b'm', b"policy")).map(read_u64))
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
        let (actor, transition) = decode(bytes)
            .ok_or_else(|| self.corrupt(format!("transitions/{index}"), "cannot be decoded"))?;
        Ok(Record { index, actor, transition })
    }

    /// The transition at `index`, if it is still kept.
    pub fn get(&self, index: u64) -> Result<Option<Record>> {
        let (head, next) = self.bounds()?;
        if index < head || index >= next {
            return Ok(None);
        }
        let (c, slot) = chunks::locate(index);
        match self.with_tree(|t| t.get(chunk_key(c)))? {
            Some(chunk) => match chunks::entry(&chunk, slot) {
                Some(Some(bytes)) => Ok(Some(self.record(index, bytes)?)),
                Some(None) => Ok(None),
                None => Err(self.corrupt(format!("chunks/{c}"), "cannot be decoded")),
            },
            // Evicted between reading the bounds and the read.
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
            match self.get(index)? {
                Some(r) => out.push(r),
                // Evicted between reading the bounds and the read: draw again.
                None if misses < 1000 => misses += 1,
                None => break,
            }
        }
        Ok(out)
    }

    /// Every transition kept, oldest first.
    pub fn records(&self) -> Result<Vec<Record>> {
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("not open"))?;
        let (head, next) = self.bounds()?;
        let mut out = Vec::new();
        for kv in s.tree.scan_prefix([b'c']) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let c = read_u64(Some(k.subslice(1, 8)));
            let entries = chunks::entries(&v)
                .ok_or_else(|| self.corrupt(format!("chunks/{c}"), "cannot be decoded"))?;
            for (i, e) in entries.into_iter().enumerate() {
                let index = c * CHUNK + i as u64;
                if (head..next).contains(&index) {
                    out.push(self.record(index, e)?);
                }
            }
        }
        Ok(out)
    }

    /// Calls `f` with every episode record in actor and seq order, one at a time (memory does
    /// not grow with the store), an unreadable one with why. Stores made before the episode
    /// index hold, for their older records, only the order of insertion: their (actor, seq,
    /// index) triples are collected and sorted first (tens of bytes per record).
    pub fn for_each_episode(&self, mut f: impl FnMut(StoredEpisode) -> Result<()>) -> Result<()> {
        let g = self.read();
        let s = g.as_ref().ok_or_else(|| self.unavailable("not open"))?;
        // A record from the log at its place, or (earlier versions) from its `e` key.
        let read = |index: u64, place: Option<Place>, actor: &str, seq: u64| {
            if let Some(p) = place {
                return s.episodes.read(&p, actor, seq);
            }
            Ok(match s.tree.get(key(b'e', &be(index))).map_err(|e| self.err(e))? {
                None => Err(format!("record {index} is missing")),
                Some(v) => String::from_utf8(v.to_vec())
                    .map_err(|_| format!("record {index} is not UTF-8")),
            })
        };
        let key_of = |k: &[u8]| {
            parse_episode_key(k).ok_or_else(|| {
                self.corrupt(format!("episode-index/{:?}", &k[1..]), "unreadable key")
            })
        };
        // An index value names the record's place in the log, or (earlier versions) its `e` key.
        let locate = |v: &[u8]| -> (u64, Option<Place>) {
            match Place::decode(v) {
                Some(p) => (p.index, Some(p)),
                None => (read_u64(Some(v.into())), None),
            }
        };
        if s.tree.get(key(b'm', b"episode-index")).map_err(|e| self.err(e))?.is_some() {
            // In chunks, each scan dropped before its records are read (a sled iterator kept
            // across the whole store was measured to hold more memory the further it went).
            let mut from = vec![b'x'];
            loop {
                let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
                for kv in s.tree.range(from.clone()..vec![b'x' + 1]).take(EXPORT_CHUNK) {
                    let (k, v) = kv.map_err(|e| self.err(e))?;
                    chunk.push((k, locate(&v)));
                }
                let Some((last, _)) = chunk.last() else { return Ok(()) };
                from = last.to_vec();
                from.push(0);
                for (k, (index, place)) in chunk {
                    let (actor, seq) = key_of(&k)?;
                    let json = read(index, place, &actor, seq)?;
                    f(StoredEpisode { index, actor, seq, json })?;
                }
            }
        }
        #[derive(serde::Deserialize)]
        struct Key {
            actor_id: String,
            seq: u64,
        }
        let mut keys = Vec::new();
        for kv in s.tree.scan_prefix([b'e']) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let index = read_u64(Some(k.subslice(1, 8)));
            match serde_json::from_slice::<Key>(&v) {
                Ok(key) => keys.push((key.actor_id, key.seq, index, None)),
                Err(e) => f(StoredEpisode {
                    index,
                    actor: String::new(),
                    seq: 0,
                    json: Err(format!("record {index} names no actor and seq: {e}")),
                })?,
            }
        }
        // Records written since this version are in the log, indexed (their `x` values are places).
        for kv in s.tree.scan_prefix([b'x']) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let Some(place) = Place::decode(&v) else { continue };
            let (actor, seq) = key_of(&k)?;
            keys.push((actor, seq, place.index, Some(place)));
        }
        keys.sort_unstable_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        for (actor, seq, index, place) in keys {
            let json = read(index, place, &actor, seq)?;
            f(StoredEpisode { index, actor, seq, json })?;
        }
        Ok(())
    }

    /// Every episode record (JSON), in insertion order, evicted transitions' included; an
    /// unreadable one is an error naming it.
    pub fn episodes(&self) -> Result<Vec<(u64, String)>> {
        let mut out = Vec::new();
        self.for_each_episode(|e| match e.json {
            Ok(json) => {
                out.push((e.index, json));
                Ok(())
            }
            Err(why) => Err(self.corrupt(format!("episodes/{}/{}", e.actor, e.seq), &why)),
        })?;
        out.sort_unstable_by_key(|e| e.0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_with_its_message_and_place() {
        let e =
            catch_quietly(|| -> u32 { panic!("tried to serialize Uninitialized") }).unwrap_err();
        assert!(e.starts_with("tried to serialize Uninitialized (at "), "{e}");
        assert!(e.contains("replay.rs:"), "{e}");
        assert_eq!(catch_quietly(|| 7), Ok(7));
    }

    #[test]
    fn codec_round_trips_and_rejects_truncation() {
        let t = Transition {
            seq: 7,
            state: vec![0.5, -1.0],
            action: 3,
            reward: -0.25,
            next_state: vec![1.0, 2.0],
            done: true,
            metrics: None,
        };
        let bytes = encode("actor-1", &t);
        assert_eq!(decode(&bytes), Some(("actor-1".to_string(), t)));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
    }
}
