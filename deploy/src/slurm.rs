//! The SLURM backend of `casrap run --backend slurm`: the learner as one batch job, the actors as
//! job arrays, one per device kind (GPU tasks request `--gres=gpu:1`), on a filesystem shared by
//! the nodes.
//!
//! No host is written into anything: the learner's job listens on all interfaces on a free port
//! and writes `http://<its host>:<port>` to `learner.url` in the run folder; each actor task waits
//! for that file. Because the learner then listens beyond loopback, a bearer token is required:
//! when the run config names none, one is generated into the run folder (mode 600).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;

use crate::error::{Error, Result};
use crate::finish::Outcome;
use crate::finish::{finish_blocking, FinishOptions};
use crate::procs;

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn p(path: &Path) -> String {
    sh_quote(&path.display().to_string())
}

/// The learner's batch script.
pub fn learner_script(name: &str, learner_bin: &Path, dir: &Path) -> String {
    let cfg = dir.join("config.yaml");
    format!(
        r#"#!/bin/bash
#SBATCH --job-name=casrap-{name}-learner
#SBATCH --output={log}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
# The learner of run {name}: listens on a free port of this node and publishes its URL in
# learner.url for the actors; SIGTERM (scancel --full) stops it cleanly (final checkpoint).
set -u
rm -f {url}
{bin} serve --config {cfg} --listen 0.0.0.0:0 --dir {ldir} > {out} &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit $?' TERM INT
until grep -q '^listening on ' {out} 2>/dev/null; do
  kill -0 $pid 2>/dev/null || {{ echo "learner exited before listening" >&2; wait $pid; exit 1; }}
  sleep 0.2
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' {out} | head -1)
echo "http://$(hostname -f 2>/dev/null || hostname):$port" > {url}.tmp && mv {url}.tmp {url}
wait $pid
"#,
        log = dir.join("logs/learner.log").display(),
        bin = p(learner_bin),
        cfg = p(&cfg),
        ldir = p(&dir.join("learner")),
        out = p(&dir.join("learner.out")),
        url = p(&dir.join("learner.url")),
    )
}

/// The actors' job array scripts, one per device kind (`cuda` arrays request a GPU per task,
/// `cpu` arrays none), each task one actor with its run-wide id.
pub fn actors_scripts(
    name: &str,
    actor_bin: &Path,
    dir: &Path,
    cfg: &RunConfig,
    threads: usize,
) -> Vec<(String, String)> {
    let a = &cfg.actors;
    let mut kinds: Vec<(String, Vec<usize>)> = Vec::new();
    for k in 0..a.count {
        let kind = if a.device_of(k) == "cpu" { "cpu" } else { "cuda" };
        match kinds.iter_mut().find(|(n, _)| n == kind) {
            Some((_, v)) => v.push(k),
            None => kinds.push((kind.to_string(), vec![k])),
        }
    }
    kinds
        .into_iter()
        .map(|(kind, members)| {
            let gpu = kind == "cuda";
            let ids: Vec<String> = members.iter().map(|k| k.to_string()).collect();
            let episodes: Vec<String> = members.iter().map(|&k| a.episodes_of(k).to_string()).collect();
            // Under SLURM a GPU task sees its one GPU as cuda:0.
            let device = if gpu { "cuda:0" } else { "cpu" };
            let script = format!(
                r#"#!/bin/bash
#SBATCH --job-name=casrap-{name}-actors-{kind}
#SBATCH --output={logs}/actor-{kind}-%a.log
#SBATCH --array=0-{last}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task={threads}
{gres}# The {kind} actors of run {name}, one per task: wait for the learner's URL, then run the episodes.
set -u
ids=({ids})
episodes=({episodes})
i=$SLURM_ARRAY_TASK_ID
for _ in $(seq 600); do [ -s {url} ] && break; sleep 0.5; done
[ -s {url} ] || {{ echo "no learner URL in {url} after 300 s" >&2; exit 1; }}
exec {bin} run --learner "$(cat {url})" --config {cfg} --actor-id "actor-${{ids[$i]}}" \
  --episodes "${{episodes[$i]}}" --device {device} --threads {threads} \
  --session-file "{logs}/actor-${{ids[$i]}}.session"
"#,
                logs = dir.join("logs").display(),
                last = members.len().saturating_sub(1),
                gres = if gpu { "#SBATCH --gres=gpu:1\n" } else { "" },
                ids = ids.join(" "),
                episodes = episodes.join(" "),
                url = p(&dir.join("learner.url")),
                bin = p(actor_bin),
                cfg = p(&dir.join("config.yaml")),
            );
            (kind, script)
        })
        .collect()
}

