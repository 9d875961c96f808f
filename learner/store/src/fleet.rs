//! The record `casrap-learner bench --record` writes (`bench/fleet/*.json`): the arguments of the
//! run and its raw figures (ingest, ack and policy-push latency quantiles, the learner's memory
//! curve), with the table the bench prints, so reports reprint it from the file alone.

use std::path::PathBuf;

use casrap_common::stats::quantile;
use serde::{Deserialize, Serialize};

#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct BenchArgs {
    /// Run config whose action set, learner and trainer settings are used.
    #[arg(long, default_value = "deploy/local.yaml")]
    pub config: PathBuf,
    /// A running learner to load (e.g. `http://127.0.0.1:50051`); default: one in-process.
    #[arg(long)]
    pub connect: Option<String>,
    /// Its process id, to sample its memory (`/proc/PID/status`); the in-process one is this one.
    #[arg(long)]
    pub learner_pid: Option<u32>,
    /// Simulated actors.
    #[arg(long, default_value_t = 64)]
    pub actors: usize,
    /// Transitions per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Batches each actor keeps in flight (sent, not yet acked).
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Transitions per actor per second (batches of one); 0: as fast as acks allow.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Bytes of the episode record each transition carries (0: none).
    #[arg(long, default_value_t = 0)]
    pub record_bytes: usize,
    /// Seconds over which the actors connect (spread, as a fleet's start is).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Seconds of load (after the ramp).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// One connection per actor for its stream and its watch (default: two).
    #[arg(long)]
    pub one_connection: bool,
    /// Policy watchers that never read, each on its own connection (what a stalled actor is
    /// to the learner's memory).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub idle_watchers: usize,
    /// Store folder of the in-process learner (default: a fresh temporary one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the raw figures as JSON here.
    #[arg(long)]
    pub record: Option<PathBuf>,
}

/// One sample of the memory curve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MemorySample {
    pub t_s: f64,
    pub rss_bytes: u64,
    pub connected: u64,
    pub acked: u64,
}

/// The raw figures of one bench run.
#[derive(Debug, Serialize, Deserialize)]
pub struct Record {
    pub args: BenchArgs,
    pub learner: String,
    pub elapsed_s: f64,
    pub actors_connected: u64,
    /// Actors that gave up (connect or register failed after retries, or a stream error).
    pub actors_failed: usize,
    pub first_failure: Option<String>,
    pub acked: u64,
    pub stored: Option<u64>,
    pub ack_ms: Quantiles,
    pub push_ms: Quantiles,
    /// The steady part of the run: transitions sent after the ramp (every actor connected).
    /// Records of earlier versions lack it.
    #[serde(default)]
    pub steady: Option<Steady>,
    pub pushes: usize,
    pub policy_versions: u64,
    pub memory: Vec<MemorySample>,
    /// Learner memory before the actors connected and once all had.
    pub rss_idle_bytes: Option<u64>,
    pub rss_connected_bytes: Option<u64>,
    /// Watchers that never read (`--idle-watchers`) still holding their stream at the end.
    #[serde(default)]
    pub idle_watchers_held: usize,
    /// The learner's `push_interval_ms` (0: every version is pushed at once).
    #[serde(default)]
    pub push_interval_ms: u64,
}

/// What the transitions sent after the ramp saw: the rate the learner sustained with every actor
/// connected, and their ack latency. (`durable ingest` divides every ack, the ramp's included, by
/// the time after the ramp: it overstates the sustained rate of a run with a ramp.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Steady {
    /// Length of the window the sends fall in (`--seconds`).
    pub seconds: f64,
    /// Transitions sent in the window and acknowledged durable.
    pub acked: u64,
    pub ack_ms: Quantiles,
    /// The same latencies by the time they were sent, in consecutive windows: whether the
    /// learner kept up all along, or a backlog grew or drained. Records of earlier versions lack
    /// them.
    #[serde(default)]
    pub windows: Vec<Window>,
}

/// Ack latencies of the transitions sent in `[from_s, from_s + seconds)` after the ramp.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Window {
    pub from_s: f64,
    pub seconds: f64,
    pub ack_ms: Quantiles,
}

