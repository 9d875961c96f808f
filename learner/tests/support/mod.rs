//! Shared by the tests that run `casrap-learner serve` as a process.

#![allow(clippy::unwrap_used, dead_code)] // test helpers stop at the first failure

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The local run config.
pub fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local.yaml")
}

/// Starts `serve` on `dir` (stderr as given); its process and URL once it listens.
pub fn spawn(dir: &Path, stderr: Stdio) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_casrap-learner"))
        .args([
            "serve",
            "--config",
            config().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, format!("http://{addr}"))
}
