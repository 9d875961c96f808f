//! The test-mode table: every policy scored on the same held-out prompts' measurements.

use std::collections::BTreeMap;
use std::path::Path;

use casrap_actor::testmode::PromptResult;
use serde::Serialize;

use super::summary::{ci95, gmean, mean};
use crate::error::{Error, Result};

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

/// Picks an action index for a prompt's results.
type Chooser = Box<dyn Fn(&PromptResult) -> usize>;

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
    /// Mean reward over the oracle's (NaN when the oracle's is not positive).
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestSummary {
    pub prompts: usize,
    pub hardware: Vec<String>,
    pub rows: Vec<TestRow>,
    pub policy_vs: Vec<Paired>,
    /// Measurement noise: `none` runs the dense model in both slots, so its true speedup is 1;
    /// the mean and standard deviation of its measured speedups over the prompts.
    pub none_speedup: Option<[f64; 2]>,
}

impl TestSummary {
    pub fn from_results(results: &[PromptResult]) -> Self {
        let actions: Vec<String> = results
            .first()
            .map(|r| r.results.iter().map(|a| a.action.clone()).collect())
            .unwrap_or_default();
        let oracle = |r: &PromptResult| {
            r.results
                .iter()
                .enumerate()
                .fold(0, |b, (k, a)| if a.reward > r.results[b].reward { k } else { b })
        };
        let mut choosers: Vec<(String, Chooser)> =
            vec![("policy (greedy)".into(), Box::new(|r: &PromptResult| r.greedy))];
        for (k, a) in actions.iter().enumerate() {
            choosers.push((format!("always {a}"), Box::new(move |_: &PromptResult| k)));
        }
        choosers.push(("random".into(), Box::new(|r: &PromptResult| r.random)));
        choosers.push(("oracle".into(), Box::new(oracle)));
        let rewards_of = |f: &dyn Fn(&PromptResult) -> usize| -> Vec<f64> {
            results.iter().map(|r| r.results[f(r)].reward).collect()
        };
        let oracle_mean = mean(&rewards_of(&oracle));
        let rows = choosers
            .iter()
            .map(|(name, f)| {
                let picked: Vec<&casrap_actor::testmode::ActionResult> =
                    results.iter().map(|r| &r.results[f(r)]).collect();
                let rewards: Vec<f64> = picked.iter().map(|a| a.reward).collect();
                let mut chosen = BTreeMap::new();
                for a in &picked {
                    *chosen.entry(a.action.clone()).or_insert(0) += 1;
                }
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
                    chosen,
                }
            })
            .collect();
        let policy = rewards_of(&|r: &PromptResult| r.greedy);
        let policy_vs = choosers[1..]
            .iter()
            .filter(|(name, _)| name == "always none" || name == "random" || name == "oracle")
            .map(|(name, f)| {
                let diff: Vec<f64> =
                    policy.iter().zip(rewards_of(f.as_ref())).map(|(p, b)| p - b).collect();
                Paired { baseline: name.clone(), mean_difference: mean(&diff), ci95: ci95(&diff) }
            })
            .collect();
        let mut hardware: Vec<String> = results.iter().map(|r| r.hardware_label.clone()).collect();
        hardware.sort();
        hardware.dedup();
        let none: Vec<f64> = results
            .iter()
            .filter_map(|r| r.results.iter().find(|a| a.action == "none"))
            .map(|a| a.speedup)
            .collect();
        let none_speedup = super::summary::noise(&none);
        Self { prompts: results.len(), hardware, rows, policy_vs, none_speedup }
    }

    pub fn text(&self) -> String {
        let f = |x: f64, d: usize| if x.is_finite() { format!("{x:.d$}") } else { "-".into() };
        let mut s = format!(
            "CASRAP test mode: {} held-out prompts, every policy on the same measurements ({})\n\n\
             | policy | mean reward (95% CI) | decode speedup | ppl change | top-1 agreement | share of oracle reward | actions chosen |\n|---|---|---|---|---|---|---|\n",
            self.prompts,
            self.hardware.join(", ")
        );
        for r in &self.rows {
            let chosen: Vec<String> = r.chosen.iter().map(|(a, c)| format!("{a} {c}")).collect();
            s += &format!(
                "| {} | {} ± {} | {}x | {}% | {}% | {}% | {} |\n",
                r.policy,
                f(r.mean_reward, 4),
                f(r.reward_ci95, 4),
                f(r.speedup, 3),
                f(r.ppl_change_mean * 100.0, 1),
                f(r.top1_mean * 100.0, 1),
                f(r.oracle_share * 100.0, 0),
                chosen.join(", ")
            );
        }
        s += "\nPaired, prompt by prompt (policy minus baseline, 95% CI):\n";
        for p in &self.policy_vs {
            s += &format!("- vs {}: {} ± {}\n", p.baseline, f(p.mean_difference, 4), f(p.ci95, 4));
        }
        s += &super::summary::noise_line(self.none_speedup, "over the prompts");
        s += "\nAll from results.jsonl: each action measured on each prompt against the dense model (config.yaml's actors.timing says how); a policy's row takes, per prompt, the action it chooses.\n";
        s
    }
}
