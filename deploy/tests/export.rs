//! `casrap export` against real sled stores: a record that cannot be read is reported by actor
//! and seq while every other record is written, and memory does not grow with the store.

#![allow(clippy::unwrap_used)] // tests stop at the first failure

use std::path::Path;
use std::time::Duration;

use casrap_common::record::EpisodeRecord;
use casrap_common::rl::Transition;
use casrap_deploy::run_records;
use casrap_proto::fixtures;
use casrap_store::replay::Replay;

/// A transition carrying `json` as its episode record.
fn transition(seq: u64, json: String) -> Transition {
    Transition { metrics: Some(json), ..fixtures::stored(seq, 4) }
}

/// A record whose measurement holds `runs` timed runs, as a real actor's does (numbers, not a
/// padding string: a parsed record then costs what a real one does).
fn record(actor: &str, seq: u64, runs: usize) -> String {
    let mut r = EpisodeRecord::synthetic(actor, seq, 0);
    let run = |i: usize| {
        serde_json::json!({"decode_s": 0.01 + i as f64 * 1e-4, "prefill_s": 0.002, "pruned": i % 2 == 1,
            "steps": (0..24).map(|k| 0.0004 + k as f64 * 1e-6).collect::<Vec<f64>>()})
    };
    r.measurement = serde_json::json!({ "runs": (0..runs).map(run).collect::<Vec<_>>() });
    r.to_line().unwrap()
}

/// Records written past the learner's door (stores from before it checked them hold such).
#[test]
fn export_reports_unreadable_records_by_actor_and_seq_and_writes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let replay = Replay::open(&dir.path().join("replay"), 1000).unwrap();
    let mut a: Vec<Transition> = (1..=5).map(|s| transition(s, record("a", s, 1))).collect();
    a[2].metrics = Some("{}".into());
    a[3].metrics = Some(record("a", 4, 1).replace("\"reward\":0.07", "\"reward\":\"high\""));
    replay.insert("a", &a).unwrap();
    replay
        .insert("b", &[transition(1, record("b", 1, 1)), transition(2, record("b", 2, 1))])
        .unwrap();
    // A record stored under one actor and seq that names another.
    replay.insert("c", &[transition(1, record("a", 1, 1))]).unwrap();
    drop(replay);
    let e = run_records::export(dir.path(), None).unwrap();
    let lines = std::fs::read_to_string(dir.path().join("episodes.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 5, "every readable record written:\n{lines}");
    assert_eq!(e.actors["a"], (3, 5));
    assert_eq!(e.unreadable.len(), 3, "{:?}", e.unreadable);
    assert!(
        e.unreadable[0].contains("actor `a` seq 3")
            && e.unreadable[0].contains("missing field `action`"),
        "{:?}",
        e.unreadable
    );
    assert!(
        e.unreadable[1].contains("actor `a` seq 4") && e.unreadable[1].contains("reward"),
        "{:?}",
        e.unreadable
    );
    assert!(
        e.unreadable[2].contains("actor `c` seq 1") && e.unreadable[2].contains("says actor `a`"),
        "{:?}",
        e.unreadable
    );
    let table = e.table();
    assert!(table.contains("unreadable, left out: actor `a` seq 3"), "{table}");
    // A's seqs 3 and 4 are gone from the output: its contiguity check says so.
    assert!(e.problems.iter().any(|p| p.contains("a: expected seq 3")), "{:?}", e.problems);
    // The end of a run reads past them too; the strict reader names the first.
    let (episodes, unreadable) = run_records::read_store(dir.path(), 1000).unwrap();
    assert_eq!((episodes.len(), unreadable.len()), (5, 3));
    let err = run_records::from_store(dir.path(), 1000).unwrap_err().to_string();
    assert!(err.contains("3 unreadable record(s)") && err.contains("actor `a` seq 3"), "{err}");
}

/// Peak resident memory of `casrap export` on the store in `dir`, sampled from /proc.
fn export_peak_rss(dir: &Path) -> u64 {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_casrap"))
        .arg("export")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb << 10);
            }
        }
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "export failed: {s}");
            return peak;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn store_of(dir: &Path, episodes: u64) {
    let replay = Replay::open(&dir.join("replay"), u64::MAX).unwrap();
    for from in (1..=episodes).step_by(500) {
        let batch: Vec<Transition> = (from..(from + 500).min(episodes + 1))
            .map(|s| transition(s, record("a", s, 8)))
            .collect();
        replay.insert("a", &batch).unwrap();
    }
}

#[test]
fn export_memory_does_not_grow_with_the_store() {
    let (small, large) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    store_of(small.path(), 1_000);
    let n: u64 =
        std::env::var("CASRAP_EXPORT_EPISODES").ok().and_then(|v| v.parse().ok()).unwrap_or(12_000);
    store_of(large.path(), n);
    let bytes = |d: &Path| {
        std::fs::read_dir(d.join("replay"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum::<u64>()
    };
    let (peak_small, peak_large) = (export_peak_rss(small.path()), export_peak_rss(large.path()));
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "export peak RSS: {:.1} MiB for 1,000 episodes ({:.1} MiB store), {:.1} MiB for {n} ({:.1} MiB store)",
        mib(peak_small),
        mib(bytes(small.path())),
        mib(peak_large),
        mib(bytes(large.path()))
    );
    let lines =
        std::fs::read_to_string(large.path().join("episodes.jsonl")).unwrap().lines().count();
    assert_eq!(lines as u64, n);
    // Export holds one record at a time; what grows is sled's own index of the store, far
    // slower than the store (the whole store in memory, as export once held it, is several
    // times the store's bytes).
    let (grew, store_grew) =
        (peak_large.saturating_sub(peak_small), bytes(large.path()) - bytes(small.path()));
    assert!(
        grew < store_grew / 2 && peak_large < 128 << 20,
        "export memory grew with the store: {:.1} -> {:.1} MiB for {:.1} MiB more store",
        mib(peak_small),
        mib(peak_large),
        mib(store_grew)
    );
}
