//! The episode log: `episodes.log` beside sled's files, the episode records (metrics JSON, a few
//! KB each) appended in commit order, outside sled's tree.
//!
//! sled copies a leaf whenever a key in it changes, so records of kilobytes in the tree cost a
//! copy of their neighbours per insert (at 3 KB records the ingest rate fell to under a third of
//! the rate without records). Here a record is written once; the tree keeps only its place
//! (`x` + actor + seq -> offset, length, transition index) and the log's committed length
//! (`m` + `episode-log`), both in the same atomic batch as the transition.
//!
//! A commit round writes its records and fsyncs them *before* it applies its sled batch, so no
//! state of the tree that can reach disk names bytes the log may not hold. At open the log is cut
//! back to the committed length (the tail of a round a crash interrupted was never
//! acknowledged); a log shorter than committed lost records and is refused, naming the file,
//! unless the operator accepts the store as it is.
//!
//! Each entry: `magic u32 | body length u32 | crc32(body) u32 | body`, the body
//! `actor length u16 | actor | seq u64 | json`, little-endian. A reader checks the magic, the
//! checksum and that the entry is the actor and seq its index names: a damaged record is reported
//! by actor and seq, never read as another's.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The log's file name inside the store folder.
pub const FILE: &str = "episodes.log";

const MAGIC: u32 = u32::from_le_bytes(*b"CEP1");
const HEADER: usize = 12;

/// Largest entry a reader allocates for: records are at most 1 MiB at the door, so a place naming
/// more is a damaged index, not a record.
const MAX_ENTRY: u32 = 4 << 20;

/// Where one record lies: the `x` index value (`offset u64 | length u32 | index u64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub offset: u64,
    pub len: u32,
    /// The index of the transition that carried the record.
    pub index: u64,
}

impl Place {
    pub const BYTES: usize = 20;

    pub fn encode(&self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.len.to_be_bytes());
        out[12..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; Self::BYTES] = bytes.try_into().ok()?;
        Some(Self {
            offset: u64::from_be_bytes(b[..8].try_into().ok()?),
            len: u32::from_be_bytes(b[8..12].try_into().ok()?),
            index: u64::from_be_bytes(b[12..].try_into().ok()?),
        })
    }
}

/// Appends one entry for `actor`'s record of `seq` to `out`; returns its length.
pub fn encode(out: &mut Vec<u8>, actor: &str, seq: u64, json: &str) -> u32 {
    let start = out.len();
    let body = 2 + actor.len() + 8 + json.len();
    out.extend(MAGIC.to_le_bytes());
    out.extend((body as u32).to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((actor.len() as u16).to_le_bytes());
    out.extend(actor.as_bytes());
    out.extend(seq.to_le_bytes());
    out.extend(json.as_bytes());
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 8..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    (out.len() - start) as u32
}

/// An entry's body parsed: `(actor, seq, json)`, or why it cannot be read.
fn parse(entry: &[u8]) -> std::result::Result<(&str, u64, &str), String> {
    let word = |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().unwrap_or_default());
    if entry.len() < HEADER + 10 || word(0) != MAGIC {
        return Err("no entry starts there (the log was damaged or cut short)".into());
    }
    let body = &entry[HEADER..];
    if word(4) as usize != body.len() {
        return Err("its length does not match its index".into());
    }
    if crc32fast::hash(body) != word(8) {
        return Err("checksum mismatch (damaged bytes)".into());
    }
    let n = usize::from(u16::from_le_bytes([body[0], body[1]]));
    let (actor, rest) = body[2..].split_at_checked(n).ok_or("actor id cut short")?;
    let (seq, json) = rest.split_at_checked(8).ok_or("seq cut short")?;
    let actor = std::str::from_utf8(actor).map_err(|_| "actor id not UTF-8")?;
    let seq = u64::from_le_bytes(seq.try_into().map_err(|_| "seq cut short")?);
    let json = std::str::from_utf8(json).map_err(|_| "record not UTF-8")?;
    Ok((actor, seq, json))
}

/// The open log of one opening of the store.
pub struct EpisodeLog {
    path: PathBuf,
    file: File,
}

