//! The SLURM backend: scripts rendered for a heterogeneous fleet, and a small run submitted to a
//! real single-node SLURM cluster (scripts/slurm-up installs and starts Debian's slurm-wlm and
//! munge) that completes through sbatch with complete records.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use casrap_common::config::RunConfig;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn gpu_actors_request_a_gpu_and_no_host_is_written_into_the_scripts() {
    let cfg = RunConfig::from_file(&repo("deploy/fleet.yaml")).unwrap();
    let dir = Path::new("/shared/runs/train-1");
    let actors = casrap_deploy::slurm::actors_script("fleet", Path::new("/opt/casrap/casrap-actor"), dir, &cfg, 2);
    assert!(actors.contains("#SBATCH --array=0-5\n") && actors.contains("#SBATCH --gres=gpu:1\n"), "{actors}");
    assert!(actors.contains("devices=(cuda:0 cuda:0 cpu cuda:0 cuda:0 cpu)"), "{actors}");
    assert!(actors.contains("episodes=(500 500 500 500 500 500)"), "{actors}");
    let learner = casrap_deploy::slurm::learner_script("fleet", Path::new("/opt/casrap/casrap-learner"), dir);
    assert!(learner.contains("--listen 0.0.0.0:0") && learner.contains("hostname"), "{learner}");
    let host = casrap_common::telemetry::host_name();
    assert!(!learner.contains(&host) && !actors.contains(&host), "a host name is hard-coded");
}

#[test]
fn a_small_run_completes_through_sbatch() {
    let up = Command::new(repo("scripts/slurm-up")).output().unwrap();
    if !up.status.success() {
        eprintln!(
            "\n*** SKIPPED: no SLURM cluster could be started here (scripts/slurm-up needs root and apt): {}\n",
            String::from_utf8_lossy(&up.stderr).trim()
        );
        return;
    }
    let conf = String::from_utf8_lossy(&up.stdout).lines().last().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.yaml");
    std::fs::write(
        &cfg,
        "name: slurm-e2e\nactions: [{kind: none}, {kind: ffn, intensity: 0.25}]\n\
         trainer: {batch: 8, min_replay: 4, publish_every: 2}\n\
         actors: {count: 2, episodes: 6, new_tokens: 4, pairs: 1, threads: 1}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("SLURM_CONF", &conf)
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_BACKTRACE", "0")
        .args(["run", cfg.to_str().unwrap(), "--backend", "slurm", "--out"])
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("submitted: learner job"), "{stdout}");
    let run = tmp.path().join("runs/train-1");
    let episodes = casrap_deploy::records::read_jsonl(&run.join("episodes.jsonl")).unwrap();
    casrap_deploy::records::check_complete(&episodes, &[("actor-0".to_string(), 3), ("actor-1".to_string(), 3)].into()).unwrap();
    // The learner listened beyond loopback, so the run got a token, and it stopped cleanly.
    assert!(run.join("token").is_file());
    let log = std::fs::read_to_string(run.join("logs/learner.log")).unwrap();
    assert!(log.contains("final checkpoint written"), "{log}");
    let url = std::fs::read_to_string(run.join("learner.url")).unwrap();
    assert!(url.starts_with("http://") && !url.contains("0.0.0.0"), "{url}");
}
