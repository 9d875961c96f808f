//! The SLURM backend: scripts rendered for a heterogeneous fleet, and a small run submitted to a
//! real single-node SLURM cluster (provisioned by scripts/services-up, which runs scripts/slurm-up:
//! Debian's slurm-wlm and munge) that completes through sbatch with complete records.

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
    let scripts = casrap_deploy::slurm::actors_scripts(
        "fleet",
        Path::new("/opt/casrap/casrap-actor"),
        dir,
        &cfg,
        2,
    );
    assert_eq!(scripts.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["cuda", "cpu"]);
    let (cuda, cpu) = (&scripts[0].1, &scripts[1].1);
    // fleet.yaml: devices [cuda:0, cuda:1, cpu] cycled over 6 actors: 0 1 3 4 on GPUs, 2 5 on CPUs.
    assert!(
        cuda.contains("#SBATCH --array=0-3\n")
            && cuda.contains("#SBATCH --gres=gpu:1\n")
            && cuda.contains("ids=(0 1 3 4)"),
        "{cuda}"
    );
    assert!(
        cpu.contains("#SBATCH --array=0-1\n")
            && !cpu.contains("--gres")
            && cpu.contains("ids=(2 5)")
            && cpu.contains("--device cpu"),
        "{cpu}"
    );
    assert!(cuda.contains("episodes=(500 500 500 500)"), "{cuda}");
    let actors = format!("{cuda}{cpu}");
    let learner =
        casrap_deploy::slurm::learner_script("fleet", Path::new("/opt/casrap/casrap-learner"), dir);
    assert!(learner.contains("--listen 0.0.0.0:0") && learner.contains("hostname"), "{learner}");
    let host = casrap_common::telemetry::host_name();
    assert!(!learner.contains(&host) && !actors.contains(&host), "a host name is hard-coded");
}

#[test]
fn the_fleet_scripts_match_their_golden_files() {
    // Remake with: UPDATE_GOLDEN=1 cargo nextest run -p casrap-deploy --test slurm golden
    let cfg = RunConfig::from_file(&repo("deploy/fleet.yaml")).unwrap();
    let dir = Path::new("/shared/runs/train-1");
    let mut files = vec![(
        "fleet.learner.sbatch".to_string(),
        casrap_deploy::slurm::learner_script("fleet", Path::new("/opt/casrap/casrap-learner"), dir),
    )];
    for (kind, text) in casrap_deploy::slurm::actors_scripts(
        "fleet",
        Path::new("/opt/casrap/casrap-actor"),
        dir,
        &cfg,
        2,
    ) {
        files.push((format!("fleet.actors-{kind}.sbatch"), text));
    }
    for (name, text) in files {
        let path = repo("deploy/tests/fixtures").join(&name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "{name} changed; remake it if intended (see the comment above)"
        );
    }
}

#[test]
#[ignore = "needs a SLURM cluster: run `scripts/test --services` (CI does)"]
fn a_small_run_completes_through_sbatch() {
    let conf = std::env::var("SLURM_CONF").expect(
        "SLURM_CONF is not set: provision a cluster with `eval \"$(scripts/services-up)\"`",
    );
    assert!(Path::new(&conf).is_file(), "SLURM_CONF={conf} is not a file");
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
    let episodes = casrap_deploy::run_records::read_jsonl(&run.join("episodes.jsonl")).unwrap();
    casrap_deploy::run_records::check_complete(
        &episodes,
        &[("actor-0".to_string(), 3), ("actor-1".to_string(), 3)].into(),
    )
    .unwrap();
    // The learner listened beyond loopback, so the run got a token, and it stopped cleanly.
    assert!(run.join("token").is_file());
    let log = std::fs::read_to_string(run.join("logs/learner.log")).unwrap();
    assert!(log.contains("final checkpoint written"), "{log}");
    let url = std::fs::read_to_string(run.join("learner.url")).unwrap();
    assert!(url.starts_with("http://") && !url.contains("0.0.0.0"), "{url}");
}