impl EpisodeLog {
    /// Opens (or creates) the log in `dir`, cut back to `committed` bytes. A log shorter than
    /// that lost records: refused, or with `accept_lost` padded to length (its lost records read
    /// as damaged and export names them).
    pub fn open(dir: &Path, committed: u64, accept_lost: bool) -> Result<Self> {
        let path = dir.join(FILE);
        let io = |source| Error::Io { path: path.clone(), source };
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < committed {
            if !accept_lost {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    key: "(episode log)".into(),
                    reason: format!(
                        "holds {len} bytes but the store's index names {committed}: episode records were lost (a damaged or replaced file); restore it from a copy, or start the learner once with --accept-lost-data to serve the store with those records reported unreadable"
                    ),
                });
            }
            tracing::warn!(path = %path.display(), have = len, committed, "episode log shorter than committed: the missing records will be reported unreadable (--accept-lost-data)");
        }
        if len != committed {
            if len > committed {
                tracing::info!(path = %path.display(), bytes = len - committed, "dropping the episode log's uncommitted tail (a round a crash interrupted; never acknowledged)");
            }
            file.set_len(committed).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` at `offset` and makes them durable.
    pub fn write_durable(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let io = |source| Error::Io { path: self.path.clone(), source };
        self.file.write_all_at(bytes, offset).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// The record at `place`, checked to be `actor`'s of `seq`, or why it cannot be read.
    pub fn read(
        &self,
        place: &Place,
        actor: &str,
        seq: u64,
    ) -> Result<std::result::Result<String, String>> {
        if place.len > MAX_ENTRY {
            return Ok(Err(format!(
                "its index names {} bytes at offset {} of {}, more than any record (a damaged index)",
                place.len,
                place.offset,
                self.path.display()
            )));
        }
        let mut buf = vec![0u8; place.len as usize];
        match self.file.read_exact_at(&mut buf, place.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Err(format!(
                    "{} ends before offset {} + {} bytes",
                    self.path.display(),
                    place.offset,
                    place.len
                )))
            }
            Err(source) => return Err(Error::Io { path: self.path.clone(), source }),
        }
        Ok(match parse(&buf) {
            Ok((a, s, json)) if a == actor && s == seq => Ok(json.to_string()),
            Ok((a, s, _)) => Err(format!(
                "{} at offset {} holds actor `{a}` seq {s}, not this one",
                self.path.display(),
                place.offset
            )),
            Err(why) => Err(format!("{} at offset {}: {why}", self.path.display(), place.offset)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let log = EpisodeLog::open(dir.path(), 0, false).unwrap();
        let mut buf = Vec::new();
        let a = encode(&mut buf, "actor-1", 7, r#"{"x":1}"#);
        let b = encode(&mut buf, "actor-2", 9, r#"{"y":2}"#);
        log.write_durable(0, &buf).unwrap();
        let pa = Place { offset: 0, len: a, index: 3 };
        let pb = Place { offset: u64::from(a), len: b, index: 4 };
        assert_eq!(Place::decode(&pb.encode()), Some(pb));
        assert_eq!(log.read(&pa, "actor-1", 7).unwrap(), Ok(r#"{"x":1}"#.to_string()));
        assert_eq!(log.read(&pb, "actor-2", 9).unwrap(), Ok(r#"{"y":2}"#.to_string()));
        // Another actor's entry is not read as this one's.
        assert!(log.read(&pb, "actor-1", 9).unwrap().unwrap_err().contains("actor `actor-2`"));
        // A flipped byte in the body fails its checksum.
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        log.write_durable(0, &bad).unwrap();
        assert!(log.read(&pb, "actor-2", 9).unwrap().unwrap_err().contains("checksum"));
        // Past the end: named as cut short.
        let far = Place { offset: 10_000, ..pb };
        assert!(log.read(&far, "actor-2", 9).unwrap().unwrap_err().contains("ends before"));
        // A damaged index naming gigabytes is refused before anything is allocated.
        let huge = Place { len: u32::MAX, ..pb };
        assert!(log.read(&huge, "actor-2", 9).unwrap().unwrap_err().contains("damaged index"));
    }

    #[test]
    fn open_cuts_an_uncommitted_tail_and_refuses_a_short_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = EpisodeLog::open(dir.path(), 0, false).unwrap();
        let mut buf = Vec::new();
        let n = u64::from(encode(&mut buf, "a", 1, "{}"));
        encode(&mut buf, "a", 2, "{}");
        log.write_durable(0, &buf).unwrap();
        drop(log);
        // Committed: the first entry only; the second is a crashed round's tail.
        drop(EpisodeLog::open(dir.path(), n, false).unwrap());
        assert_eq!(std::fs::metadata(dir.path().join(FILE)).unwrap().len(), n);
        let e = EpisodeLog::open(dir.path(), n + 100, false).err().unwrap().to_string();
        assert!(e.contains(FILE) && e.contains("were lost"), "{e}");
        // Accepted: padded, and the padding reads as damaged.
        let log = EpisodeLog::open(dir.path(), n + 100, true).unwrap();
        let p = Place { offset: n, len: 100, index: 0 };
        assert!(log.read(&p, "a", 2).unwrap().unwrap_err().contains("no entry"));
    }
}
