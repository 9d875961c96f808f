//! `summary.json` and `report.txt` of a training run, computed from `episodes.jsonl` alone, so
//! `casrap report` reproduces them exactly.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::run_records::Episode;

use casrap_common::stats::{ci95, finite, gmean, mean, median, std_dev};

/// Aggregates of a group of episodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub episodes: usize,
    pub mean_reward: f64,
    pub reward_ci95: f64,
    /// Geometric mean of decode speedups.
    pub speedup: f64,
    pub ppl_change_mean: f64,
    pub top1_mean: f64,
}

impl Stats {
    pub fn of<'a>(episodes: impl IntoIterator<Item = &'a Episode>) -> Self {
        let es: Vec<&Episode> = episodes.into_iter().collect();
        let rewards: Vec<f64> = es.iter().map(|e| e.reward).collect();
        Self {
            episodes: es.len(),
            mean_reward: mean(&rewards),
            reward_ci95: ci95(&rewards),
            speedup: gmean(&es.iter().map(|e| e.speedup).collect::<Vec<_>>()),
            ppl_change_mean: mean(&finite(es.iter().map(|e| e.ppl_change))),
            top1_mean: mean(&finite(es.iter().map(|e| e.top1_agreement))),
        }
    }
}

/// One action's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRow {
    pub action: String,
    pub share: f64,
    pub stats: Stats,
    pub ceiling_median: f64,
    pub dense_tok_s_median: f64,
    pub pruned_tok_s_median: f64,
    /// Prefill + decode, median, milliseconds.
    pub dense_ms_median: f64,
    pub pruned_ms_median: f64,
    pub ppl_dense_median: f64,
    pub ppl_pruned_median: f64,
    pub apply_ms_median: f64,
    pub restore_ms_median: f64,
}

/// One hardware profile's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareRow {
    pub hardware: String,
    pub actors: Vec<String>,
    pub stats: Stats,
    /// Episodes per action on this hardware.
    pub actions: BTreeMap<String, usize>,
    /// Speedup (geometric mean) per action on this hardware.
    pub speedups: BTreeMap<String, f64>,
}

/// Everything `report.txt` says, as numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub run: String,
    pub episodes: usize,
    pub overall: Stats,
    /// Episodes where the policy acted greedily (not exploring).
    pub greedy: Stats,
    pub explored_share: f64,
    /// Mean reward of the first and the last quarter of episodes (by time).
    pub first_quarter_reward: f64,
    pub last_quarter_reward: f64,
    pub final_policy_version: u64,
    pub final_epsilon: f64,
    pub per_action: Vec<ActionRow>,
    pub per_hardware: Vec<HardwareRow>,
    /// Measurement noise: mean and standard deviation of `none`'s per-episode speedup (true: 1).
    pub none_speedup: Option<[f64; 2]>,
    /// The greedy episodes' actions by budget class and prompt length.
    pub adaptation: Vec<ChoiceCell>,
}

/// The actions chosen greedily in the episodes of one budget class and length bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChoiceCell {
    pub class: String,
    pub tokens: String,
    pub episodes: usize,
    pub mean_reward: f64,
    pub chosen: BTreeMap<String, usize>,
}

/// Greedy episodes (not explored) grouped by budget class (`any` in records from before budgets),
/// in order of `classes` then name, and prompt length bucket.
fn adaptation(episodes: &[Episode], classes: &[String]) -> Vec<ChoiceCell> {
    use super::buckets::{bucket_label, length_bucket};
    fn class_of(e: &Episode) -> &str {
        super::buckets::class_label(&e.budget)
    }
    let greedy: Vec<&Episode> = episodes.iter().filter(|e| !e.explored).collect();
    let mut names: Vec<String> = greedy.iter().map(|e| class_of(e).to_string()).collect();
    names.sort_by_key(|n| (classes.iter().position(|c| c == n).unwrap_or(usize::MAX), n.clone()));
    names.dedup();
    let mut out = Vec::new();
    for class in names {
        for b in 0..=super::buckets::LENGTH_EDGES.len() {
            let g: Vec<&&Episode> = greedy
                .iter()
                .filter(|e| class_of(e) == class && length_bucket(e.prompt_tokens) == b)
                .collect();
            if g.is_empty() {
                continue;
            }
            let mut chosen = BTreeMap::new();
            for e in &g {
                *chosen.entry(e.action.clone()).or_insert(0) += 1;
            }
            out.push(ChoiceCell {
                class: class.clone(),
                tokens: bucket_label(b),
                episodes: g.len(),
                mean_reward: mean(&g.iter().map(|e| e.reward).collect::<Vec<_>>()),
                chosen,
            });
        }
    }
    out
}

