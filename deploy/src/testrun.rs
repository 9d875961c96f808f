//! `casrap test --checkpoint …`: the greedy policy of a checkpoint against always-`none`, every
//! fixed action, uniform random and the oracle, on the same held-out prompts in one run
//! (`runs/test-N/`: config.yaml, policy.bin, results.jsonl, summary.json, report.txt, plots/,
//! logs/). The measuring runs in `actors.count` actor processes with the training's thread
//! budget each (`casrap-actor test`, one shard of the prompts each), so a speedup here is
//! measured under the conditions it was learned under.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_store::checkpoint;

use crate::error::{Error, Result};
use crate::procs::{self, Proc, TesterSpec};
use crate::run::new_run_dir;

/// What to test.
#[derive(Debug, Clone)]
pub struct TestArgs {
    /// A run folder, its `learner/checkpoints` folder, or one `ckpt-N` folder.
    pub checkpoint: PathBuf,
    /// The run config (default: the run folder's `config.yaml`).
    pub config: Option<PathBuf>,
    /// Held-out prompts (0: the whole test split).
    pub prompts: usize,
    pub device: String,
    /// Threads per measuring process (0: as the training run's actors, see [`crate::run::actor_threads`]).
    pub threads: usize,
    /// Measuring processes (0: `actors.count`, as in training).
    pub processes: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// Runs test mode and writes its folder; returns the folder and the report's text.
pub fn run(a: &TestArgs) -> Result<(PathBuf, String)> {
    let (run_dir, ckpt) = checkpoint::locate(&a.checkpoint)?;
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
    casrap_common::config::check_run_prompts(&cfg)
        .map_err(|e| Error::process("prompts", e.to_string()))?;
    let (policy, state) = checkpoint::read_policy(&ckpt, Some(&cfg.qnet_dims()))?;
    let dir = new_run_dir(&a.out, "test")?;
    let cfg_out = dir.join("config.yaml");
    std::fs::write(
        &cfg_out,
        format!("# test of {} (config {})\n{}", ckpt.display(), cfg_path.display(), cfg.to_yaml()?),
    )
    .map_err(|e| Error::io(&cfg_out, e))?;
    println!("test of {} ({} updates) -> {}", ckpt.display(), state.updates, dir.display());
    let policy_path = dir.join("policy.bin");
    std::fs::write(&policy_path, policy.encode()).map_err(|e| Error::io(&policy_path, e))?;
    let shards = if a.processes > 0 { a.processes } else { cfg.actors.count.max(1) };
    let threads = if a.threads > 0 { a.threads } else { crate::run::actor_threads(&cfg.actors) };
    let bin = procs::locate("casrap-actor")?;
    let specs: Vec<TesterSpec> = (0..shards)
        .map(|k| TesterSpec {
            config: cfg_out.clone(),
            policy: policy_path.clone(),
            prompts: a.prompts,
            shard: k,
            shards,
            device: a.device.clone(),
            threads,
            seed: a.seed,
            out: dir.join(format!("results-{k}.jsonl")),
            log: dir.join(format!("logs/tester-{k}.log")),
        })
        .collect();
    println!(
        "{shards} measuring processes ({threads} threads each); logs in {}",
        dir.join("logs").display()
    );
    let mut procs = Vec::with_capacity(shards);
    for spec in &specs {
        procs.push(procs::spawn_tester(&bin, spec)?);
    }
    supervise(&mut procs, &specs)?;
    let results = merge(&specs, &dir.join("results.jsonl"))?;
    println!("{results} prompts measured");
    let w = crate::report::write(&dir)?;
    Ok((dir, w.text))
}

/// Waits for every measuring process, printing progress; on the first failure stops the rest and
/// returns its reason.
fn supervise(procs: &mut [Proc], specs: &[TesterSpec]) -> Result<()> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut running: Vec<bool> = vec![true; procs.len()];
    while running.iter().any(|&r| r) {
        for k in 0..procs.len() {
            if !running[k] {
                continue;
            }
            if let Some(status) = procs[k].wait_timeout(Duration::from_millis(200))? {
                running[k] = false;
                if !status.success() {
                    let (name, reason) = (procs[k].name.clone(), procs[k].failure());
                    for (q, r) in procs.iter_mut().zip(&running) {
                        if *r {
                            let _ = q.stop(Duration::from_secs(10));
                        }
                    }
                    return Err(Error::process(&name, format!("{status}: {reason}")));
                }
            }
        }
        if last_print.elapsed() >= Duration::from_secs(10) || !running.iter().any(|&r| r) {
            last_print = Instant::now();
            let done: usize = specs.iter().map(|s| count_lines(&s.out)).sum();
            println!("[{:6.1} s] prompts {done} measured", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// Merges the shards' results into `out` in prompt order and removes the shard files; returns
/// the number of prompts.
fn merge(specs: &[TesterSpec], out: &Path) -> Result<usize> {
    let mut all: Vec<(usize, String)> = Vec::new();
    for s in specs {
        let text = std::fs::read_to_string(&s.out).map_err(|e| Error::io(&s.out, e))?;
        for (n, line) in text.lines().enumerate() {
            let r: casrap_common::record::PromptResult =
                serde_json::from_str(line).map_err(|e| Error::Records {
                    path: s.out.clone(),
                    reason: format!("line {}: {e}", n + 1),
                })?;
            all.push((r.index, line.to_string()));
        }
    }
    all.sort_by_key(|(i, _)| *i);
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(out).map_err(|e| Error::io(out, e))?);
    for (_, line) in &all {
        writeln!(file, "{line}").map_err(|e| Error::io(out, e))?;
    }
    file.flush().map_err(|e| Error::io(out, e))?;
    for s in specs {
        std::fs::remove_file(&s.out).map_err(|e| Error::io(&s.out, e))?;
    }
    Ok(all.len())
}
