//! The test-mode tables: every policy scored on the same held-out prompts' measurements, overall,
//! per budget class, and the policy's choices by budget class and prompt length.
//!
//! Two oracles bound what a policy could reach. The hindsight oracle takes, per prompt, the action
//! whose measured reward was best, so it also picks lucky timings no policy can foresee. The
//! expected-value oracle takes the action with the best expected reward: that prompt's measured
//! quality change (which a good enough state could predict) with each action's mean speedup over
//! the test prompts of the same hardware and length bucket; it is scored, like every policy, on
//! the measured reward of what it picks.

use std::collections::BTreeMap;
use std::path::Path;

use casrap_common::budget::{BudgetConfig, Class};
use casrap_common::config::RewardConfig;
use casrap_common::record::PromptResult;
use serde::Serialize;

use super::buckets::{bucket_label, class_label, length_bucket, LENGTH_EDGES};
use crate::error::{Error, Result};
use casrap_common::stats::{ci95, gmean, mean};

/// Reads `results.jsonl`; a bad line is named.
pub fn read(path: &Path) -> Result<Vec<PromptResult>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let rows: Vec<PromptResult> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Records {
                path: path.into(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect::<Result<_>>()?;
    for (i, r) in rows.iter().enumerate() {
        let n = rows[0].results.len();
        if r.results.len() != n || r.greedy >= n || r.random >= n {
            return Err(Error::Records {
                path: path.into(),
                reason: format!(
                    "prompt {} (line {}): action indices or result count do not match",
                    r.prompt_id,
                    i + 1
                ),
            });
        }
    }
    Ok(rows)
}

fn class_name(r: &PromptResult) -> &str {
    class_label(&r.budget)
}

/// Per prompt, the action with the best expected reward (see the module's comment).
pub fn expected_value_choices(
    results: &[PromptResult],
    reward: &RewardConfig,
    budget: &BudgetConfig,
) -> Vec<usize> {
    let mut speedups: BTreeMap<(&str, usize), Vec<Vec<f64>>> = BTreeMap::new();
    for r in results {
        let key = (r.hardware_label.as_str(), length_bucket(r.prompt_tokens));
        let cols = speedups.entry(key).or_insert_with(|| vec![Vec::new(); r.results.len()]);
        for (k, a) in r.results.iter().enumerate() {
            if let Some(c) = cols.get_mut(k) {
                c.push(a.speedup);
            }
        }
    }
    let means: BTreeMap<(&str, usize), Vec<f64>> =
        speedups.into_iter().map(|(k, cols)| (k, cols.iter().map(|c| mean(c)).collect())).collect();
    results
        .iter()
        .map(|r| {
            let class = budget
                .index_of(&r.budget)
                .map_or_else(|| Class::seed("any"), |i| budget.classes[i].clone());
            let m = &means[&(r.hardware_label.as_str(), length_bucket(r.prompt_tokens))];
            let expected: Vec<f64> = r
                .results
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    reward.reward_for(m[k], a.ppl_change, &class).unwrap_or(f64::NEG_INFINITY)
                })
                .collect();
            argmax(&expected)
        })
        .collect()
}

fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |b, (k, &x)| if x > v[b] { k } else { b })
}

/// One policy's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestRow {
    pub policy: String,
    pub mean_reward: f64,
    pub reward_ci95: f64,
    /// Geometric mean of decode speedups.
    pub speedup: f64,
    pub ppl_change_mean: f64,
    pub top1_mean: f64,
    /// Mean reward over the hindsight oracle's (NaN when the oracle's is not positive).
    pub oracle_share: f64,
    /// Prompts on which each action was chosen.
    pub chosen: BTreeMap<String, usize>,
}

/// A paired comparison: the policy's reward minus a baseline's, prompt by prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    pub baseline: String,
    pub mean_difference: f64,
    pub ci95: f64,
}

