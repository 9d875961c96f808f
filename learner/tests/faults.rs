//! The replay store under faults: a full disk (a real tmpfs), half-written sled snapshots and
//! flipped bytes in the database file. What was acknowledged must stay, what the store reports
//! as durable must be durable, and a full disk must heal once space returns, without a restart.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, stop at the first failure

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use casrap_common::rl::Transition;
use casrap_proto::fixtures;
use casrap_store::replay::Replay;

fn transition(seq: u64, pad: usize) -> Transition {
    Transition {
        action: (seq % 3) as u32,
        metrics: Some(format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(pad))),
        ..fixtures::stored(seq, 4)
    }
}

fn batch(from: u64, n: u64, pad: usize) -> Vec<Transition> {
    (from..from + n).map(|s| transition(s, pad)).collect()
}

/// A small tmpfs of its own, unmounted on drop. `None` (with the reason printed) where this
/// process may not mount; CI runs as root, where it must work.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir }),
            Ok(o) => Self::unavailable(&String::from_utf8_lossy(&o.stderr)),
            Err(e) => Self::unavailable(&e.to_string()),
        }
    }

    fn unavailable(why: &str) -> Option<Self> {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs (it runs as root): {why}"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here ({})", why.trim());
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the filesystem at `dir` with a ballast file until writes fail.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 << 10];
    while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
    path
}

fn seqs_of(replay: &Replay, actor: &str) -> Vec<u64> {
    replay
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.actor == actor)
        .map(|r| r.transition.seq)
        .collect()
}