impl Window {
    /// `(sent_s, ack_ms)` pairs grouped into windows of `seconds` from 0, in order (a window
    /// nothing was sent in is left out).
    pub fn split(sends: impl IntoIterator<Item = (f64, f64)>, seconds: f64) -> Vec<Window> {
        let mut by: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for (t, ms) in sends {
            by.entry((t.max(0.0) / seconds) as u64).or_default().push(ms);
        }
        by.into_iter()
            .map(|(i, v)| Window { from_s: i as f64 * seconds, seconds, ack_ms: Quantiles::of(v) })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Quantiles {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    pub fn of(v: Vec<f64>) -> Self {
        Self { n: v.len(), p50: quantile(&v, 0.5), p99: quantile(&v, 0.99), max: quantile(&v, 1.0) }
    }
}

impl Record {
    /// Reads a record written by `--record`; the error names the file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a fleet bench record: {e}", path.display()))
    }

    /// Bytes of learner memory per connected actor: growth from idle to all connected.
    pub fn bytes_per_actor(&self) -> Option<f64> {
        let (idle, full) = (self.rss_idle_bytes?, self.rss_connected_bytes?);
        (self.actors_connected > 0)
            .then(|| (full as f64 - idle as f64) / self.actors_connected as f64)
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let a = &self.args;
        let load = if a.rate > 0.0 {
            format!("{} transition(s)/s per actor", a.rate)
        } else {
            format!("batches of {}, {} in flight per actor", a.batch, a.in_flight)
        };
        let mut t = format!(
            "casrap-learner bench: {} actors ({} connected), {load}, episode records of {} bytes, {:.1} s, learner {}\n",
            a.actors, self.actors_connected, a.record_bytes, self.elapsed_s, self.learner
        );
        t += "| measure | value | target |\n|---|---|---|\n";
        t += &format!(
            "| actors connected / failed | {} / {} | all / 0 |\n",
            self.actors_connected, self.actors_failed
        );
        t += &format!(
            "| durable ingest (acked transitions/s) | {:.0} | |\n",
            self.acked as f64 / self.elapsed_s
        );
        let stored = self.stored.map_or("-".to_string(), |s| s.to_string());
        t += &format!("| transitions acked / stored | {} / {stored} | equal |\n", self.acked);
        t += &format!("| ack latency p50 / p99 / max (ms, send to durable ack) | {:.2} / {:.2} / {:.2} | p99 <= 100 |\n", self.ack_ms.p50, self.ack_ms.p99, self.ack_ms.max);
        if let Some(st) = &self.steady {
            let offered = if a.rate > 0.0 {
                format!("{:.0} offered", a.rate * a.actors as f64)
            } else {
                String::new()
            };
            t += &format!(
                "| steady ingest: sent after the ramp and acked, per s of the {:.0} s | {:.0} | {offered} |\n",
                st.seconds,
                st.acked as f64 / st.seconds
            );
            t += &format!("| steady ack latency p50 / p99 / max (ms, sends after the ramp) | {:.2} / {:.2} / {:.2} | p99 <= 100 |\n", st.ack_ms.p50, st.ack_ms.p99, st.ack_ms.max);
            if let Some(w) = st.windows.first() {
                let p99: Vec<String> =
                    st.windows.iter().map(|w| format!("{:.0}", w.ack_ms.p99)).collect();
                t += &format!(
                    "| steady ack latency p99 in each {:.0} s window, in order (ms) | {} | each <= 100 |\n",
                    w.seconds,
                    p99.join(" ")
                );
            }
        }
        t += &format!(
            "| policy versions published / pushes received | {} / {} | |\n",
            self.policy_versions, self.pushes
        );
        let push_target = match self.push_interval_ms {
            0 => "p99 <= 100".to_string(),
            ms => format!("p99 <= {} (push interval + 1 s)", ms + 1000),
        };
        t += &format!("| policy push latency p50 / p99 / max (ms, to every watcher) | {:.2} / {:.2} / {:.2} | {push_target} |\n", self.push_ms.p50, self.push_ms.p99, self.push_ms.max);
        if let (Some(idle), Some(full)) = (self.rss_idle_bytes, self.rss_connected_bytes) {
            t += &format!(
                "| learner memory idle / all connected (MiB) | {:.1} / {:.1} | |\n",
                idle as f64 / 1048576.0,
                full as f64 / 1048576.0
            );
        }
        if a.idle_watchers > 0 {
            t += &format!(
                "| watchers that never read / holding their stream at the end | {} / {} | |\n",
                a.idle_watchers, self.idle_watchers_held
            );
        }
        if let Some(b) = self.bytes_per_actor() {
            t += &format!("| learner memory per connected actor (KiB) | {:.1} | |\n", b / 1024.0);
        }
        if let (Some(first), Some(last)) = (self.memory.first(), self.memory.last()) {
            let peak = self.memory.iter().map(|m| m.rss_bytes).max().unwrap_or(0);
            t += &format!(
                "| learner memory first / peak / last sample (MiB) | {:.1} / {:.1} / {:.1} | flat |\n",
                first.rss_bytes as f64 / 1048576.0,
                peak as f64 / 1048576.0,
                last.rss_bytes as f64 / 1048576.0
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_latencies_fall_into_the_window_they_were_sent_in() {
        let w = Window::split([(0.1, 10.0), (4.9, 30.0), (5.0, 500.0), (12.0, 7.0)], 5.0);
        let got: Vec<(f64, usize, f64)> =
            w.iter().map(|w| (w.from_s, w.ack_ms.n, w.ack_ms.max)).collect();
        assert_eq!(got, vec![(0.0, 2, 30.0), (5.0, 1, 500.0), (10.0, 1, 7.0)]);
    }

    #[test]
    fn a_steady_part_without_windows_renders_as_before() {
        let json = r#"{"seconds": 60.0, "acked": 600, "ack_ms": {"n": 600, "p50": 1.0, "p99": 2.0, "max": 3.0}}"#;
        let st: Steady = serde_json::from_str(json).unwrap();
        assert!(st.windows.is_empty());
    }
}
