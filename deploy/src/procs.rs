//! The run's processes: finding the binaries, starting the learner (and learning its address from
//! its `listening on ADDR` line) and the actors, signalling and stopping them, reading their logs.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The path of `name` (`casrap-actor`, `casrap-learner`): `$CASRAP_ACTOR_BIN` /
/// `$CASRAP_LEARNER_BIN` when set, else beside the running executable (or one folder up, where
/// test binaries live in `target/<profile>/deps`).
pub fn locate(name: &str) -> Result<PathBuf> {
    let env = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(p) = std::env::var_os(&env) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    let mut looked = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(d.display().to_string());
        dir = d.parent();
    }
    Err(Error::Binary { name: name.into(), looked: looked.join(", "), env })
}

/// Puts the child in a process group of its own, so a Ctrl-C at the terminal reaches only the
/// orchestrator, which then stops the actors first and the learner last.
///
/// The child also learns the orchestrator's pid ([`casrap_common::signals::PARENT_ENV`]), so it
/// shuts itself down if the orchestrator dies without stopping it (SIGKILL, a crash).
fn detach(cmd: &mut Command) {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    cmd.env(casrap_common::signals::PARENT_ENV, std::process::id().to_string());
}

/// A child process with its log file.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let file = open_log(log)?;
        let err = file.try_clone().map_err(|e| Error::io(log, e))?;
        detach(&mut cmd);
        let child = cmd.stdin(Stdio::null()).stdout(file).stderr(err).spawn().map_err(|e| {
            Error::process(name, format!("cannot start {:?}: {e}", cmd.get_program()))
        })?;
        Ok(Self { name: name.into(), child, log: log.into() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) through the shell's `kill`.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -s {sig} {}", self.pid())])
            .stderr(Stdio::null())
            .status()
            .map_err(|e| Error::process(&self.name, format!("cannot send {sig}: {e}")))?;
        if !status.success() {
            // Already gone: not an error.
            tracing::debug!(process = %self.name, sig, "kill found no process");
        }
        Ok(())
    }

    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().map_err(|e| Error::process(&self.name, e.to_string()))
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL now, and reap it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.try_wait()? {
            return Ok(s);
        }
        self.child.kill().map_err(|e| Error::process(&self.name, e.to_string()))?;
        self.child.wait().map_err(|e| Error::process(&self.name, e.to_string()))
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(s) = self.try_wait()? {
            return Ok(s);
        }
        self.signal("TERM")?;
        if let Some(s) = self.wait_timeout(grace)? {
            return Ok(s);
        }
        tracing::warn!(process = %self.name, seconds = grace.as_secs_f64(), "did not stop after SIGTERM; killing it");
        self.child.kill().map_err(|e| Error::process(&self.name, e.to_string()))?;
        self.child.wait().map_err(|e| Error::process(&self.name, e.to_string()))
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Why the process failed, from its log: the last `error: ...` report (with its causes, without
    /// a backtrace), else the last lines.
    pub fn failure(&self) -> String {
        failure_reason(&log_tail(&self.log, 400))
    }
}

/// A process still running when its handle goes (an error path, a failed test) is killed, so no
/// run leaves orphans behind.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            tracing::warn!(process = %self.name, pid = self.child.id(), "still running when dropped: killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `error: ` report in `log` (`Error: ` from binaries of earlier versions) up to any
/// backtrace, else its last 12 lines.
pub fn failure_reason(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    match lines.iter().rposition(|l| l.starts_with("error: ") || l.starts_with("Error: ")) {
        Some(i) => lines[i..]
            .iter()
            .take_while(|l| !l.starts_with("Stack backtrace:"))
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
            .trim_end()
            .to_string(),
        None => lines[lines.len().saturating_sub(12)..].join("\n"),
    }
}

