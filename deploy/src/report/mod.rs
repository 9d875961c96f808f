//! Reports: `summary.json`, `report.txt` and the plots of a run, regenerated from its raw records
//! (`episodes.jsonl`, and the learner's `training.jsonl` for the loss plot) by `casrap report`.

pub mod buckets;
pub mod plots;
pub mod policy_tables;
pub mod summary;

use std::path::{Path, PathBuf};

use casrap_common::config::RunConfig;
use casrap_common::record::TrainingLine;

use crate::error::{Error, Result};
use crate::run_records;
use summary::Summary;

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub summary: PathBuf,
    pub report: PathBuf,
    pub plots: Vec<PathBuf>,
    pub text: String,
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The learner's training log lines (`learner/training.jsonl`), if the run has one.
pub fn training_log(run_dir: &Path) -> Result<Option<Vec<TrainingLine>>> {
    let path = run_dir.join("learner").join("training.jsonl");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<TrainingLine>(l).map_err(|e| Error::Records {
                path: path.clone(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Writes `summary.json`, `report.txt` and `plots/*.png` of the run in `run_dir` from its records:
/// a test run's `results.jsonl`, or a training run's `episodes.jsonl` (the action order and the
/// run's name then come from `config.yaml` when it is there).
pub fn write(run_dir: &Path) -> Result<Written> {
    if run_dir.join("results.jsonl").is_file() {
        return write_test(run_dir);
    }
    let episodes = run_records::read_jsonl(&run_dir.join("episodes.jsonl"))?;
    let cfg_path = run_dir.join("config.yaml");
    let (name, actions, classes) = if cfg_path.is_file() {
        let cfg = RunConfig::from_file(&cfg_path)?;
        let classes = cfg.budget.names().iter().map(|c| c.to_string()).collect();
        (cfg.name.clone(), cfg.action_labels(), classes)
    } else {
        (
            run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Vec::new(),
            Vec::new(),
        )
    };
    let summary = Summary::from_episodes(&name, &episodes, &actions, &classes);
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Records {
        path: run_dir.join("summary.json"),
        reason: e.to_string(),
    })? + "\n";
    let summary_path = run_dir.join("summary.json");
    write_file(&summary_path, &json)?;
    let text = summary.text();
    let report = run_dir.join("report.txt");
    write_file(&report, &text)?;
    let training = training_log(run_dir)?;
    let plots =
        plots::training_run(&run_dir.join("plots"), &episodes, &summary, training.as_deref())?;
    Ok(Written { summary: summary_path, report, plots, text })
}

fn write_test(run_dir: &Path) -> Result<Written> {
    let results = policy_tables::read(&run_dir.join("results.jsonl"))?;
    if results.is_empty() {
        return Err(Error::Records {
            path: run_dir.join("results.jsonl"),
            reason: "no prompts".into(),
        });
    }
    // The expected-value oracle needs the run's reward and budget classes (config.yaml, when the
    // folder has one; else the seed's reward).
    let cfg_path = run_dir.join("config.yaml");
    let (reward, budget) = if cfg_path.is_file() {
        let cfg = RunConfig::from_file(&cfg_path)?;
        (cfg.reward, cfg.budget)
    } else {
        (Default::default(), Default::default())
    };
    let summary = policy_tables::TestSummary::from_results(&results, &reward, &budget);
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Records {
        path: run_dir.join("summary.json"),
        reason: e.to_string(),
    })? + "\n";
    let summary_path = run_dir.join("summary.json");
    write_file(&summary_path, &json)?;
    let text = summary.text();
    let report = run_dir.join("report.txt");
    write_file(&report, &text)?;
    let plots = plots::test_run(&run_dir.join("plots"), &summary)?;
    Ok(Written { summary: summary_path, report, plots, text })
}

/// A fleet benchmark record (`casrap-learner bench --record`, `bench/fleet/*.json`): its table,
/// reprinted from the record, and the learner's memory curve drawn beside it as `<stem>.memory.png`.
pub fn fleet(record: &Path) -> Result<(String, PathBuf)> {
    let r = casrap_store::fleet::Record::load(record)
        .map_err(|e| Error::Records { path: record.into(), reason: format!("{e:#}") })?;
    let stem = record.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let png = record.with_file_name(format!("{stem}.memory.png"));
    let mib = |b: u64| b as f64 / 1048576.0;
    let rss: Vec<(f64, f64)> = r.memory.iter().map(|m| (m.t_s, mib(m.rss_bytes))).collect();
    let mut series = vec![plots::Series::new("learner RSS (MiB)", rss, plots::Mark::Line)];
    // Where every actor had connected: the memory the fleet itself holds from then on.
    if let Some(m) =
        r.memory.iter().find(|m| m.connected >= r.actors_connected && r.actors_connected > 0)
    {
        series.push(plots::Series::new(
            format!("all {} actors connected", r.actors_connected),
            vec![(m.t_s, mib(m.rss_bytes))],
            plots::Mark::Big,
        ));
    }
    let title = format!("Learner memory: {} actors, {:.0} s ({stem})", r.args.actors, r.elapsed_s);
    plots::xy_at(
        &png,
        &title,
        "seconds since start",
        "resident memory (MiB)",
        &series,
        plotters::prelude::SeriesLabelPosition::LowerRight,
    )?;
    Ok((r.table(), png))
}
