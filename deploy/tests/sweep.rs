//! Sweeps: the shipped files expand into checked points; a bad file names the field; a small
//! sweep runs locally into point folders and its table follows each point's records.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use casrap_deploy::sweep::SweepFile;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn the_shipped_sweeps_expand_into_checked_points() {
    let (_, points) = SweepFile::load(&deploy("sweep-reward.yaml")).unwrap();
    assert_eq!(points.len(), 6);
    let alphas: Vec<f64> = points.iter().map(|p| p.config.reward.alpha).collect();
    assert_eq!(alphas, vec![0.5, 0.5, 0.7, 0.7, 0.9, 0.9]);
    assert!(points.iter().all(|p| p.config.actors.episodes == 200));
    let (_, points) = SweepFile::load(&deploy("sweep-actions.yaml")).unwrap();
    assert_eq!(
        points.iter().map(|p| p.config.action_labels().len()).collect::<Vec<_>>(),
        vec![3, 2, 2, 2, 5]
    );
}

fn error(tmp: &Path, text: &str) -> String {
    std::fs::copy(deploy("local.yaml"), tmp.join("local.yaml")).unwrap();
    let p = tmp.join("s.yaml");
    std::fs::write(&p, text).unwrap();
    SweepFile::load(&p).expect_err("the file is bad").to_string()
}

#[test]
fn bad_sweep_files_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "base: local.yaml\ngrid: {reward.alpha: [0.5]}\nparalel: 2\n",
            "s.yaml: paralel: unknown field `paralel`",
        ),
        (
            "base: local.yaml\ngrid: {reward.alpha: 0.5}\n",
            "s.yaml: grid.reward.alpha: invalid type",
        ),
        (
            "base: local.yaml\ngrid: {reward.alpha: []}\n",
            "s.yaml: grid.reward.alpha: is an empty list",
        ),
        ("base: local.yaml\n", "s.yaml: grid: the sweep has no points"),
        (
            "base: local.yaml\ngrid: {reward.alpah: [0.5]}\n",
            "grid point 1 (reward.alpah=0.5): reward.alpah: unknown field `alpah`",
        ),
        ("base: local.yaml\npoints: [{trainer.lr: fast}]\n", "points[0]: trainer.lr: invalid type"),
        ("base: nowhere.yaml\ngrid: {reward.alpha: [0.5]}\n", "s.yaml: base: "),
    ] {
        let e = error(tmp.path(), text);
        assert!(e.contains(want), "for\n{text}\nwanted `{want}`, got `{e}`");
    }
}

#[test]
fn a_small_sweep_runs_every_point_and_compares_them_from_their_records() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base.yaml");
    std::fs::write(
        &base,
        "name: tiny\nactions:\n  - {kind: none}\n  - {kind: ffn, intensity: 0.25}\n\
         trainer: {batch: 8, min_replay: 4, publish_every: 2}\n\
         actors: {count: 1, episodes: 6, new_tokens: 4, pairs: 1, threads: 2}\n",
    )
    .unwrap();
    let sweep = tmp.path().join("sweep.yaml");
    std::fs::write(
        &sweep,
        "name: tiny\nbase: base.yaml\nparallel: 2\ngrid:\n  reward.beta: [0.3, 3.0]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_casrap"))
        .env("RUST_BACKTRACE", "0")
        .arg("sweep")
        .arg(&sweep)
        .arg("--out")
        .arg(tmp.path().join("runs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let dir = tmp.path().join("runs/sweep-1");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (k, (row, beta)) in rows.iter().zip([0.3, 3.0]).enumerate() {
        let point = dir.join(format!("point-{}", k + 1));
        let cfg = casrap_common::config::RunConfig::from_file(&point.join("config.yaml")).unwrap();
        assert_eq!(cfg.reward.beta, beta);
        let rewards: Vec<f64> = std::fs::read_to_string(point.join("episodes.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"].as_f64().unwrap()
            })
            .collect();
        assert_eq!(rewards.len(), 6);
        let mean = rewards.iter().sum::<f64>() / 6.0;
        assert!((row["overall"]["mean_reward"].as_f64().unwrap() - mean).abs() < 1e-12, "{row}");
        assert_eq!(row["overrides"], format!("reward.beta={beta:?}"));
    }
    assert!(dir.join("sweep.png").is_file() && dir.join("report.txt").is_file());
    // The table regenerates from the records.
    let first = std::fs::read(dir.join("summary.json")).unwrap();
    assert!(Command::new(env!("CARGO_BIN_EXE_casrap"))
        .arg("report")
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    assert_eq!(std::fs::read(dir.join("summary.json")).unwrap(), first);
}
