//! The sled replay store against a simple in-memory model, with reopen steps, and its promises:
//! exactly once per (actor, seq), FIFO eviction, episodes kept, everything back after reopening.

use std::collections::{HashMap, VecDeque};

use casrap_common::rl::Transition;
use casrap_store::replay::Replay;
use proptest::prelude::*;
use rand::SeedableRng;

fn transition(actor: usize, seq: u64, with_metrics: bool) -> Transition {
    let x = (actor as f32) + (seq as f32) / 1000.0;
    Transition {
        seq,
        state: vec![x, -x, 0.5],
        action: (seq % 5) as u32,
        reward: x.sin(),
        next_state: vec![x + 1.0, x, 0.25],
        done: seq.is_multiple_of(3),
        metrics: with_metrics.then(|| format!("{{\"actor\":{actor},\"seq\":{seq}}}")),
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Actor sends seqs `from..from+len` (a resend when `from` is at or below its mark).
    Send {
        actor: usize,
        back: u64,
        len: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..4u64, 0..6u64).prop_map(|(actor, back, len)| Op::Send { actor, back, len }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default)]
struct Model {
    high: HashMap<usize, u64>,
    kept: VecDeque<(usize, u64)>,
    episodes: Vec<(usize, u64)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_the_model(ops in proptest::collection::vec(op(), 1..30), capacity in 1..12u64) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Replay::open(dir.path(), capacity).unwrap();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Reopen => {
                    drop(store);
                    store = Replay::open(dir.path(), capacity).unwrap();
                }
                Op::Send { actor, back, len } => {
                    let high = model.high.get(&actor).copied().unwrap_or(0);
                    let from = (high + 1).saturating_sub(back).max(1);
                    let batch: Vec<Transition> = (from..from + len).map(|s| transition(actor, s, s % 2 == 0)).collect();
                    let r = store.insert(&format!("a{actor}"), &batch).unwrap();
                    let mut stored = 0;
                    for t in &batch {
                        if t.seq > model.high.get(&actor).copied().unwrap_or(0) {
                            model.high.insert(actor, t.seq);
                            model.kept.push_back((actor, t.seq));
                            if t.metrics.is_some() {
                                model.episodes.push((actor, t.seq));
                            }
                            stored += 1;
                            while model.kept.len() as u64 > capacity {
                                model.kept.pop_front();
                            }
                        }
                    }
                    prop_assert_eq!(r.stored, stored);
                    prop_assert_eq!(r.duplicates as usize, batch.len() - stored as usize);
                    prop_assert_eq!(r.durable_seq, model.high.get(&actor).copied().unwrap_or(0));
                }
            }
            let records = store.records().unwrap();
            let got: Vec<(usize, u64)> = records.iter().map(|r| (r.actor[1..].parse().unwrap(), r.transition.seq)).collect();
            prop_assert_eq!(got, model.kept.iter().copied().collect::<Vec<_>>());
            for r in &records {
                let actor: usize = r.actor[1..].parse().unwrap();
                let mut want = transition(actor, r.transition.seq, false);
                want.metrics = None;
                prop_assert_eq!(&r.transition, &want);
            }
            prop_assert_eq!(store.len().unwrap(), model.kept.len() as u64);
            for actor in 0..3 {
                prop_assert_eq!(store.durable_seq(&format!("a{actor}")).unwrap(), model.high.get(&actor).copied().unwrap_or(0));
            }
            let episodes: Vec<String> = store.episodes().unwrap().into_iter().map(|(_, j)| j).collect();
            let want: Vec<String> = model.episodes.iter().map(|&(a, s)| format!("{{\"actor\":{a},\"seq\":{s}}}")).collect();
            prop_assert_eq!(episodes, want);
        }
    }
}

#[test]
fn sampling_is_uniform_over_what_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Replay::open(dir.path(), 10).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    assert!(store.sample(4, &mut rng).unwrap().is_empty());
    let batch: Vec<Transition> = (1..=30).map(|s| transition(0, s, false)).collect();
    store.insert("a0", &batch).unwrap();
    let draws = store.sample(20_000, &mut rng).unwrap();
    let mut counts = HashMap::new();
    for r in &draws {
        *counts.entry(r.transition.seq).or_insert(0usize) += 1;
    }
    let mut seqs: Vec<u64> = counts.keys().copied().collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>(), "only the newest 10 are kept");
    assert!(counts.values().all(|&c| (1700..=2300).contains(&c)), "{counts:?}");
}

#[test]
fn an_unusable_store_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = Replay::open(&file, 10).err().expect("opening a file as a store fails").to_string();
    assert!(err.contains("not-a-dir"), "{err}");
}
