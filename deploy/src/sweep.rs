//! Sweeps: a base run config plus a grid or a list of overrides (`deploy/sweep-*.yaml`).
//! `casrap sweep FILE` runs every point into `runs/sweep-N/point-K/` (at most `parallel` at once)
//! and writes a table and a plot comparing the points, computed from each point's records.
//!
//! ```yaml
//! name: reward
//! base: local.yaml              # a run config, relative to this file
//! parallel: 1                   # points running at once on this machine
//! set: {actors.episodes: 100}   # overrides for every point
//! grid:                         # the cartesian product of these (dotted key paths)
//!   reward.alpha: [0.5, 0.9]
//!   reward.beta: [0.3, 1.0]
//! # or, instead of grid, a list of points, each a map of overrides:
//! # points:
//! #   - {actions: [{kind: none}, {kind: ffn, intensity: 0.25}]}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use casrap_common::config::RunConfig;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::error::{Error, Result};
use crate::report::summary::{Stats, Summary};
use crate::run_records;

/// A sweep file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    #[serde(default)]
    pub name: String,
    /// The base run config, relative to the sweep file.
    pub base: String,
    /// Points running at once (locally).
    #[serde(default = "one")]
    pub parallel: usize,
    /// Overrides applied to every point (dotted key paths).
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Every combination of these values (dotted key paths to lists).
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<Value>>,
    /// Explicit points, each a map of overrides.
    #[serde(default)]
    pub points: Vec<BTreeMap<String, Value>>,
}

fn one() -> usize {
    1
}

/// One point: its overrides and the checked config they give.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub overrides: BTreeMap<String, Value>,
    pub config: RunConfig,
}

fn bad(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config(casrap_common::Error::Config {
        path: path.into(),
        field: field.into(),
        reason: reason.into(),
    })
}

/// Sets `value` at the dotted `key` of a YAML mapping, creating maps on the way.
fn set_path(root: &mut Value, key: &str, value: Value) -> std::result::Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("is not a dotted key path".into());
    }
    let mut cur = root;
    for (i, part) in parts.iter().enumerate() {
        let Value::Mapping(map) = cur else {
            return Err(format!("`{}` is not a section", parts[..i].join(".")));
        };
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        cur = map.entry(k).or_insert_with(|| Value::Mapping(Default::default()));
    }
    Ok(())
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Sequence(s) => format!("[{} items]", s.len()),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

impl SweepFile {
    /// Reads and checks a sweep file; every error names the key path.
    pub fn load(path: &Path) -> Result<(Self, Vec<Point>)> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let de = serde_yaml_ng::Deserializer::from_str(&text);
        let sweep: SweepFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let reason = e.into_inner().to_string();
            // The YAML error repeats (part of) the key path in front; it is already in `field`.
            let reason = match reason.split_once(": ") {
                Some((head, rest)) if field.starts_with(head) => rest.to_string(),
                _ => reason,
            };
            bad(path, if field == "." { "(top level)".into() } else { field }, reason)
        })?;
        if sweep.parallel == 0 {
            return Err(bad(path, "parallel", "must be at least 1"));
        }
        match (sweep.grid.is_empty(), sweep.points.is_empty()) {
            (true, true) => {
                return Err(bad(path, "grid", "the sweep has no points: give `grid` or `points`"))
            }
            (false, false) => return Err(bad(path, "grid", "give `grid` or `points`, not both")),
            _ => {}
        }
        if let Some((k, _)) = sweep.grid.iter().find(|(_, v)| v.is_empty()) {
            return Err(bad(path, format!("grid.{k}"), "is an empty list"));
        }
        let base_path = path.parent().unwrap_or(Path::new(".")).join(&sweep.base);
        let base_text = std::fs::read_to_string(&base_path)
            .map_err(|e| bad(path, "base", format!("{}: {e}", base_path.display())))?;
        // Check the base on its own first (its errors name its own file).
        RunConfig::from_yaml(&base_text, &base_path)?;
        let base: Value = serde_yaml_ng::from_str(&base_text)
            .map_err(|e| bad(&base_path, "(top level)", e.to_string()))?;

        let mut combos: Vec<(String, BTreeMap<String, Value>)> = Vec::new();
        if !sweep.grid.is_empty() {
            combos.push((String::new(), BTreeMap::new()));
            for (k, values) in &sweep.grid {
                let mut next = Vec::new();
                for (prefix, o) in &combos {
                    for v in values {
                        let mut o = o.clone();
                        o.insert(k.clone(), v.clone());
                        next.push((
                            format!(
                                "{prefix}{}{k}={}",
                                if prefix.is_empty() { "" } else { " " },
                                short(v)
                            ),
                            o,
                        ));
                    }
                }
                combos = next;
            }
        } else {
            for o in &sweep.points {
                combos.push((
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", short(v)))
                        .collect::<Vec<_>>()
                        .join(" "),
                    o.clone(),
                ));
            }
        }
        let mut points = Vec::with_capacity(combos.len());
        for (i, (label, overrides)) in combos.into_iter().enumerate() {
            let mut cfg = base.clone();
            for (k, v) in sweep.set.iter().chain(&overrides) {
                set_path(&mut cfg, k, v.clone()).map_err(|e| bad(path, k.clone(), e))?;
            }
            let yaml = serde_yaml_ng::to_string(&cfg)
                .map_err(|e| bad(path, "(top level)", e.to_string()))?;
            let where_ = if sweep.grid.is_empty() {
                format!("points[{i}]")
            } else {
                format!("grid point {} ({label})", i + 1)
            };
            let config = RunConfig::from_yaml(&yaml, path).map_err(|e| match e {
                casrap_common::Error::Config { field, reason, .. } => {
                    bad(path, format!("{where_}: {field}"), reason)
                }
                other => Error::Config(other),
            })?;
            points.push(Point { label, overrides, config });
        }
        Ok((sweep, points))
    }
}

