//! `casrap test --checkpoint …`: the greedy policy of a checkpoint against always-`none`, every
//! fixed action, uniform random and the oracle, on the same held-out prompts in one run
//! (`runs/test-N/`: config.yaml, results.jsonl, summary.json, report.txt, plots/).

use std::io::Write;
use std::path::{Path, PathBuf};

use casrap_common::config::RunConfig;
use casrap_learner::trainer::Trainer;

use crate::error::{Error, Result};
use crate::run::new_run_dir;

/// What to test.
#[derive(Debug, Clone)]
pub struct TestArgs {
    /// A run folder, its `learner/checkpoints` folder, or one `ckpt-N` folder.
    pub checkpoint: PathBuf,
    /// The run config (default: the run folder's `config.yaml`).
    pub config: Option<PathBuf>,
    pub prompts: usize,
    pub device: String,
    pub threads: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// The checkpoint folder (`ckpt-N`) and the run folder it belongs to, if any.
fn locate(path: &Path) -> Result<(Option<PathBuf>, PathBuf)> {
    let is_ckpt = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-"))
            && p.join("state.json").is_file()
    };
    if is_ckpt(path) {
        let run =
            path.parent().and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf);
        return Ok((run, path.to_path_buf()));
    }
    let (run, dir) = if path.join("learner/checkpoints").is_dir() {
        (Some(path.to_path_buf()), path.join("learner/checkpoints"))
    } else {
        (path.parent().and_then(Path::parent).map(Path::to_path_buf), path.to_path_buf())
    };
    let newest = casrap_learner::trainer::list_checkpoints(&dir).pop();
    match newest {
        Some(c) => Ok((run, c)),
        None => Err(Error::Records {
            path: path.into(),
            reason:
                "no checkpoint here (a run folder, its learner/checkpoints, or a ckpt-N folder)"
                    .into(),
        }),
    }
}

/// The greedy policy (online Q-network) of a checkpoint found from `path` (see [`TestArgs::checkpoint`]).
pub fn load_policy(path: &Path, cfg: &RunConfig) -> Result<casrap_common::qnet::QNet> {
    let (_, ckpt) = locate(path)?;
    let trainer =
        Trainer::load_checkpoint(&ckpt, &cfg.trainer, cfg.state_dim(), cfg.action_labels().len())?;
    casrap_common::qnet::QNet::decode(&trainer.online().encode(), None)
        .map_err(|e| Error::Records { path: ckpt, reason: e.to_string() })
}

/// Runs test mode and writes its folder; returns the folder and the report's text.
pub fn run(a: &TestArgs) -> Result<(PathBuf, String)> {
    let (run_dir, ckpt) = locate(&a.checkpoint)?;
    let cfg_path = match (&a.config, &run_dir) {
        (Some(c), _) => c.clone(),
        (None, Some(r)) if r.join("config.yaml").is_file() => r.join("config.yaml"),
        _ => {
            return Err(Error::Records {
                path: a.checkpoint.clone(),
                reason: "no config.yaml beside the checkpoint; pass --config".into(),
            })
        }
    };
    let cfg = RunConfig::from_file(&cfg_path)?;
    let trainer =
        Trainer::load_checkpoint(&ckpt, &cfg.trainer, cfg.state_dim(), cfg.action_labels().len())?;
    let policy = casrap_common::qnet::QNet::decode(&trainer.online().encode(), None)
        .map_err(|e| Error::Records { path: ckpt.clone(), reason: e.to_string() })?;
    let dir = new_run_dir(&a.out, "test")?;
    let cfg_out = dir.join("config.yaml");
    std::fs::write(
        &cfg_out,
        format!("# test of {} (config {})\n{}", ckpt.display(), cfg_path.display(), cfg.to_yaml()?),
    )
    .map_err(|e| Error::io(&cfg_out, e))?;
    println!("test of {} ({} updates) -> {}", ckpt.display(), trainer.updates, dir.display());
    let results_path = dir.join("results.jsonl");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&results_path).map_err(|e| Error::io(&results_path, e))?,
    );
    let options = casrap_actor::testmode::TestOptions {
        config: cfg.clone(),
        policy,
        prompts: a.prompts,
        device: a.device.clone(),
        threads: a.threads,
        seed: a.seed,
    };
    let started = std::time::Instant::now();
    let mut write_err = None;
    casrap_actor::testmode::run(&options, |i, n, r| {
        let line = serde_json::to_string(r).unwrap_or_default();
        if let Err(e) = writeln!(file, "{line}") {
            write_err.get_or_insert(e);
        }
        if i % 8 == 0 || i == n {
            println!("[{:6.1} s] prompts {i}/{n}", started.elapsed().as_secs_f64());
        }
    })
    .map_err(|e| Error::process("test", e.to_string()))?;
    if let Some(e) = write_err {
        return Err(Error::io(&results_path, e));
    }
    file.flush().map_err(|e| Error::io(&results_path, e))?;
    drop(file);
    let w = crate::report::write(&dir)?;
    Ok((dir, w.text))
}