fn run_cmd(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().map_err(|e| {
        Error::process(
            what,
            format!(
                "cannot run {:?}: {e} (is SLURM installed? SLURM_CONF set?)",
                cmd.get_program()
            ),
        )
    })?;
    if !out.status.success() {
        return Err(Error::process(
            what,
            format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn in_queue(job: &str) -> Result<bool> {
    Ok(!run_cmd(Command::new("squeue").args(["-h", "-j", job, "-o", "%i"]), "squeue")?.is_empty())
}

/// Submits the run in `dir` (its config already resolved) and waits for it; then exports the
/// records and writes the report as a local run does.
pub async fn run(
    mut cfg: RunConfig,
    source: &Path,
    dir: PathBuf,
    signals: Arc<AtomicUsize>,
) -> Result<Outcome> {
    let started = Instant::now();
    // Absolute paths in the scripts: jobs may start in another working directory.
    let dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
    cfg.learner.dir = dir.join("learner").display().to_string();
    prepare(&mut cfg, source, &dir)?;
    let jobs = submit(&cfg, &dir)?;
    println!(
        "submitted: learner job {}, actor job arrays {} ({} tasks); logs in {}",
        jobs.learner,
        jobs.actors.join(", "),
        cfg.actors.count,
        dir.join("logs").display()
    );
    let (mut failures, interrupted) = supervise(&jobs, &dir, &signals, started).await?;
    failures.extend(stop_learner(&jobs.learner).await?);
    let want =
        (0..cfg.actors.count).map(|k| (format!("actor-{k}"), cfg.actors.episodes_of(k))).collect();
    let check_complete = !interrupted && failures.is_empty();
    let f = finish_blocking(FinishOptions {
        dir: dir.clone(),
        learner_dir: dir.join("learner"),
        replay_capacity: cfg.learner.replay_capacity,
        want,
        check_complete,
    })
    .await?;
    failures.extend(f.failures);
    Ok(Outcome {
        dir,
        episodes: f.episodes,
        expected: cfg.actors.episodes,
        failures,
        interrupted,
        policy_version: f.policy_version,
        seconds: started.elapsed().as_secs_f64(),
        report: f.report,
    })
}

/// The run folder's `logs/`, a token for the run when the config names none (written with mode
/// 0600, and `cfg` pointed at it), and the resolved `config.yaml` the jobs read.
fn prepare(cfg: &mut RunConfig, source: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| Error::io(dir.join("logs"), e))?;
    if cfg.security.token()?.is_none() {
        let token_path = dir.join("token");
        let token = casrap_common::config::SecurityConfig::random_token();
        std::fs::write(&token_path, format!("{token}\n")).map_err(|e| Error::io(&token_path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(&token_path, e))?;
        }
        cfg.security.token_file = Some(token_path.display().to_string());
    }
    let cfg_path = dir.join("config.yaml");
    std::fs::write(
        &cfg_path,
        format!("# resolved from {} (SLURM backend)\n{}", source.display(), cfg.to_yaml()?),
    )
    .map_err(|e| Error::io(&cfg_path, e))
}

/// A submitted run's job ids.
struct Jobs {
    learner: String,
    /// One job array per device kind.
    actors: Vec<String>,
}

/// Writes the batch scripts and submits them: the learner, then one actor array per device kind
/// (the learner is cancelled if an array cannot be submitted).
fn submit(cfg: &RunConfig, dir: &Path) -> Result<Jobs> {
    let actor_bin = procs::locate("casrap-actor")?;
    let learner_bin = procs::locate("casrap-learner")?;
    // One thread (and `--cpus-per-task=1`) per task unless the config says: a local run divides
    // this machine's cores among its actors, but on a cluster the scheduler hands out the cores.
    let threads = if cfg.actors.threads > 0 { cfg.actors.threads } else { 1 };
    let ls = dir.join("learner.sbatch");
    std::fs::write(&ls, learner_script(&cfg.name, &learner_bin, dir))
        .map_err(|e| Error::io(&ls, e))?;
    let job_id = |out: String| out.split(';').next().unwrap_or_default().to_string();
    let learner =
        job_id(run_cmd(Command::new("sbatch").arg("--parsable").arg(&ls), "sbatch (learner)")?);
    let mut actors = Vec::new();
    for (kind, script) in actors_scripts(&cfg.name, &actor_bin, dir, cfg, threads) {
        let path = dir.join(format!("actors-{kind}.sbatch"));
        let submitted =
            std::fs::write(&path, script).map_err(|e| Error::io(&path, e)).and_then(|()| {
                run_cmd(Command::new("sbatch").arg("--parsable").arg(&path), "sbatch (actors)")
            });
        match submitted {
            Ok(j) => actors.push(job_id(j)),
            Err(e) => {
                let _ = Command::new("scancel").arg(&learner).args(&actors).status();
                return Err(e);
            }
        }
    }
    Ok(Jobs { learner, actors })
}

/// Waits until no actor job is queued or running, or the learner job ends first (a failure; the
/// actors are cancelled). A signal cancels the actors with SIGTERM (each abandons its episode).
/// Returns the failures and whether the run was interrupted.
async fn supervise(
    jobs: &Jobs,
    dir: &Path,
    signals: &AtomicUsize,
    started: Instant,
) -> Result<(Vec<String>, bool)> {
    let mut interrupted = false;
    let mut last = Instant::now();
    loop {
        let mut running = Vec::new();
        for j in &jobs.actors {
            if in_queue(j)? {
                running.push(j.clone());
            }
        }
        if running.is_empty() {
            return Ok((Vec::new(), interrupted));
        }
        if signals.load(Ordering::Relaxed) > 0 && !interrupted {
            interrupted = true;
            println!("stopping: cancelling the actors, then the learner");
            let _ =
                Command::new("scancel").args(["--signal=TERM", "--full"]).args(&running).status();
        }
        if !in_queue(&jobs.learner)? {
            let _ = Command::new("scancel").args(&running).status();
            let failure = format!(
                "the learner job {} ended before the actors; see {}",
                jobs.learner,
                dir.join("logs/learner.log").display()
            );
            return Ok((vec![failure], interrupted));
        }
        if last.elapsed() >= Duration::from_secs(5) {
            println!(
                "[{:6.1} s] actor jobs {} running",
                started.elapsed().as_secs_f64(),
                running.join(", ")
            );
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops the learner job: SIGTERM to its batch script, which forwards it (the final checkpoint),
/// and a plain cancel after 60 s (then a failure).
async fn stop_learner(job: &str) -> Result<Option<String>> {
    let _ = Command::new("scancel").args(["--signal=TERM", "--full", job]).status();
    let t = Instant::now();
    while in_queue(job)? {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = Command::new("scancel").arg(job).status();
            return Ok(Some(format!(
                "the learner job {job} did not stop within 60 s of SIGTERM; cancelled"
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(None)
}