/// A point's row in the sweep table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointRow {
    pub point: String,
    pub overrides: String,
    pub overall: Stats,
    pub greedy: Stats,
    pub last_quarter_reward: f64,
    pub final_policy_version: u64,
}

/// The sweep's table, from each point's `episodes.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepSummary {
    pub sweep: String,
    pub rows: Vec<PointRow>,
}

impl SweepSummary {
    pub fn text(&self) -> String {
        let f = |x: f64| if x.is_finite() { format!("{x:.4}") } else { "-".into() };
        let mut s = format!(
            "CASRAP sweep `{}`: {} points\n\n| point | overrides | episodes | mean reward (95% CI) | greedy episodes: mean reward | last quarter | speedup | ppl change | top-1 | policy version |\n|---|---|---|---|---|---|---|---|---|---|\n",
            self.sweep,
            self.rows.len()
        );
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {} | {} ± {} | {} ({}) | {} | {}x | {}% | {}% | {} |\n",
                r.point,
                r.overrides,
                r.overall.episodes,
                f(r.overall.mean_reward),
                f(r.overall.reward_ci95),
                f(r.greedy.mean_reward),
                r.greedy.episodes,
                f(r.last_quarter_reward),
                if r.overall.speedup.is_finite() {
                    format!("{:.3}", r.overall.speedup)
                } else {
                    "-".into()
                },
                if r.overall.ppl_change_mean.is_finite() {
                    format!("{:+.1}", r.overall.ppl_change_mean * 100.0)
                } else {
                    "-".into()
                },
                if r.overall.top1_mean.is_finite() {
                    format!("{:.0}", r.overall.top1_mean * 100.0)
                } else {
                    "-".into()
                },
                r.final_policy_version
            );
        }
        s += "\nEach row from that point's episodes.jsonl (point-K/); see each point's report.txt for the per-action detail.\n";
        s
    }
}

