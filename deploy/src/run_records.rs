//! A run's records: `episodes.jsonl` exported from the learner's replay store (the one place every
//! actor's episodes meet, exactly once each), completeness checks, and how well the learned
//! Q-values agree with the rewards the actors observed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use casrap_common::config::RunConfig;
use casrap_common::record::EpisodeRecord;
use casrap_common::stats;
use casrap_store::checkpoint;
use casrap_store::replay::{OpenOptions, Replay};
use serde_json::Value;

use crate::error::{Error, Result};

/// One episode: its typed record, and the JSON it was stored as (which export writes back
/// verbatim). It reads as its record (`e.reward`, `e.dense.ppl`, ...).
#[derive(Debug, Clone)]
pub struct Episode {
    pub record: EpisodeRecord,
    pub json: Value,
}

impl std::ops::Deref for Episode {
    type Target = EpisodeRecord;
    fn deref(&self) -> &EpisodeRecord {
        &self.record
    }
}

impl Episode {
    /// Reads one record; `at` names it in errors, with the field that is missing or wrong.
    pub fn parse(json: Value, path: &Path, at: &str) -> Result<Self> {
        let record = EpisodeRecord::from_value(&json).map_err(|reason| Error::Records {
            path: path.into(),
            reason: format!("{at}: {reason}"),
        })?;
        Ok(Self { record, json })
    }
}

/// Every readable episode record in the replay store under `learner_dir`, ordered by actor and
/// seq, and one line per record that cannot be read (by actor and seq, with why): one bad
/// record does not hide the others.
pub fn read_store(learner_dir: &Path, capacity: u64) -> Result<(Vec<Episode>, Vec<String>)> {
    let path = learner_dir.join("replay");
    let replay = Replay::open(&path, capacity)?;
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    replay.for_each_episode(|e| {
        match parse_stored(&e) {
            Ok(episode) => out.push(episode),
            Err(why) => unreadable.push(why),
        }
        Ok(())
    })?;
    Ok((out, unreadable))
}

/// Every episode record in the replay store under `learner_dir`, ordered by actor and seq; an
/// error if any cannot be read (see [`read_store`]).
pub fn from_store(learner_dir: &Path, capacity: u64) -> Result<Vec<Episode>> {
    let (episodes, unreadable) = read_store(learner_dir, capacity)?;
    match unreadable.first() {
        None => Ok(episodes),
        Some(first) => Err(Error::Records {
            path: learner_dir.join("replay"),
            reason: format!("{} unreadable record(s), the first: {first}", unreadable.len()),
        }),
    }
}

/// A stored record as its typed episode, checked against the actor and seq it is stored under;
/// the error names them.
fn parse_stored(e: &casrap_store::replay::StoredEpisode) -> std::result::Result<Episode, String> {
    let at = format!("actor `{}` seq {} (record {})", e.actor, e.seq, e.index);
    let json = e.json.as_ref().map_err(|why| format!("{at}: {why}"))?;
    let value: Value = serde_json::from_str(json).map_err(|why| format!("{at}: {why}"))?;
    let record = EpisodeRecord::from_value(&value).map_err(|why| format!("{at}: {why}"))?;
    let episode = Episode { record, json: value };
    if !e.actor.is_empty() && (episode.actor_id != e.actor || episode.seq != e.seq) {
        return Err(format!(
            "{at}: the record says actor `{}` seq {}",
            episode.actor_id, episode.seq
        ));
    }
    Ok(episode)
}

/// What [`export`] wrote.
#[derive(Debug)]
pub struct Exported {
    pub store: PathBuf,
    pub out: PathBuf,
    /// Per actor: episodes and the highest seq.
    pub actors: BTreeMap<String, (u64, u64)>,
    /// Per actor with a gap or duplicate, the first one (see [`check_complete`]).
    pub problems: Vec<String>,
    /// Records that could not be read, by actor and seq with why (left out of the output).
    pub unreadable: Vec<String>,
}

impl Exported {
    pub fn table(&self) -> String {
        let mut t = format!("{:<40} {:>9} {:>9}\n", "actor", "episodes", "last seq");
        for (a, (n, last)) in &self.actors {
            t += &format!("{a:<40} {n:>9} {last:>9}\n");
        }
        let total: u64 = self.actors.values().map(|(n, _)| n).sum();
        t += &format!(
            "{total} episodes from {} written to {}\n",
            self.store.display(),
            self.out.display()
        );
        for p in &self.problems {
            t += &format!("not contiguous: {p}\n");
        }
        for u in &self.unreadable {
            t += &format!("unreadable, left out: {u}\n");
        }
        t
    }
}