/// The prompts of one budget class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassRow {
    pub class: String,
    pub prompts: usize,
    pub policy_mean: f64,
    pub policy_ci95: f64,
    /// The fixed action with the best mean reward on this class's prompts.
    pub best_fixed: String,
    pub best_fixed_mean: f64,
    pub best_fixed_ci95: f64,
    /// Policy minus the class's best fixed action, prompt by prompt.
    pub vs_best_fixed: Paired,
    pub expected_value_oracle_mean: f64,
    pub chosen: BTreeMap<String, usize>,
    /// What the policy's choices gained and cost on this class's prompts: the geometric mean of
    /// their decode speedups and the mean of their perplexity changes, beside the class's limit.
    pub policy_speedup: f64,
    pub policy_ppl_change: f64,
    pub limit: Option<f64>,
}

/// The policy's and the expected-value oracle's choices on the prompts of one budget class and
/// length bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub class: String,
    pub tokens: String,
    pub prompts: usize,
    pub policy: BTreeMap<String, usize>,
    pub expected_value_oracle: BTreeMap<String, usize>,
}

/// The policy's choices on the prompts of one category and budget class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryCell {
    pub category: String,
    pub class: String,
    pub prompts: usize,
    pub policy: BTreeMap<String, usize>,
    pub policy_speedup: f64,
    pub policy_ppl_change: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSummary {
    pub prompts: usize,
    pub hardware: Vec<String>,
    pub rows: Vec<TestRow>,
    pub policy_vs: Vec<Paired>,
    /// `(policy - always none) / (expected-value oracle - always none)`, mean rewards.
    pub expected_value_gain_share: f64,
    pub classes: Vec<ClassRow>,
    pub adaptation: Vec<Cell>,
    /// What the policy chose by prompt category and budget class.
    pub categories: Vec<CategoryCell>,
    /// Measurement noise: `none` runs the dense model in both slots, so its true speedup is 1;
    /// the mean and standard deviation of its measured speedups over the prompts.
    pub none_speedup: Option<[f64; 2]>,
}

const POLICY: &str = "policy (greedy)";

/// `f` of the action the policy chose on each prompt of `idx`.
fn policy_picks(
    results: &[PromptResult],
    idx: &[usize],
    f: impl Fn(&casrap_common::record::ActionResult) -> f64,
) -> Vec<f64> {
    idx.iter().map(|&i| f(&results[i].results[results[i].greedy])).collect()
}
const EV_ORACLE: &str = "oracle (expected value)";
const HINDSIGHT: &str = "oracle (hindsight)";

fn paired(baseline: &str, policy: &[f64], other: &[f64]) -> Paired {
    let diff: Vec<f64> = policy.iter().zip(other).map(|(p, b)| p - b).collect();
    Paired { baseline: baseline.into(), mean_difference: mean(&diff), ci95: ci95(&diff) }
}

fn counts<'a>(labels: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in labels {
        *m.entry(l.to_string()).or_insert(0) += 1;
    }
    m
}