/// Writes `summary.json`, `report.txt` and `sweep.png` of a sweep folder from its points' records
/// (`sweep.json` lists the points in order).
pub fn report(dir: &Path) -> Result<(SweepSummary, String)> {
    let index = dir.join("sweep.json");
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let meta: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Records { path: index.clone(), reason: e.to_string() })?;
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    let mut rows = Vec::new();
    for p in meta["points"].as_array().into_iter().flatten() {
        let folder = p["folder"].as_str().unwrap_or_default();
        let point_dir = dir.join(folder);
        let episodes = run_records::read_jsonl(&point_dir.join("episodes.jsonl"))?;
        let actions = RunConfig::from_file(&point_dir.join("config.yaml"))
            .map(|c| c.action_labels())
            .unwrap_or_default();
        let s = Summary::from_episodes(folder, &episodes, &actions, &[]);
        rows.push(PointRow {
            point: folder.to_string(),
            overrides: p["overrides"].as_str().unwrap_or_default().to_string(),
            overall: s.overall,
            greedy: s.greedy,
            last_quarter_reward: s.last_quarter_reward,
            final_policy_version: s.final_policy_version,
        });
    }
    let summary = SweepSummary { sweep: name, rows };
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| Error::Records { path: dir.join("summary.json"), reason: e.to_string() })?
        + "\n";
    std::fs::write(dir.join("summary.json"), json)
        .map_err(|e| Error::io(dir.join("summary.json"), e))?;
    let text = summary.text();
    std::fs::write(dir.join("report.txt"), &text)
        .map_err(|e| Error::io(dir.join("report.txt"), e))?;
    let names: Vec<String> = summary.rows.iter().map(|r| r.point.clone()).collect();
    crate::report::plots::bars(
        &dir.join("sweep.png"),
        &format!("Sweep `{}`: mean reward per point", summary.sweep),
        "mean reward",
        &names,
        &[
            ("all episodes".into(), summary.rows.iter().map(|r| r.overall.mean_reward).collect()),
            ("greedy episodes".into(), summary.rows.iter().map(|r| r.greedy.mean_reward).collect()),
            ("last quarter".into(), summary.rows.iter().map(|r| r.last_quarter_reward).collect()),
        ],
    )?;
    Ok((summary, text))
}

/// What a sweep left behind.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub failures: Vec<String>,
    pub text: Option<String>,
}

/// Runs every point of the sweep file `path`, `parallel` at a time (locally, or as SLURM jobs).
pub async fn run(
    path: &Path,
    runs: &Path,
    signals: Arc<AtomicUsize>,
    backend: crate::run::Backend,
) -> Result<SweepOutcome> {
    let (sweep, points) = SweepFile::load(path)?;
    crate::procs::locate("casrap-actor")?;
    crate::procs::locate("casrap-learner")?;
    let dir = crate::run::new_run_dir(runs, "sweep")?;
    let copy = dir.join("sweep.yaml");
    std::fs::copy(path, &copy).map_err(|e| Error::io(&copy, e))?;
    let index: Vec<serde_json::Value> =
        points.iter().enumerate().map(|(i, p)| serde_json::json!({"folder": format!("point-{}", i + 1), "overrides": p.label})).collect();
    let meta = serde_json::json!({"name": sweep.name, "file": path.display().to_string(), "points": index});
    std::fs::write(
        dir.join("sweep.json"),
        serde_json::to_string_pretty(&meta).unwrap_or_default() + "\n",
    )
    .map_err(|e| Error::io(dir.join("sweep.json"), e))?;
    println!(
        "sweep {} -> {} ({} points, {} at a time)",
        sweep.name,
        dir.display(),
        points.len(),
        sweep.parallel
    );
    let limit = Arc::new(tokio::sync::Semaphore::new(sweep.parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, p) in points.into_iter().enumerate() {
        let point_dir = dir.join(format!("point-{}", i + 1));
        std::fs::create_dir_all(&point_dir).map_err(|e| Error::io(&point_dir, e))?;
        let mut cfg = p.config;
        cfg.learner.dir = point_dir.join("learner").display().to_string();
        let (limit, signals, source) = (limit.clone(), signals.clone(), path.to_path_buf());
        let label = format!("point-{} ({})", i + 1, p.label);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if signals.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                return (label, Err(Error::process("sweep", "not started: the sweep was stopped")));
            }
            let out = match backend {
                crate::run::Backend::Local => {
                    crate::run::run_at(cfg, &source, point_dir, signals, Some(label.clone())).await
                }
                crate::run::Backend::Slurm => {
                    crate::slurm::run(cfg, &source, point_dir, signals).await
                }
            };
            (label, out)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((label, Ok(o))) => {
                for f in o.failures {
                    failures.push(format!("{label}: {f}"));
                }
                if o.interrupted {
                    failures.push(format!("{label}: interrupted"));
                }
            }
            Ok((label, Err(e))) => failures.push(format!("{label}: {e}")),
            Err(e) => failures.push(format!("a point's task failed: {e}")),
        }
    }
    let text = match report(&dir) {
        Ok((_, t)) => Some(t),
        Err(e) => {
            failures.push(format!("sweep report: {e}"));
            None
        }
    };
    Ok(SweepOutcome { dir, failures, text })
}