/// The learner folder and default output of `path`: a run folder (`learner/replay` inside), a
/// learner folder (`replay/` inside) or a store (sled's `conf` inside).
fn locate_store(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if path.join("learner/replay").is_dir() {
        return Ok((path.join("learner"), path.join("episodes.jsonl")));
    }
    if path.join("replay").is_dir() {
        return Ok((path.into(), path.join("episodes.jsonl")));
    }
    if path.join("conf").is_file() && path.join("db").is_file() {
        let parent = path.parent().unwrap_or(Path::new("."));
        return Ok((parent.into(), parent.join("episodes.jsonl")));
    }
    Err(Error::Records {
        path: path.into(),
        reason: "no replay store here (looked for learner/replay/, replay/ and a sled store)"
            .into(),
    })
}

/// Unreadable records named in full by [`export`]; beyond them, only counted.
const SHOWN_UNREADABLE: usize = 20;

/// `casrap export`: every episode record of a store to `episodes.jsonl` (or `out`), by actor
/// and seq, with a count per actor and the first gap of each actor whose seqs are not 1..=n.
/// Streams: one record in memory at a time (and a line per actor); a record that cannot be
/// read is reported by actor and seq and left out, the others are written.
pub fn export(path: &Path, out: Option<&Path>) -> Result<Exported> {
    let (learner_dir, default_out) = locate_store(path)?;
    let out = out.map_or(default_out, Path::to_path_buf);
    let store = learner_dir.join("replay");
    // Capacity only matters for inserts; an export inserts nothing, and reads each record once
    // (a small page cache: memory stays flat whatever the store's size).
    let options = OpenOptions { cache_bytes: 1 << 20, ..OpenOptions::new(u64::MAX) };
    let replay = Replay::open_with(&store, &options)?;
    let tmp = out.with_extension("jsonl.tmp");
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
    let mut actors: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut gaps: BTreeMap<String, String> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut unreadable_count = 0usize;
    replay.for_each_episode(|e| {
        let episode = match parse_stored(&e) {
            Ok(episode) => episode,
            Err(why) => {
                unreadable_count += 1;
                if unreadable.len() < SHOWN_UNREADABLE {
                    unreadable.push(why);
                }
                return Ok(());
            }
        };
        writeln!(f, "{}", episode.json)
            .map_err(|source| casrap_store::Error::Io { path: tmp.clone(), source })?;
        let a = actors.entry(episode.actor_id.clone()).or_insert((0, 0));
        // Records come in seq order per actor: the n-th must be seq n.
        if episode.seq != a.0 + 1 && !gaps.contains_key(&episode.actor_id) {
            gaps.insert(
                episode.actor_id.clone(),
                format!(
                    "{}: expected seq {} at position {}, found {}",
                    episode.actor_id,
                    a.0 + 1,
                    a.0 + 1,
                    episode.seq
                ),
            );
        }
        a.0 += 1;
        a.1 = a.1.max(episode.seq);
        Ok(())
    })?;
    f.into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
    if unreadable_count > unreadable.len() {
        unreadable.push(format!("... and {} more", unreadable_count - unreadable.len()));
    }
    Ok(Exported { store, out, actors, problems: gaps.into_values().collect(), unreadable })
}

/// Writes one JSON object per line (atomically: a temp file renamed into place).
pub fn write_jsonl(path: &Path, episodes: &[Episode]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut f =
        std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
    for e in episodes {
        writeln!(f, "{}", e.json).map_err(|e| Error::io(&tmp, e))?;
    }
    f.into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads `episodes.jsonl`; a bad line is named with its number.
pub fn read_jsonl(path: &Path) -> Result<Vec<Episode>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l).map_err(|e| Error::Records {
                path: path.into(),
                reason: format!("line {}: {e}", i + 1),
            })?;
            Episode::parse(v, path, &format!("line {}", i + 1))
        })
        .collect()
}