#[test]
fn a_full_disk_loses_nothing_acknowledged_and_heals_when_space_returns() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    let store = fs.path().join("replay");
    let replay = Replay::open(&store, 1_000_000).unwrap();
    // Leave about 4 MiB free, then write 64 KiB batches until the disk is full.
    let ballast = fs.path().join("ballast-big");
    std::fs::write(&ballast, vec![1u8; 18 << 20]).unwrap();
    let mut acked = 0u64;
    let mut failure = None;
    for _ in 0..2_000 {
        match replay.insert("a", &batch(acked + 1, 4, 16 << 10)) {
            Ok(s) => {
                assert_eq!(s.durable_seq, acked + 4);
                acked = s.durable_seq;
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    let failure = failure.expect("the disk never filled");
    println!("disk full after seq {acked}: {failure}");
    // What Register reports must be durable: the failed batch was applied, not flushed.
    assert_eq!(replay.durable_seq("a").unwrap(), acked, "durable seq after a failed flush");
    assert!(replay.broken().is_some());
    // Make sure every last byte is taken, then give the space back.
    let small = fill(fs.path());
    std::fs::remove_file(&small).unwrap();
    std::fs::remove_file(&ballast).unwrap();
    // Resend from the durable seq, as an actor does, until the store takes it again.
    let healed = Instant::now();
    let mut recovered = None;
    while healed.elapsed() < Duration::from_secs(20) {
        let from = replay.durable_seq("a").unwrap() + 1;
        match replay.insert("a", &batch(from, 4, 16 << 10)) {
            Ok(s) => {
                recovered = Some(s);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    if let Some(why) = replay.wedged() {
        // sled could not close its failed opening (it hangs in a flush after some write errors),
        // so only a restart reopens it: the store says so, and the learner stops on it. What was
        // acknowledged is on disk: a fresh process finds it (tested by the campaign's kills).
        println!("store wedged after the disk filled: {why}");
        assert!(why.contains("restart the learner"), "{why}");
        assert!(recovered.is_none());
        std::mem::forget(replay);
        return;
    }
    let s = recovered.expect("the store did not heal within 20 s of space returning");
    println!(
        "healed {:.2} s after space returned; durable seq {}",
        healed.elapsed().as_secs_f64(),
        s.durable_seq
    );
    assert!(s.durable_seq >= acked + 4);
    let last = s.durable_seq;
    let next = replay.insert("a", &batch(last + 1, 4, 16)).unwrap();
    assert_eq!(next.durable_seq, last + 4);
    let want: Vec<u64> = (1..=last + 4).collect();
    assert_eq!(seqs_of(&replay, "a"), want, "every seq once, no gap");
    // And it all survives a reopen.
    drop(replay);
    let replay = Replay::open(&store, 1_000_000).unwrap();
    assert_eq!(seqs_of(&replay, "a"), want);
    assert_eq!(replay.episodes().unwrap().len(), want.len());
    assert_eq!(replay.durable_seq("a").unwrap(), last + 4);
}

#[test]
fn a_half_written_snapshot_does_not_make_the_store_unopenable() {
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(dir.path(), 100).unwrap();
    replay.insert("a", &batch(1, 10, 8)).unwrap();
    drop(replay);
    // What a full disk leaves when sled's snapshot cannot be written: a 0-byte temp file.
    std::fs::write(dir.path().join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
    let replay = Replay::open(dir.path(), 100).unwrap();
    assert_eq!(seqs_of(&replay, "a"), (1..=10).collect::<Vec<_>>());
    assert_eq!(replay.durable_seq("a").unwrap(), 10);
}

#[test]
fn flipped_bytes_in_the_database_are_found_when_it_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(dir.path(), 100_000).unwrap();
    for k in 0..64 {
        replay.insert("a", &batch(k * 16 + 1, 16, 512)).unwrap();
    }
    drop(replay);
    let db = dir.path().join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 64 << 10, "{} bytes", bytes.len());
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b ^= 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    // Either the damage is found at open, naming the store, or it hit space sled no longer uses
    // and every acknowledged transition is there, intact. What must never happen is what sled
    // alone allows: opening the damaged log as an older or empty store without an error (the
    // witness of the last clean close refuses that).
    match Replay::open(dir.path(), 100_000).and_then(|r| r.verify().map(|n| (r, n))) {
        Err(e) => {
            let err = e.to_string();
            assert!(
                err.contains(&dir.path().display().to_string()),
                "the error names the store: {err}"
            );
        }
        Ok((replay, _)) => {
            assert_eq!(seqs_of(&replay, "a"), (1..=1024).collect::<Vec<u64>>(), "nothing lost");
            assert_eq!(replay.durable_seq("a").unwrap(), 1024);
        }
    }
}

/// A store that opens as less than was acknowledged is refused, naming the actor, the lost seqs
/// and the witness; `accept_lost_data` serves what is left and the actor goes on after the loss.
#[test]
fn a_store_that_lost_acknowledged_data_is_refused_at_open_or_accepted_on_request() {
    use casrap_store::replay::OpenOptions;
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(dir.path(), 1000).unwrap();
    replay.insert("a", &batch(1, 10, 8)).unwrap();
    replay.insert("b", &batch(1, 3, 8)).unwrap();
    // No clean close: the witness was written by the commits themselves.
    let witness = std::fs::read(dir.path().join("marks.log")).unwrap();
    drop(replay);
    // The database replaced by an empty one (what a damaged log can recover to), witness kept.
    let other = tempfile::tempdir().unwrap();
    drop(Replay::open(other.path(), 1000).unwrap());
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::rename(other.path(), dir.path()).unwrap();
    std::fs::write(dir.path().join("marks.log"), witness).unwrap();
    let err =
        Replay::open(dir.path(), 1000).err().expect("an emptied store was accepted").to_string();
    assert!(
        err.contains("actor `a` holds seqs up to 0")
            && err.contains("seqs 1..=10 lost")
            && err.contains("2 actor(s) and 13 transition(s)")
            && err.contains("marks.log")
            && err.contains("--accept-lost-data"),
        "{err}"
    );
    // Refused again (the refusal changed nothing), then accepted on request.
    assert!(Replay::open(dir.path(), 1000).is_err());
    let o = OpenOptions { accept_lost_data: true, ..OpenOptions::new(1000) };
    let replay = Replay::open_with(dir.path(), &o).unwrap();
    assert_eq!(replay.durable_seq("a").unwrap(), 10, "the actor goes on after its lost seqs");
    let next = replay.insert("a", &batch(11, 2, 8)).unwrap();
    assert_eq!((next.stored, next.durable_seq), (2, 12));
    drop(replay);
    let replay = Replay::open(dir.path(), 1000).unwrap();
    assert_eq!(seqs_of(&replay, "a"), vec![11, 12]);
}

/// A store whose witness was deleted, or is unreadable, is refused with the witness's path.
#[test]
fn a_missing_or_unreadable_witness_is_an_error_never_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    Replay::open(dir.path(), 100).unwrap().insert("a", &batch(1, 4, 8)).unwrap();
    let log = dir.path().join("marks.log");
    std::fs::remove_file(&log).unwrap();
    let err = Replay::open(dir.path(), 100).err().expect("no witness, yet accepted").to_string();
    assert!(err.contains("marks.log") && err.contains("missing"), "{err}");
    std::fs::create_dir(&log).unwrap();
    let err = Replay::open(dir.path(), 100).err().expect("a directory as witness").to_string();
    assert!(err.contains("marks.log"), "{err}");
    std::fs::remove_dir(&log).unwrap();
    std::fs::write(&log, "00000000 {\"a\":4}\n").unwrap();
    let err = Replay::open(dir.path(), 100).err().expect("a forged witness").to_string();
    assert!(err.contains("marks.log") && err.contains("checksum"), "{err}");
}

/// Episode records live in `episodes.log`, outside sled: a crashed round's tail is cut at open,
/// a damaged record is reported by actor and seq while the rest read, and a log cut short of
/// what the store committed is refused naming it (or, on request, served with the lost records
/// reported).
#[test]
fn the_episode_log_is_cut_back_checked_and_refused_when_short() {
    use casrap_store::replay::OpenOptions;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes.log");
    let replay = Replay::open(dir.path(), 1000).unwrap();
    replay.insert("a", &batch(1, 20, 64)).unwrap();
    drop(replay);
    let committed = std::fs::metadata(&log).unwrap().len();
    let read = |replay: &Replay| {
        let mut out = Vec::new();
        replay
            .for_each_episode(|e| {
                out.push((e.actor, e.seq, e.json));
                Ok(())
            })
            .unwrap();
        out
    };
    // A round a crash interrupted after its records were written: never acknowledged, cut.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend(b"CEP1 half a record from a round that never committed");
    std::fs::write(&log, &bytes).unwrap();
    let replay = Replay::open(dir.path(), 1000).unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().len(), committed, "the tail is cut");
    replay.insert("a", &batch(21, 1, 64)).unwrap();
    let all = read(&replay);
    assert_eq!(all.len(), 21);
    assert!(all
        .iter()
        .all(|(a, s, j)| a == "a" && j.as_ref().unwrap().contains(&format!("\"seq\":{s},"))));
    drop(replay);
    // One flipped byte inside record 5's JSON: it alone is reported, by actor and seq.
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(9).position(|w| w == b"\"seq\":5,\"").unwrap();
    bytes[at + 3] ^= 0x20;
    std::fs::write(&log, &bytes).unwrap();
    let replay = Replay::open(dir.path(), 1000).unwrap();
    replay.verify().unwrap();
    let all = read(&replay);
    let bad: Vec<_> = all.iter().filter(|e| e.2.is_err()).collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].0.as_str(), bad[0].1), ("a", 5));
    assert!(bad[0].2.as_ref().unwrap_err().contains("checksum"), "{bad:?}");
    drop(replay);
    // Cut short of what the store committed: refused, naming the log; accepted on request.
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 10).unwrap();
    let err = Replay::open(dir.path(), 1000).err().expect("a short log was accepted").to_string();
    assert!(err.contains("episodes.log") && err.contains("--accept-lost-data"), "{err}");
    let o = OpenOptions { accept_lost_data: true, ..OpenOptions::new(1000) };
    let replay = Replay::open_with(dir.path(), &o).unwrap();
    let all = read(&replay);
    assert_eq!(all.len(), 21, "every indexed record is still listed");
    let bad: Vec<_> = all.iter().filter(|e| e.2.is_err()).map(|e| e.1).collect();
    assert_eq!(bad, vec![5, 21], "the damaged and the lost record are named");
    // Nothing acknowledged is lost: the transitions are all there, and the store goes on.
    assert_eq!(seqs_of(&replay, "a"), (1..=21).collect::<Vec<_>>());
    replay.insert("a", &batch(22, 1, 64)).unwrap();
    assert!(read(&replay).last().unwrap().2.is_ok());
}

