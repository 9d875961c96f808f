//! `casrap run deploy/<file>.yaml`: a learner and `actors.count` actor processes on this machine.
//!
//! The run gets a new folder `runs/train-N/` (never reused) holding the resolved `config.yaml`,
//! `learner/` (replay store and checkpoints), `logs/` (one file per process) and, at the end,
//! `episodes.jsonl` exported from the replay store. Progress comes from the learner's `Status`.
//! Ctrl-C (or SIGTERM) stops the actors (each abandons its current episode), then the learner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_proto::v1;

use crate::error::{Error, Result};
use crate::finish::{blocking, finish_blocking, FinishOptions, Outcome};
use crate::procs::{self, ActorSpec, Proc};

/// Where a run's processes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// Processes on this machine.
    #[default]
    Local,
    /// sbatch: the learner as a job, the actors as a job array (see `slurm.rs`).
    Slurm,
}

/// Command-line overrides of the run config.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub episodes: Option<u64>,
    pub actors: Option<usize>,
    pub threads: Option<usize>,
    pub seed: Option<u64>,
}

/// Makes `base/<kind>-N` for the first N (from 1) not taken; never reuses one.
pub fn new_run_dir(base: &Path, kind: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(base).map_err(|e| Error::io(base, e))?;
    for n in 1..100_000 {
        let dir = base.join(format!("{kind}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::process("run", format!("{}: no free run number", base.display())))
}

/// The config with `o` applied and the learner's folder inside the run.
pub fn resolve(mut cfg: RunConfig, o: &Overrides, dir: &Path, source: &Path) -> Result<RunConfig> {
    if let Some(n) = o.episodes {
        cfg.actors.episodes = n;
    }
    if let Some(n) = o.actors {
        cfg.actors.count = n;
    }
    if let Some(n) = o.threads {
        cfg.actors.threads = n;
    }
    if let Some(s) = o.seed {
        cfg.actors.seed = s;
        cfg.trainer.seed = s;
    }
    cfg.learner.dir = dir.join("learner").display().to_string();
    // Re-check everything an override could have broken (the message names the field).
    let yaml = cfg.to_yaml()?;
    Ok(RunConfig::from_yaml(&yaml, source)?)
}

async fn status(conn: &casrap_proto::connect::Connection) -> Option<v1::LearnerStatus> {
    let mut c = conn.client().await.ok()?;
    c.status(v1::StatusRequest::default()).await.ok().map(tonic::Response::into_inner)
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{status}"),
    }
}

/// Progress of a run: a bar (episodes/s, mean reward, policy version) on a terminal, plain lines
/// every few seconds otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: Option<String>,
    started: Instant,
    last_print: Instant,
    last_line: String,
    total: u64,
}

impl Progress {
    fn new(total: u64, label: Option<String>) -> Self {
        use std::io::IsTerminal;
        let bar = (label.is_none() && std::io::stdout().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:32}] {pos}/{len} episodes · {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        });
        let started = Instant::now();
        Self {
            bar,
            label,
            started,
            last_print: started - Duration::from_secs(60),
            last_line: String::new(),
            total,
        }
    }

    fn update(&mut self, st: &v1::LearnerStatus, running: usize, actors: usize) {
        let rate = st.transitions_stored as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let reward = if st.recent_rewards > 0 {
            format!("{:+.4}", st.recent_mean_reward)
        } else {
            "-".into()
        };
        let msg = format!("{rate:.1} ep/s · mean reward (last {}) {reward} · policy v{} · updates {} · actors {running}/{actors}", st.recent_rewards, st.policy_version, st.updates);
        match &self.bar {
            Some(b) => {
                b.set_position(st.transitions_stored.min(self.total));
                b.set_message(msg);
            }
            None => {
                let line = format!("episodes {}/{} · {msg}", st.transitions_stored, self.total);
                if line != self.last_line && self.last_print.elapsed() >= Duration::from_secs(2) {
                    println!(
                        "{}[{:6.1} s] {line}",
                        self.prefix(),
                        self.started.elapsed().as_secs_f64()
                    );
                    self.last_line = line;
                    self.last_print = Instant::now();
                }
            }
        }
    }

    fn prefix(&self) -> String {
        self.label.as_ref().map_or(String::new(), |l| format!("{l}: "))
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{}{line}", self.prefix()),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// How long actors get to finish after a stop before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(60);

/// Runs `config` to completion, printing progress to stdout. `signals` counts stop requests: at
/// the first the actors are asked to stop (and killed after [`STOP_GRACE`]), at the second every
/// process of the run is killed at once.
pub async fn run(
    config: &Path,
    o: &Overrides,
    runs: &Path,
    signals: Arc<AtomicUsize>,
    backend: Backend,
) -> Result<Outcome> {
    let cfg = RunConfig::from_file(config)?;
    casrap_common::config::check_run_prompts(&cfg)
        .map_err(|e| Error::process("prompts", e.to_string()))?;
    procs::locate("casrap-actor")?;
    procs::locate("casrap-learner")?;
    let dir = new_run_dir(runs, "train")?;
    let cfg = resolve(cfg, o, &dir, config)?;
    match backend {
        Backend::Local => run_at(cfg, config, dir, signals, None).await,
        Backend::Slurm => crate::slurm::run(cfg, config, dir, signals).await,
    }
}

/// The run's processes once started: the learner, the actors (each with its exit status once it
/// has one) and the episodes each actor was asked for.
struct Fleet {
    learner: Proc,
    url: String,
    actors: Vec<(Proc, Option<ExitStatus>)>,
    want: BTreeMap<String, u64>,
    threads: usize,
}

impl Fleet {
    /// The learner (its wait for the listening port off the runtime's threads), then every actor;
    /// if an actor cannot start, what was started is stopped.
    async fn start(cfg: &RunConfig, cfg_path: &Path, logs: &Path) -> Result<Self> {
        let actor_bin = procs::locate("casrap-actor")?;
        let learner_bin = procs::locate("casrap-learner")?;
        let (config, store) = (cfg_path.to_path_buf(), PathBuf::from(&cfg.learner.dir));
        let log = logs.join("learner.log");
        let (learner, addr) = blocking("starting the learner", move || {
            procs::spawn_learner(
                &learner_bin,
                &config,
                "127.0.0.1:0",
                &store,
                &log,
                Duration::from_secs(120),
            )
        })
        .await?;
        let scheme = if cfg.security.tls.is_some() { "https" } else { "http" };
        let a = &cfg.actors;
        let mut fleet = Fleet {
            learner,
            url: format!("{scheme}://{addr}"),
            actors: Vec::new(),
            want: BTreeMap::new(),
            threads: actor_threads(a),
        };
        for k in 0..a.count {
            let spec = ActorSpec {
                id: format!("actor-{k}"),
                learner: fleet.url.clone(),
                config: cfg_path.to_path_buf(),
                episodes: a.episodes_of(k),
                device: a.device_of(k).to_string(),
                threads: fleet.threads,
                log: logs.join(format!("actor-{k}.log")),
            };
            fleet.want.insert(spec.id.clone(), spec.episodes);
            match procs::spawn_actor(&actor_bin, &spec) {
                Ok(p) => fleet.actors.push((p, None)),
                Err(e) => {
                    fleet.abandon();
                    return Err(e);
                }
            }
        }
        Ok(fleet)
    }

    /// Stops every process, ignoring how they end (the run has already failed).
    fn abandon(&mut self) {
        for (p, _) in &mut self.actors {
            let _ = p.stop(Duration::from_secs(10));
        }
        let _ = self.learner.stop(Duration::from_secs(30));
    }

    fn running(&self) -> usize {
        self.actors.iter().filter(|(_, s)| s.is_none()).count()
    }

    /// Signals every actor still running.
    fn signal_actors(&self, signal: &str) {
        for (p, s) in &self.actors {
            if s.is_none() {
                let _ = p.signal(signal);
            }
        }
    }

    /// Records the exit of every actor that has ended since the last look; a failure (unless the
    /// run is stopping) is reported and added to `failures`.
    fn reap_actors(
        &mut self,
        interrupted: bool,
        failures: &mut Vec<String>,
        progress: &mut Progress,
    ) -> Result<()> {
        for (p, s) in &mut self.actors {
            if s.is_some() {
                continue;
            }
            let Some(status) = p.try_wait()? else { continue };
            *s = Some(status);
            if !status.success() && !interrupted {
                let why = describe(status);
                failures.push(format!("{} failed ({why}): {}", p.name, p.failure()));
                progress.say(&format!("{} failed ({why}); see {}", p.name, p.log.display()));
            }
        }
        Ok(())
    }

    /// Ends every actor still running: `stop` (TERM, then KILL after `grace`) or, without a
    /// grace, KILL now.
    fn end_actors(&mut self, grace: Option<Duration>) -> Result<()> {
        for (p, s) in &mut self.actors {
            if s.is_none() {
                *s = Some(match grace {
                    Some(g) => p.stop(g)?,
                    None => p.kill()?,
                });
            }
        }
        Ok(())
    }
}

/// How supervision ended.
struct Supervised {
    failures: Vec<String>,
    interrupted: bool,
    /// The newest policy version the learner reported.
    version: u64,
    /// The learner's exit, when it ended during supervision (early, or killed).
    learner_exit: Option<ExitStatus>,
}

/// Watches the run until every actor has ended, the learner exits early, or a signal stops it:
/// one signal asks the actors to stop (killed after [`STOP_GRACE`]), a second kills everything.
async fn supervise(
    fleet: &mut Fleet,
    conn: &casrap_proto::connect::Connection,
    signals: &AtomicUsize,
    progress: &mut Progress,
) -> Result<Supervised> {
    let mut out =
        Supervised { failures: Vec::new(), interrupted: false, version: 0, learner_exit: None };
    let mut kill_at: Option<Instant> = None;
    loop {
        let n = signals.load(Ordering::Relaxed);
        if n >= 1 && !out.interrupted {
            out.interrupted = true;
            kill_at = Some(Instant::now() + STOP_GRACE);
            progress.say("stopping: actors finish or abandon their episode, then the learner stops (again to kill everything now)");
            fleet.signal_actors("TERM");
        }
        if n >= 2 || kill_at.is_some_and(|t| Instant::now() >= t) {
            progress.say("killing the run's processes");
            fleet.end_actors(None)?;
            out.learner_exit = Some(fleet.learner.kill()?);
            return Ok(out);
        }
        fleet.reap_actors(out.interrupted, &mut out.failures, progress)?;
        if let Some(status) = fleet.learner.try_wait()? {
            out.learner_exit = Some(status);
            out.failures.push(format!(
                "learner exited early ({}): {}",
                describe(status),
                fleet.learner.failure()
            ));
            fleet.end_actors(Some(Duration::from_secs(15)))?;
            return Ok(out);
        }
        if let Some(st) = status(conn).await {
            out.version = st.policy_version;
            progress.update(&st, fleet.running(), fleet.actors.len());
        }
        if fleet.running() == 0 {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the resolved `cfg` in the existing folder `dir` (see [`run`]); `label` prefixes progress
/// lines (sweeps run several at once) and turns the terminal bar off.
pub async fn run_at(
    cfg: RunConfig,
    config: &Path,
    dir: PathBuf,
    signals: Arc<AtomicUsize>,
    label: Option<String>,
) -> Result<Outcome> {
    let started = Instant::now();
    let cfg_path = dir.join("config.yaml");
    std::fs::write(&cfg_path, format!("# resolved from {}\n{}", config.display(), cfg.to_yaml()?))
        .map_err(|e| Error::io(&cfg_path, e))?;
    let logs = dir.join("logs");
    println!("run {} -> {}", cfg.name, dir.display());

    let mut fleet = Fleet::start(&cfg, &cfg_path, &logs).await?;
    let conn = match casrap_proto::connect::Connection::new(&fleet.url, &cfg.security) {
        Ok(c) => c,
        Err(e) => {
            fleet.abandon();
            return Err(Error::process("run", e.to_string()));
        }
    };
    let a = &cfg.actors;
    println!(
        "learner {} (pid {}), {} actors ({} threads each), {} episodes; logs in {}",
        fleet.url,
        fleet.learner.pid(),
        fleet.actors.len(),
        fleet.threads,
        a.episodes,
        logs.display()
    );

    let mut progress = Progress::new(a.episodes, label);
    let mut s = supervise(&mut fleet, &conn, &signals, &mut progress).await?;
    if let Some(st) = status(&conn).await {
        s.version = st.policy_version;
    }
    progress.finish();
    let Fleet { mut learner, want, .. } = fleet;
    if s.learner_exit.is_none() {
        // Up to 30 s for its final checkpoint: off the runtime's threads.
        let (stopped, why) = blocking("stopping the learner", move || {
            let st = learner.stop(Duration::from_secs(30))?;
            Ok((st, learner.failure()))
        })
        .await?;
        if !stopped.success() {
            s.failures.push(format!("learner stopped with {}: {why}", describe(stopped)));
        }
    }
    let check_complete = !s.interrupted && s.failures.is_empty();
    let f = finish_blocking(FinishOptions {
        dir: dir.clone(),
        learner_dir: PathBuf::from(&cfg.learner.dir),
        replay_capacity: cfg.learner.replay_capacity,
        want,
        check_complete,
    })
    .await?;
    s.failures.extend(f.failures);
    Ok(Outcome {
        report: f.report,
        dir,
        episodes: f.episodes,
        expected: a.episodes,
        failures: s.failures,
        interrupted: s.interrupted,
        policy_version: s.version.max(f.policy_version),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Threads each actor process gets: `actors.threads`, else this machine's cores divided among the
/// run's actors. Test mode gives its measuring processes the same.
pub fn actor_threads(a: &casrap_common::config::ActorsConfig) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if a.threads > 0 {
        a.threads
    } else {
        (cores / a.count.max(1)).max(1)
    }
}