/// Checks that each actor's episodes are exactly seqs `1..=want[actor]`; the reason names the
/// first gap or duplicate.
pub fn check_complete(
    episodes: &[Episode],
    want: &BTreeMap<String, u64>,
) -> std::result::Result<(), String> {
    let mut seen: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in episodes {
        seen.entry(&e.actor_id).or_default().push(e.seq);
    }
    for (actor, &n) in want {
        let mut seqs = seen.remove(actor.as_str()).unwrap_or_default();
        seqs.sort_unstable();
        for (i, &s) in seqs.iter().enumerate() {
            if s != i as u64 + 1 {
                return Err(format!(
                    "{actor}: expected seq {} at position {}, found {s}",
                    i + 1,
                    i + 1
                ));
            }
        }
        if seqs.len() as u64 != n {
            return Err(format!("{actor}: {} of {n} episodes stored", seqs.len()));
        }
    }
    if let Some(actor) = seen.keys().next() {
        return Err(format!("episodes from an actor this run did not start: {actor}"));
    }
    Ok(())
}

/// Per action: how often it was taken, its mean observed reward (with the half-width of its 95%
/// confidence interval, NaN below two episodes), and the learned Q-network's mean value for it in
/// the states where it was taken.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ActionFit {
    pub action: String,
    pub episodes: usize,
    pub mean_reward: f64,
    pub reward_ci95: f64,
    pub mean_q: f64,
}

/// How the learned Q-values rank the actions against the observed rewards.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyFit {
    pub checkpoint: PathBuf,
    pub updates: u64,
    pub rows: Vec<ActionFit>,
    /// Spearman rank correlation between `mean_q` and `mean_reward` over the actions taken. Near
    /// ties in reward (gaps inside the noise) move it as much as real misorderings do.
    pub spearman: f64,
    /// The order check: the pairs the observed rewards tell apart, and those the Q-values rank
    /// the other way.
    pub order: OrderCheck,
}

/// Pairs of actions whose rewards are told apart by the records (their 95% confidence intervals
/// do not overlap), and which of those the Q-values order the other way (`better`, `worse`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OrderCheck {
    pub separated: usize,
    pub misordered: Vec<(String, String)>,
}

/// The order check over `rows`: a pair counts when `|mean_reward_a - mean_reward_b|` exceeds the
/// sum of the two half-widths (an action seen once has none and never counts), and is misordered
/// when the Q-values rank the worse action at least as high as the better one.
pub fn order_check(rows: &[ActionFit]) -> OrderCheck {
    let mut check = OrderCheck::default();
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            let (better, worse) = if a.mean_reward >= b.mean_reward { (a, b) } else { (b, a) };
            // NaN half-widths make the comparison false: not told apart.
            let told_apart =
                better.mean_reward - worse.mean_reward > better.reward_ci95 + worse.reward_ci95;
            if !told_apart {
                continue;
            }
            check.separated += 1;
            let ranked_right = better.mean_q > worse.mean_q;
            if !ranked_right {
                check.misordered.push((better.action.clone(), worse.action.clone()));
            }
        }
    }
    check
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson on ranks, ties averaged); NaN for fewer than 2 points.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.len() < 2 {
        return f64::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The fit of a finished run (`run_dir` holds `config.yaml`, `episodes.jsonl` and `learner/`).
pub fn policy_fit(run_dir: &Path) -> Result<PolicyFit> {
    let cfg = RunConfig::from_file(&run_dir.join("config.yaml"))?;
    let episodes = read_jsonl(&run_dir.join("episodes.jsonl"))?;
    let labels = cfg.action_labels();
    let ckpts = run_dir.join("learner").join("checkpoints");
    if episodes.is_empty() {
        return Err(Error::Records {
            path: run_dir.join("episodes.jsonl"),
            reason: "no episodes".into(),
        });
    }
    // The run's state layout is the one its records hold (a run of an older layout keeps its
    // own width), and every record must hold the same.
    let dim = episodes[0].state.len();
    if let Some(e) = episodes.iter().find(|e| e.state.len() != dim) {
        return Err(Error::Records {
            path: run_dir.join("episodes.jsonl"),
            reason: format!(
                "{} seq {}: `state` has {} values, the run's first record {dim}",
                e.actor_id,
                e.seq,
                e.state.len(),
            ),
        });
    }
    let dims = cfg.trainer.qnet_dims(dim, labels.len());
    // The newest checkpoint that reads, as the learner resumes.
    let (net, state, checkpoint) = checkpoint::list(&ckpts)
        .into_iter()
        .rev()
        .find_map(|c| match checkpoint::read_policy(&c, Some(&dims)) {
            Ok((n, s)) => Some((n, s, c)),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint unusable; trying the previous one");
                None
            }
        })
        .ok_or_else(|| Error::Records {
            path: ckpts.clone(),
            reason: "no usable checkpoint".into(),
        })?;
    let states: Vec<f32> = episodes.iter().flat_map(|e| e.state.iter().copied()).collect();
    let q: Vec<f32> = net
        .q_batch(&states)
        .map_err(|e| Error::Records { path: checkpoint.clone(), reason: e.to_string() })?
        .concat();
    let n = labels.len();
    // Like with like: an action's Q-values in the states where it was taken, against the rewards
    // it got there (a greedy policy takes actions in the states that favour them).
    let rows: Vec<ActionFit> = labels
        .iter()
        .enumerate()
        .filter_map(|(a, label)| {
            let taken: Vec<(f64, f64)> = episodes
                .iter()
                .enumerate()
                .filter(|(_, e)| &e.action == label)
                .map(|(i, e)| (e.reward, f64::from(q[i * n + a])))
                .collect();
            let rewards: Vec<f64> = taken.iter().map(|t| t.0).collect();
            let qs: Vec<f64> = taken.iter().map(|t| t.1).collect();
            (!taken.is_empty()).then(|| ActionFit {
                action: label.clone(),
                episodes: taken.len(),
                mean_reward: stats::mean(&rewards),
                reward_ci95: stats::ci95(&rewards),
                mean_q: stats::mean(&qs),
            })
        })
        .collect();
    let rho = spearman(
        &rows.iter().map(|r| r.mean_q).collect::<Vec<_>>(),
        &rows.iter().map(|r| r.mean_reward).collect::<Vec<_>>(),
    );
    let order = order_check(&rows);
    Ok(PolicyFit { checkpoint, updates: state.updates, rows, spearman: rho, order })
}

