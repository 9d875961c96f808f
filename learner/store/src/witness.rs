//! The witness of what the replay store acknowledged: `marks.log` beside sled's files, an
//! append-only log of durable marks (actor id -> highest seq durable), one line per group commit,
//! written and fsync'd after sled's flush and before any batch of that commit is acknowledged.
//!
//! sled can open a store whose log was damaged (truncated, bytes flipped, files lost) as an older
//! or even empty state without an error. At open the store's marks are checked against the
//! witness: a store that holds less than was acknowledged is refused, naming the actor, the
//! missing seqs and this file; an unreadable witness is an error with its path, never a pass.
//!
//! Each line is `crc32-hex json\n`, the JSON an object of the marks that commit raised. A line
//! without its newline at the end of the file is a write a crash cut short (its commit was never
//! acknowledged) and is dropped; any other bad line is corruption. The log is compacted to one
//! line of every mark at each open and whenever it outgrows [`COMPACT_BYTES`].

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The witness file's name inside the store folder.
pub const FILE: &str = "marks.log";

/// The witness of earlier versions, written only at a clean close; read once as a lower bound
/// and removed after the first compaction.
const LEGACY: &str = "witness.json";

/// Size past which the log is rewritten as one line of every mark.
const COMPACT_BYTES: u64 = 8 << 20;

/// Acknowledged seqs a store no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub actor: String,
    /// Highest seq the store holds for this actor.
    pub have: u64,
    /// Highest seq the witness says was acknowledged.
    pub acknowledged: u64,
}

impl Loss {
    pub fn missing(&self) -> u64 {
        self.acknowledged - self.have
    }
}

/// The open log.
pub struct Witness {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Every mark written so far (the log's content, folded).
    marks: HashMap<String, u64>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.into(), source }
}

fn line(marks: &HashMap<String, u64>) -> Vec<u8> {
    // A map of strings to integers always serialises.
    let json = serde_json::to_string(marks).unwrap_or_default();
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())).into_bytes()
}