/// Measurement noise from `none`'s measured speedups (the dense model in both slots, true speedup
/// 1): their mean and standard deviation, with at least two.
pub fn noise(none_speedups: &[f64]) -> Option<[f64; 2]> {
    (none_speedups.len() >= 2).then(|| [mean(none_speedups), std_dev(none_speedups)])
}

/// The report line of [`noise`] (empty without it); `over` says what one measurement is.
pub fn noise_line(noise: Option<[f64; 2]>, over: &str) -> String {
    noise.map_or_else(String::new, |[m, sd]| {
        format!(
            "\nNoise: `none` (the dense model in both slots, true speedup 1) measured {m:.3}x, standard deviation {sd:.3} {over}.\n"
        )
    })
}

/// Episodes in the order they happened (record time, then actor and seq).
pub fn by_time(episodes: &[Episode]) -> Vec<&Episode> {
    let mut v: Vec<&Episode> = episodes.iter().collect();
    v.sort_by(|a, b| {
        a.time_unix_s
            .total_cmp(&b.time_unix_s)
            .then(a.actor_id.cmp(&b.actor_id))
            .then(a.seq.cmp(&b.seq))
    });
    v
}

impl Summary {
    /// `actions`: the run's action labels in policy order (rows follow it; unknown labels last);
    /// `classes`: its budget classes in order.
    pub fn from_episodes(
        run: &str,
        episodes: &[Episode],
        actions: &[String],
        classes: &[String],
    ) -> Self {
        let n = episodes.len();
        let mut labels: Vec<String> = actions.to_vec();
        for e in episodes {
            if !labels.contains(&e.action) {
                labels.push(e.action.clone());
            }
        }
        let per_action = labels
            .iter()
            .filter_map(|a| {
                let g: Vec<&Episode> = episodes.iter().filter(|e| &e.action == a).collect();
                let col = |f: &dyn Fn(&Episode) -> f64| median(&finite(g.iter().map(|e| f(e))));
                (!g.is_empty()).then(|| ActionRow {
                    action: a.clone(),
                    share: g.len() as f64 / n as f64,
                    stats: Stats::of(g.iter().copied()),
                    ceiling_median: col(&|e| e.ceiling),
                    dense_tok_s_median: col(&|e| e.dense.decode_tokens_per_s),
                    pruned_tok_s_median: col(&|e| e.pruned.decode_tokens_per_s),
                    dense_ms_median: col(&|e| e.dense.total_ms()),
                    pruned_ms_median: col(&|e| e.pruned.total_ms()),
                    ppl_dense_median: col(&|e| e.dense.ppl),
                    ppl_pruned_median: col(&|e| e.pruned.ppl),
                    apply_ms_median: col(&|e| e.apply_s * 1e3),
                    restore_ms_median: col(&|e| e.restore_s * 1e3),
                })
            })
            .collect();
        let mut hw: BTreeMap<String, Vec<&Episode>> = BTreeMap::new();
        for e in episodes {
            hw.entry(e.hardware_label.clone()).or_default().push(e);
        }
        let per_hardware = hw
            .into_iter()
            .map(|(hardware, g)| {
                let mut actors: Vec<String> = g.iter().map(|e| e.actor_id.clone()).collect();
                actors.dedup();
                actors.sort();
                actors.dedup();
                let mut counts = BTreeMap::new();
                let mut speedups = BTreeMap::new();
                for a in &labels {
                    let sel: Vec<f64> =
                        g.iter().filter(|e| &e.action == a).map(|e| e.speedup).collect();
                    if !sel.is_empty() {
                        counts.insert(a.clone(), sel.len());
                        speedups.insert(a.clone(), gmean(&sel));
                    }
                }
                HardwareRow {
                    hardware,
                    actors,
                    stats: Stats::of(g.iter().copied()),
                    actions: counts,
                    speedups,
                }
            })
            .collect();
        let none: Vec<f64> =
            finite(episodes.iter().filter(|e| e.action == "none").map(|e| e.speedup));
        let none_speedup = noise(&none);
        let ordered = by_time(episodes);
        let q = (n / 4).max(1).min(n);
        let quarter = |es: &[&Episode]| mean(&es.iter().map(|e| e.reward).collect::<Vec<_>>());
        let last = ordered.last();
        Self {
            run: run.into(),
            episodes: n,
            overall: Stats::of(episodes),
            greedy: Stats::of(episodes.iter().filter(|e| !e.explored)),
            explored_share: episodes.iter().filter(|e| e.explored).count() as f64 / n.max(1) as f64,
            first_quarter_reward: quarter(&ordered[..q.min(n)]),
            last_quarter_reward: quarter(&ordered[n.saturating_sub(q)..]),
            final_policy_version: episodes.iter().map(|e| e.policy_version).max().unwrap_or(0),
            final_epsilon: last.map_or(f64::NAN, |e| f64::from(e.epsilon)),
            per_action,
            per_hardware,
            none_speedup,
            adaptation: adaptation(episodes, classes),
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let f = |x: f64, d: usize| if x.is_finite() { format!("{x:.d$}") } else { "-".into() };
        let pct = |x: f64| if x.is_finite() { format!("{:+.1}%", x * 100.0) } else { "-".into() };
        let mut s = format!(
            "CASRAP training run `{}`: {} episodes, policy versions up to {}, final epsilon {}\n\
             mean reward {} ± {} (95% CI); greedy episodes: {} at {} ± {}; explored {:.0}%\n\
             mean reward first quarter {} -> last quarter {}\n\n",
            self.run,
            self.episodes,
            self.final_policy_version,
            f(self.final_epsilon, 3),
            f(self.overall.mean_reward, 4),
            f(self.overall.reward_ci95, 4),
            self.greedy.episodes,
            f(self.greedy.mean_reward, 4),
            f(self.greedy.reward_ci95, 4),
            self.explored_share * 100.0,
            f(self.first_quarter_reward, 4),
            f(self.last_quarter_reward, 4),
        );
        s += "| action | episodes | share | mean reward (95% CI) | speedup | ceiling | decode tok/s dense -> pruned | ms dense -> pruned | ppl change | top-1 | apply ms | restore ms |\n";
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
        for r in &self.per_action {
            s += &format!(
                "| {} | {} | {:.0}% | {} ± {} | {}x | {}x | {} -> {} | {} -> {} | {} | {:.0}% | {} | {} |\n",
                r.action,
                r.stats.episodes,
                r.share * 100.0,
                f(r.stats.mean_reward, 4),
                f(r.stats.reward_ci95, 4),
                f(r.stats.speedup, 3),
                f(r.ceiling_median, 3),
                f(r.dense_tok_s_median, 1),
                f(r.pruned_tok_s_median, 1),
                f(r.dense_ms_median, 1),
                f(r.pruned_ms_median, 1),
                pct(r.stats.ppl_change_mean),
                r.stats.top1_mean * 100.0,
                f(r.apply_ms_median, 4),
                f(r.restore_ms_median, 4),
            );
        }
        s += "\n| hardware | actors | episodes | mean reward | actions chosen | speedup per action |\n|---|---|---|---|---|---|\n";
        for h in &self.per_hardware {
            let acts: Vec<String> = h.actions.iter().map(|(a, c)| format!("{a} {c}")).collect();
            let sp: Vec<String> =
                h.speedups.iter().map(|(a, x)| format!("{a} {}x", f(*x, 3))).collect();
            s += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                h.hardware,
                h.actors.join(" "),
                h.stats.episodes,
                f(h.stats.mean_reward, 4),
                acts.join(", "),
                sp.join(", ")
            );
        }
        if !self.adaptation.is_empty() {
            s += "\nGreedy episodes by budget class and prompt length (tokens): the actions the policy chose\n\n| class | tokens | episodes | mean reward | actions chosen |\n|---|---|---|---|---|\n";
            for c in &self.adaptation {
                let mut v: Vec<(&String, &usize)> = c.chosen.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let acts: Vec<String> = v.iter().map(|(a, n)| format!("{a} {n}")).collect();
                s += &format!(
                    "| {} | {} | {} | {} | {} |\n",
                    c.class,
                    c.tokens,
                    c.episodes,
                    f(c.mean_reward, 4),
                    acts.join(", ")
                );
            }
        }
        s += &noise_line(self.none_speedup, "per episode");
        s += "\nspeedup: geometric mean over episodes of each episode's decode speedup (actors.timing: interleaved, the median per-step time ratio; runs, paired ABBA runs); ceiling: bytes read per token, dense over pruned;\nppl change: perplexity of the pruned model on prompt + dense continuation, relative to the dense model's; all from episodes.jsonl.\n";
        s
    }
}