impl PolicyFit {
    pub fn table(&self) -> String {
        let mut s = format!(
            "checkpoint {} ({} updates)\n\
             | action | episodes | mean reward | 95% CI | mean Q |\n|---|---|---|---|---|\n",
            self.checkpoint.display(),
            self.updates
        );
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {:+.4} | ±{:.4} | {:+.4} |\n",
                r.action, r.episodes, r.mean_reward, r.reward_ci95, r.mean_q
            );
        }
        s += &format!("Spearman rank correlation (mean Q vs mean reward): {:.3}\n", self.spearman);
        let wrong: Vec<String> =
            self.order.misordered.iter().map(|(b, w)| format!("{b} > {w}")).collect();
        s += &format!(
            "pairs the rewards tell apart (95% CIs disjoint): {}, ranked the other way by Q: {}\n",
            self.order.separated,
            if wrong.is_empty() { "none".to_string() } else { wrong.join(", ") }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(action: &str, mean_reward: f64, reward_ci95: f64, mean_q: f64) -> ActionFit {
        ActionFit { action: action.into(), episodes: 10, mean_reward, reward_ci95, mean_q }
    }

    #[test]
    fn only_pairs_the_rewards_tell_apart_must_be_ordered_by_q() {
        // The shape of a real run: three cheap actions inside each other's noise, two costly ones.
        let rows = [
            fit("none", 0.0002, 0.004, -0.0025),
            fit("heads", -0.0077, 0.005, 0.0076),
            fit("kv", -0.0060, 0.004, 0.0003),
            fit("ffn", -0.2507, 0.03, -0.2407),
            fit("layers", -0.2481, 0.03, -0.2623),
        ];
        let check = order_check(&rows);
        // Cheap vs costly: 3 x 2 pairs; the near ties inside each group do not count.
        assert_eq!(check.separated, 6);
        assert!(check.misordered.is_empty(), "{:?}", check.misordered);
        // Q ranking a costly action above a cheap one is caught, with the pair named.
        let mut bad = rows.clone();
        bad[3].mean_q = 0.005;
        let check = order_check(&bad);
        assert_eq!(check.separated, 6);
        assert_eq!(
            check.misordered,
            [("none".to_string(), "ffn".to_string()), ("kv".to_string(), "ffn".to_string())]
        );
        // An action seen once has no interval and is told apart from nothing.
        let once = [fit("none", 0.0, 0.01, 0.0), fit("ffn", -1.0, f64::NAN, 1.0)];
        assert_eq!(order_check(&once).separated, 0);
    }
}
