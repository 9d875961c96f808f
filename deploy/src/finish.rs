//! The end of a run, the same whichever backend ran it: export the learner's store to
//! `episodes.jsonl`, check that every actor's episodes are there exactly once, and write the
//! report. This is blocking work (sled, plotting), so the async orchestrators call
//! [`finish_blocking`], which runs it on tokio's blocking pool: concurrent sweep points never
//! stall each other's runtime threads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::run_records;

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub dir: PathBuf,
    pub episodes: usize,
    pub expected: u64,
    /// Why the run failed, one line per failing part (empty: success).
    pub failures: Vec<String>,
    pub interrupted: bool,
    pub policy_version: u64,
    pub seconds: f64,
    /// The report's text, when one was written.
    pub report: Option<String>,
}

/// What the end of a run found.
#[derive(Debug)]
pub struct Finished {
    pub episodes: usize,
    /// The newest policy version any episode ran with.
    pub policy_version: u64,
    /// The report's text, when one was written.
    pub report: Option<String>,
    /// What went wrong here, one line each (appended to the run's failures).
    pub failures: Vec<String>,
}

/// What to finish.
#[derive(Debug, Clone)]
pub struct FinishOptions {
    /// The run folder (`episodes.jsonl`, the report and `logs/` are here).
    pub dir: PathBuf,
    /// The learner folder whose `replay/` holds the records.
    pub learner_dir: PathBuf,
    pub replay_capacity: u64,
    /// Episodes each actor was asked for.
    pub want: BTreeMap<String, u64>,
    /// Check completeness (not after an interruption or a failure, which explain the gap).
    pub check_complete: bool,
}

/// Exports, checks and reports (see the module doc); blocking.
pub fn finish(o: &FinishOptions) -> Result<Finished> {
    // The store may still be held for a moment by the exiting learner (Replay::open retries).
    let (episodes, unreadable) = run_records::read_store(&o.learner_dir, o.replay_capacity)?;
    run_records::write_jsonl(&o.dir.join("episodes.jsonl"), &episodes)?;
    let mut failures: Vec<String> = unreadable
        .iter()
        .map(|u| format!("unreadable episode record, left out of episodes.jsonl: {u}"))
        .collect();
    if o.check_complete {
        if let Err(reason) = run_records::check_complete(&episodes, &o.want) {
            failures.push(format!(
                "records incomplete: {reason} (see the actor logs in {})",
                o.dir.join("logs").display()
            ));
        }
    }
    let report = if episodes.is_empty() {
        None
    } else {
        match crate::report::write(&o.dir) {
            Ok(w) => Some(w.text),
            Err(e) => {
                failures.push(format!("report: {e}"));
                None
            }
        }
    };
    Ok(Finished {
        episodes: episodes.len(),
        policy_version: episodes.iter().map(|e| e.policy_version).max().unwrap_or(0),
        report,
        failures,
    })
}

/// [`finish`] on tokio's blocking pool.
pub async fn finish_blocking(o: FinishOptions) -> Result<Finished> {
    blocking("finishing the run", move || finish(&o)).await
}

/// Runs `f` (a process wait, say) on tokio's blocking pool; `what` names it if the task dies.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::process(what, e.to_string()))?
}