impl TestSummary {
    /// The tables of `results`; `reward` and `budget` (the run config's) give the expected-value
    /// oracle its rewards.
    pub fn from_results(
        results: &[PromptResult],
        reward: &RewardConfig,
        budget: &BudgetConfig,
    ) -> Self {
        let actions: Vec<String> = results
            .first()
            .map(|r| r.results.iter().map(|a| a.action.clone()).collect())
            .unwrap_or_default();
        // Every policy as its choice per prompt.
        let mut choices: Vec<(String, Vec<usize>)> =
            vec![(POLICY.into(), results.iter().map(|r| r.greedy).collect())];
        for (k, a) in actions.iter().enumerate() {
            choices.push((format!("always {a}"), vec![k; results.len()]));
        }
        choices.push(("random".into(), results.iter().map(|r| r.random).collect()));
        choices.push((EV_ORACLE.into(), expected_value_choices(results, reward, budget)));
        choices.push((
            HINDSIGHT.into(),
            results
                .iter()
                .map(|r| argmax(&r.results.iter().map(|a| a.reward).collect::<Vec<_>>()))
                .collect(),
        ));
        let rewards_of = |c: &[usize]| -> Vec<f64> {
            results.iter().zip(c).map(|(r, &k)| r.results[k].reward).collect()
        };
        let by_name = |name: &str| choices.iter().find(|(n, _)| n == name).map(|(_, c)| c);
        let oracle_mean = by_name(HINDSIGHT).map_or(f64::NAN, |c| mean(&rewards_of(c)));
        let rows: Vec<TestRow> = choices
            .iter()
            .map(|(name, c)| {
                let picked: Vec<&casrap_common::record::ActionResult> =
                    results.iter().zip(c).map(|(r, &k)| &r.results[k]).collect();
                let rewards: Vec<f64> = picked.iter().map(|a| a.reward).collect();
                TestRow {
                    policy: name.clone(),
                    mean_reward: mean(&rewards),
                    reward_ci95: ci95(&rewards),
                    speedup: gmean(&picked.iter().map(|a| a.speedup).collect::<Vec<_>>()),
                    ppl_change_mean: mean(&picked.iter().map(|a| a.ppl_change).collect::<Vec<_>>()),
                    top1_mean: mean(&picked.iter().map(|a| a.top1_agreement).collect::<Vec<_>>()),
                    oracle_share: if oracle_mean > 0.0 {
                        mean(&rewards) / oracle_mean
                    } else {
                        f64::NAN
                    },
                    chosen: counts(picked.iter().map(|a| a.action.as_str())),
                }
            })
            .collect();
        let policy = rewards_of(&choices[0].1);
        let best_fixed = rows
            .iter()
            .filter(|r| r.policy.starts_with("always "))
            .fold(None::<&TestRow>, |b, r| match b {
                Some(b) if b.mean_reward >= r.mean_reward => Some(b),
                _ => Some(r),
            })
            .map(|r| r.policy.clone());
        let mut policy_vs = Vec::new();
        for name in ["always none".to_string()]
            .into_iter()
            .chain(best_fixed.into_iter().map(|b| format!("{b} (best fixed action)")))
            .chain(["random".into(), EV_ORACLE.into(), HINDSIGHT.into()])
        {
            let base = name.trim_end_matches(" (best fixed action)");
            if let Some(c) = by_name(base) {
                policy_vs.push(paired(&name, &policy, &rewards_of(c)));
            }
        }
        let mean_of = |name: &str| by_name(name).map_or(f64::NAN, |c| mean(&rewards_of(c)));
        let none = mean_of("always none");
        let expected_value_gain_share = (mean(&policy) - none) / (mean_of(EV_ORACLE) - none);
        let ev = by_name(EV_ORACLE).cloned().unwrap_or_default();
        let classes = Self::classes(results, &actions, &ev, budget);
        let adaptation = Self::adaptation(results, &actions, &ev, budget);
        let categories = Self::categories(results, &actions, budget);
        let mut hardware: Vec<String> = results.iter().map(|r| r.hardware_label.clone()).collect();
        hardware.sort();
        hardware.dedup();
        let none: Vec<f64> = results
            .iter()
            .filter_map(|r| r.results.iter().find(|a| a.action == "none"))
            .map(|a| a.speedup)
            .collect();
        let none_speedup = super::summary::noise(&none);
        Self {
            prompts: results.len(),
            hardware,
            rows,
            policy_vs,
            expected_value_gain_share,
            classes,
            adaptation,
            categories,
            none_speedup,
        }
    }