/// Reads the marks the log at `path` holds (empty when it does not exist).
pub fn read(path: &Path) -> Result<HashMap<String, u64>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let bad = |n: usize, reason: &str| Error::Witness {
        path: path.into(),
        reason: format!("line {n}: {reason}; the acknowledged marks cannot be trusted"),
    };
    let mut marks = HashMap::new();
    let complete = bytes.last().map_or(0, |&b| usize::from(b == b'\n'));
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` leaves one empty piece after a final newline, or the torn tail without one.
    let whole = lines.len() - 1;
    for (i, l) in lines[..whole].iter().enumerate() {
        let text = std::str::from_utf8(l).map_err(|_| bad(i + 1, "not UTF-8"))?;
        let (crc, json) = text.split_once(' ').ok_or_else(|| bad(i + 1, "no checksum"))?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| bad(i + 1, "unreadable checksum"))?;
        if crc != crc32fast::hash(json.as_bytes()) {
            return Err(bad(i + 1, "checksum mismatch"));
        }
        let line: HashMap<String, u64> =
            serde_json::from_str(json).map_err(|e| bad(i + 1, &format!("unreadable: {e}")))?;
        for (actor, seq) in line {
            let m = marks.entry(actor).or_insert(0);
            *m = (*m).max(seq);
        }
    }
    if complete == 0 && !lines[whole].is_empty() {
        tracing::warn!(path = %path.display(), bytes = lines[whole].len(), "dropping the witness's last line, cut short by a crash (its commit was never acknowledged)");
    }
    Ok(marks)
}

/// What the witness of the store in `dir` expects: its log and, from older versions, the marks
/// of the last clean close.
pub fn expected(dir: &Path) -> Result<(HashMap<String, u64>, PathBuf)> {
    let path = dir.join(FILE);
    let mut marks = read(&path)?;
    let legacy = dir.join(LEGACY);
    match std::fs::read_to_string(&legacy) {
        Ok(text) => {
            let old: HashMap<String, u64> = serde_json::from_str(&text).map_err(|e| {
                Error::Witness { path: legacy.clone(), reason: format!("unreadable: {e}") }
            })?;
            for (actor, seq) in old {
                let m = marks.entry(actor).or_insert(0);
                *m = (*m).max(seq);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&legacy)(e)),
    }
    Ok((marks, path))
}

/// Whether the store in `dir` has a witness (of this version or an earlier one).
pub fn present(dir: &Path) -> bool {
    dir.join(FILE).symlink_metadata().is_ok() || dir.join(LEGACY).symlink_metadata().is_ok()
}

/// The actors whose acknowledged seqs `marks` (the store's) no longer hold, sorted by actor.
pub fn losses(expected: &HashMap<String, u64>, marks: &HashMap<String, u64>) -> Vec<Loss> {
    let mut lost: Vec<Loss> = expected
        .iter()
        .filter_map(|(a, &w)| {
            let have = marks.get(a).copied().unwrap_or(0);
            (have < w).then(|| Loss { actor: a.clone(), have, acknowledged: w })
        })
        .collect();
    lost.sort_by(|a, b| a.actor.cmp(&b.actor));
    lost
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Witness {
    /// Starts the log of the store in `dir` afresh with `marks` (every mark the store now holds,
    /// checked against the old log): written beside it, fsync'd and renamed over it.
    pub fn create(dir: &Path, marks: HashMap<String, u64>) -> Result<Self> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let text = line(&marks);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).and_then(|()| f.sync_all()).map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(dir)?;
        let legacy = dir.join(LEGACY);
        if legacy.exists() {
            std::fs::remove_file(&legacy).map_err(io(&legacy))?;
        }
        let file = OpenOptions::new().append(true).open(&path).map_err(io(&path))?;
        Ok(Self { path, file, bytes: text.len() as u64, marks })
    }

    /// Appends the marks one group commit made durable and syncs them; call after the store's
    /// flush and before acknowledging anything it covered.
    pub fn append(&mut self, raised: &HashMap<String, u64>) -> Result<()> {
        let raised: HashMap<String, u64> = raised
            .iter()
            .filter(|(a, &s)| self.marks.get(*a).is_none_or(|&m| s > m))
            .map(|(a, &s)| (a.clone(), s))
            .collect();
        if raised.is_empty() {
            return Ok(());
        }
        let text = line(&raised);
        self.file.write_all(&text).and_then(|()| self.file.sync_data()).map_err(io(&self.path))?;
        self.bytes += text.len() as u64;
        self.marks.extend(raised);
        if self.bytes > COMPACT_BYTES {
            let dir = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
            *self = Self::create(&dir, std::mem::take(&mut self.marks))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|&(a, s)| (a.to_string(), s)).collect()
    }

    #[test]
    fn appended_marks_fold_to_the_highest_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Witness::create(dir.path(), marks(&[("a", 3)])).unwrap();
        w.append(&marks(&[("a", 5), ("b", 2)])).unwrap();
        w.append(&marks(&[("a", 4)])).unwrap(); // not a raise: not written
        w.append(&marks(&[("b", 9)])).unwrap();
        let path = dir.path().join(FILE);
        assert_eq!(read(&path).unwrap(), marks(&[("a", 5), ("b", 9)]));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        // A crash in the middle of an append: the line without its newline is dropped.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"1234abcd {\"a\":9").unwrap();
        assert_eq!(read(&path).unwrap(), marks(&[("a", 5), ("b", 9)]));
    }

    #[test]
    fn an_edited_or_damaged_line_is_an_error_naming_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Witness::create(dir.path(), marks(&[("a", 3)])).unwrap();
        w.append(&marks(&[("a", 50)])).unwrap();
        let path = dir.path().join(FILE);
        let text = std::fs::read_to_string(&path).unwrap().replace("50", "90");
        std::fs::write(&path, text).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains(FILE) && err.contains("line 2") && err.contains("checksum"), "{err}");
        // A directory where the file should be: an error with its path, not an empty witness.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = expected(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE), "{err}");
    }

    #[test]
    fn losses_name_each_actor_short_of_its_acknowledged_seq() {
        let want = marks(&[("a", 10), ("b", 5), ("c", 7)]);
        let have = marks(&[("a", 10), ("b", 2)]);
        let lost = losses(&want, &have);
        assert_eq!(
            lost,
            vec![
                Loss { actor: "b".into(), have: 2, acknowledged: 5 },
                Loss { actor: "c".into(), have: 0, acknowledged: 7 },
            ]
        );
        assert_eq!(lost.iter().map(Loss::missing).sum::<u64>(), 10);
    }
}