/// Stores of versions before the episode log keep their records in sled's tree; they still read,
/// in actor and seq order with the log's.
#[test]
fn records_kept_in_the_tree_by_earlier_versions_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(dir.path(), 1000).unwrap();
    replay.insert("b", &batch(1, 2, 8)).unwrap();
    replay.put_legacy_episode("a", 1, 900, "{\"legacy\":1}").unwrap();
    let mut got = Vec::new();
    replay
        .for_each_episode(|e| {
            got.push((e.actor, e.seq, e.json.unwrap()));
            Ok(())
        })
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ("a".to_string(), 1, "{\"legacy\":1}".to_string()));
    assert_eq!((got[1].0.as_str(), got[1].1, got[2].1), ("b", 1, 2));
    assert_eq!(replay.episodes().unwrap().last().unwrap().0, 900, "insertion order by index");
}

/// Stores of versions before chunks hold one key per transition; they are converted when opened,
/// with an evicted head inside a chunk and a partly filled last one, and go on from there.
#[test]
fn stores_with_a_key_per_transition_are_converted_to_chunks_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(dir.path(), 100).unwrap();
    replay.insert("a", &batch(1, 150, 8)).unwrap();
    let before = replay.records().unwrap();
    assert_eq!(before.first().map(|r| r.index), Some(50), "evicted up to a head inside a chunk");
    replay.write_legacy_layout().unwrap();
    drop(replay);
    let replay = Replay::open(dir.path(), 100).unwrap();
    replay.verify().unwrap();
    assert_eq!(replay.records().unwrap(), before);
    assert_eq!(replay.get(149).unwrap(), before.last().cloned());
    assert_eq!(replay.get(49).unwrap(), None);
    let more = replay.insert("a", &batch(151, 30, 8)).unwrap();
    assert_eq!((more.stored, more.durable_seq), (30, 180));
    drop(replay);
    let replay = Replay::open(dir.path(), 100).unwrap();
    assert_eq!(seqs_of(&replay, "a"), (81..=180).collect::<Vec<_>>());
}