    /// The classes present, in the config's order (unknown names after, sorted).
    fn class_order<'a>(results: &'a [PromptResult], budget: &BudgetConfig) -> Vec<&'a str> {
        let mut names: Vec<&str> = results.iter().map(class_name).collect();
        names.sort_by_key(|n| (budget.index_of(n).unwrap_or(usize::MAX), n.to_string()));
        names.dedup();
        names
    }

    fn classes(
        results: &[PromptResult],
        actions: &[String],
        ev: &[usize],
        budget: &BudgetConfig,
    ) -> Vec<ClassRow> {
        Self::class_order(results, budget)
            .into_iter()
            .map(|class| {
                let idx: Vec<usize> =
                    (0..results.len()).filter(|&i| class_name(&results[i]) == class).collect();
                let rewards = |k: &dyn Fn(usize) -> usize| -> Vec<f64> {
                    idx.iter().map(|&i| results[i].results[k(i)].reward).collect()
                };
                let policy = rewards(&|i| results[i].greedy);
                let fixed: Vec<Vec<f64>> =
                    (0..actions.len()).map(|k| rewards(&move |_| k)).collect();
                let best = argmax(&fixed.iter().map(|f| mean(f)).collect::<Vec<_>>());
                let best_rewards = fixed.get(best).cloned().unwrap_or_default();
                ClassRow {
                    class: class.to_string(),
                    prompts: idx.len(),
                    policy_mean: mean(&policy),
                    policy_ci95: ci95(&policy),
                    best_fixed: actions.get(best).cloned().unwrap_or_default(),
                    best_fixed_mean: mean(&best_rewards),
                    best_fixed_ci95: ci95(&best_rewards),
                    vs_best_fixed: paired("best fixed action", &policy, &best_rewards),
                    expected_value_oracle_mean: mean(&rewards(&|i| ev[i])),
                    chosen: counts(idx.iter().map(|&i| actions[results[i].greedy].as_str())),
                    policy_speedup: gmean(&policy_picks(results, &idx, |a| a.speedup)),
                    policy_ppl_change: mean(&policy_picks(results, &idx, |a| a.ppl_change)),
                    limit: budget.index_of(class).and_then(|k| budget.classes[k].limit),
                }
            })
            .collect()
    }

    fn categories(
        results: &[PromptResult],
        actions: &[String],
        budget: &BudgetConfig,
    ) -> Vec<CategoryCell> {
        let mut names: Vec<&str> = results.iter().map(|r| r.category.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut cells = Vec::new();
        for category in names {
            for class in Self::class_order(results, budget) {
                let idx: Vec<usize> = (0..results.len())
                    .filter(|&i| {
                        results[i].category == category && class_name(&results[i]) == class
                    })
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                cells.push(CategoryCell {
                    category: category.to_string(),
                    class: class.to_string(),
                    prompts: idx.len(),
                    policy: counts(idx.iter().map(|&i| actions[results[i].greedy].as_str())),
                    policy_speedup: gmean(&policy_picks(results, &idx, |a| a.speedup)),
                    policy_ppl_change: mean(&policy_picks(results, &idx, |a| a.ppl_change)),
                });
            }
        }
        cells
    }

    fn adaptation(
        results: &[PromptResult],
        actions: &[String],
        ev: &[usize],
        budget: &BudgetConfig,
    ) -> Vec<Cell> {
        let mut cells = Vec::new();
        for class in Self::class_order(results, budget) {
            for b in 0..=LENGTH_EDGES.len() {
                let idx: Vec<usize> = (0..results.len())
                    .filter(|&i| {
                        class_name(&results[i]) == class
                            && length_bucket(results[i].prompt_tokens) == b
                    })
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                cells.push(Cell {
                    class: class.to_string(),
                    tokens: bucket_label(b),
                    prompts: idx.len(),
                    policy: counts(idx.iter().map(|&i| actions[results[i].greedy].as_str())),
                    expected_value_oracle: counts(idx.iter().map(|&i| actions[ev[i]].as_str())),
                });
            }
        }
        cells
    }

    pub fn text(&self) -> String {
        let f = |x: f64, d: usize| if x.is_finite() { format!("{x:.d$}") } else { "-".into() };
        let list = |m: &BTreeMap<String, usize>| {
            let mut v: Vec<(&String, &usize)> = m.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            v.iter().map(|(a, c)| format!("{a} {c}")).collect::<Vec<_>>().join(", ")
        };
        let mut s = format!(
            "CASRAP test mode: {} held-out prompts, every policy on the same measurements ({})\n\n\
             | policy | mean reward (95% CI) | decode speedup | ppl change | top-1 agreement | share of hindsight oracle reward | actions chosen |\n|---|---|---|---|---|---|---|\n",
            self.prompts,
            self.hardware.join(", ")
        );
        for r in &self.rows {
            s += &format!(
                "| {} | {} ± {} | {}x | {}% | {}% | {}% | {} |\n",
                r.policy,
                f(r.mean_reward, 4),
                f(r.reward_ci95, 4),
                f(r.speedup, 3),
                f(r.ppl_change_mean * 100.0, 1),
                f(r.top1_mean * 100.0, 1),
                f(r.oracle_share * 100.0, 0),
                list(&r.chosen)
            );
        }
        s += "\nPaired, prompt by prompt (policy minus baseline, 95% CI):\n";
        for p in &self.policy_vs {
            s += &format!("- vs {}: {} ± {}\n", p.baseline, f(p.mean_difference, 4), f(p.ci95, 4));
        }
        s += &format!(
            "The policy reaches {}% of the expected-value oracle's gain over always none.\n",
            f(self.expected_value_gain_share * 100.0, 0)
        );
        s += "\nPer budget class (the policy against that class's own best fixed action, paired):\n\n\
              | class | prompts | policy mean reward | best fixed action | its mean reward | policy minus it (95% CI) | expected-value oracle | policy chose |\n|---|---|---|---|---|---|---|---|\n";
        for c in &self.classes {
            s += &format!(
                "| {} | {} | {} ± {} | {} | {} ± {} | {} ± {} | {} | {} |\n",
                c.class,
                c.prompts,
                f(c.policy_mean, 4),
                f(c.policy_ci95, 4),
                c.best_fixed,
                f(c.best_fixed_mean, 4),
                f(c.best_fixed_ci95, 4),
                f(c.vs_best_fixed.mean_difference, 4),
                f(c.vs_best_fixed.ci95, 4),
                f(c.expected_value_oracle_mean, 4),
                list(&c.chosen)
            );
        }
        s += "\nPer budget class, what the policy's choices gained and cost (geometric mean decode speedup, mean perplexity change against the class's limit):\n\n\
              | class | prompts | policy decode speedup | policy ppl change | limit | within |\n|---|---|---|---|---|---|\n";
        for c in &self.classes {
            let (limit, within) = match c.limit {
                Some(l) => (
                    format!("{}%", f(l * 100.0, 1)),
                    if c.policy_ppl_change <= l { "yes" } else { "no" },
                ),
                None => ("none".to_string(), "-"),
            };
            s += &format!(
                "| {} | {} | {}x | {}% | {} | {} |\n",
                c.class,
                c.prompts,
                f(c.policy_speedup, 3),
                f(c.policy_ppl_change * 100.0, 2),
                limit,
                within
            );
        }
        s += "\nAdaptation: what the policy chose by budget class and prompt length (tokens), beside the expected-value oracle:\n\n\
              | class | tokens | prompts | policy chose | expected-value oracle chose |\n|---|---|---|---|---|\n";
        for c in &self.adaptation {
            s += &format!(
                "| {} | {} | {} | {} | {} |\n",
                c.class,
                c.tokens,
                c.prompts,
                list(&c.policy),
                list(&c.expected_value_oracle)
            );
        }
        s += "\nBy prompt category and budget class: what the policy chose, with its decode speedup (geometric mean) and perplexity change (mean):\n\n\
              | category | class | prompts | policy chose | decode speedup | ppl change |\n|---|---|---|---|---|---|\n";
        for c in &self.categories {
            s += &format!(
                "| {} | {} | {} | {} | {}x | {}% |\n",
                c.category,
                c.class,
                c.prompts,
                list(&c.policy),
                f(c.policy_speedup, 3),
                f(c.policy_ppl_change * 100.0, 2)
            );
        }
        s += &super::summary::noise_line(self.none_speedup, "over the prompts");
        s += "\nAll from results.jsonl (and config.yaml's reward and budget classes for the expected-value oracle): each action measured on each prompt against the dense model (config.yaml's actors.timing says how); a policy's row takes, per prompt, the action it chooses. Expected-value oracle: per prompt, the best expected reward from the prompt's measured quality change and each action's mean speedup over the test prompts of the same hardware and length bucket; hindsight oracle: the best measured reward per prompt.\n";
        s
    }
}