/// The last `lines` lines of a file (at most its last 64 KiB are read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts `casrap-learner serve` and waits (up to `timeout`) for its address.
pub fn spawn_learner(
    bin: &Path,
    config: &Path,
    listen: &str,
    dir: &Path,
    log: &Path,
    timeout: Duration,
) -> Result<(Proc, SocketAddr)> {
    let file = open_log(log)?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve").arg("--config").arg(config).arg("--listen").arg(listen).arg("--dir").arg(dir);
    detach(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file.try_clone().map_err(|e| Error::io(log, e))?)
        .spawn()
        .map_err(|e| Error::process("learner", format!("cannot start {}: {e}", bin.display())))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::process("learner", "no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Copies stdout to the log; the first `listening on` line is passed on.
    std::thread::spawn(move || {
        let mut file = file;
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(std::result::Result::ok) {
            let _ = writeln!(file, "{line}");
            if let Some(addr) = line.strip_prefix("listening on ") {
                if let Some(t) = tx.take() {
                    let _ = t.send(addr.trim().to_string());
                }
            }
        }
    });
    let mut proc = Proc { name: "learner".into(), child, log: log.into() };
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(addr) => {
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    Error::process(
                        "learner",
                        format!("printed an address that does not parse: `{addr}`"),
                    )
                })?;
                return Ok((proc, addr));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = proc.wait_timeout(Duration::from_secs(5))?;
                return Err(Error::process(
                    "learner",
                    format!(
                        "exited ({}) before listening; last log lines:\n{}",
                        status.map_or("still running".into(), |s| s.to_string()),
                        proc.log_tail(20)
                    ),
                ));
            }
        }
        if let Some(status) = proc.try_wait()? {
            return Err(Error::process(
                "learner",
                format!(
                    "exited ({status}) before listening; last log lines:\n{}",
                    proc.log_tail(20)
                ),
            ));
        }
        if Instant::now() >= deadline {
            let _ = proc.stop(Duration::from_secs(5));
            return Err(Error::process(
                "learner",
                format!(
                    "not listening after {:.0} s; last log lines:\n{}",
                    timeout.as_secs_f64(),
                    proc.log_tail(20)
                ),
            ));
        }
    }
}

/// What one actor process is told.
#[derive(Debug, Clone)]
pub struct ActorSpec {
    pub id: String,
    pub learner: String,
    pub config: PathBuf,
    pub episodes: u64,
    pub device: String,
    pub threads: usize,
    pub log: PathBuf,
}

/// Starts `casrap-actor run` for `spec`.
pub fn spawn_actor(bin: &Path, spec: &ActorSpec) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--learner")
        .arg(&spec.learner)
        .arg("--config")
        .arg(&spec.config)
        .arg("--actor-id")
        .arg(&spec.id)
        .arg("--episodes")
        .arg(spec.episodes.to_string())
        .arg("--device")
        .arg(&spec.device)
        .arg("--threads")
        .arg(spec.threads.to_string())
        // Next to its log: a restarted actor reconnects as itself.
        .arg("--session-file")
        .arg(spec.log.with_extension("session"));
    Proc::spawn(&spec.id, cmd, &spec.log)
}

/// What one test-mode measuring process is told.
#[derive(Debug, Clone)]
pub struct TesterSpec {
    pub config: PathBuf,
    pub policy: PathBuf,
    pub prompts: usize,
    pub shard: usize,
    pub shards: usize,
    pub device: String,
    pub threads: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub log: PathBuf,
}

/// Starts `casrap-actor test` for `spec`.
pub fn spawn_tester(bin: &Path, spec: &TesterSpec) -> Result<Proc> {
    let mut cmd = Command::new(bin);
    cmd.arg("test")
        .arg("--config")
        .arg(&spec.config)
        .arg("--policy")
        .arg(&spec.policy)
        .args(["--prompts", &spec.prompts.to_string()])
        .args(["--shard", &spec.shard.to_string(), "--shards", &spec.shards.to_string()])
        .args(["--device", &spec.device, "--threads", &spec.threads.to_string()])
        .args(["--seed", &spec.seed.to_string()])
        .arg("--out")
        .arg(&spec.out);
    Proc::spawn(&format!("tester-{}", spec.shard), cmd, &spec.log)
}
