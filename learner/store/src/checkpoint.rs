//! Checkpoint folders as the learner writes them, `checkpoints/ckpt-<updates>/`: `state.json`
//! (counters, network widths, the hash of the tensors file) and `tensors.safetensors` (the online
//! and target networks and Adam's moments, `online.0`, `online.1`, ... weight then bias per
//! layer). The trainer writes and resumes them with tch; this module finds them, checks them and
//! reads the online network as a plain [`QNet`], so test mode, eval and reports need no libtorch.

use std::path::{Path, PathBuf};

use casrap_common::qnet::{Layer, QNet};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub updates: u64,
    pub version: u64,
    pub sampled: u64,
    pub dims: Vec<usize>,
    pub tensors_hash: String,
}

pub const STATE_FILE: &str = "state.json";
pub const TENSORS_FILE: &str = "tensors.safetensors";

/// The hash `state.json` keeps of the tensors file.
pub fn hash_hex(bytes: &[u8]) -> String {
    format!("{:016x}", casrap_common::prompts::stable_hash(0, bytes))
}

fn bad(path: &Path, reason: String) -> Error {
    Error::Checkpoint { path: path.into(), reason }
}

/// Checkpoint folders in `dir` whose name passes `keep`, sorted.
fn folders(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("ckpt-") && keep(n))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Finished checkpoint folders in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    folders(dir, |n| !n.ends_with(".tmp"))
}

/// Checkpoint folders in `dir` that a killed write left unfinished (`ckpt-*.tmp`).
pub fn partial(dir: &Path) -> Vec<PathBuf> {
    folders(dir, |n| n.ends_with(".tmp"))
}

/// The checkpoint folder (`ckpt-N`) `path` names, and the run folder it belongs to, if any:
/// `path` is a run folder (its newest checkpoint), its `learner/checkpoints` folder (the newest)
/// or one `ckpt-N` folder.
pub fn locate(path: &Path) -> Result<(Option<PathBuf>, PathBuf)> {
    let is_ckpt = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-"))
            && p.join(STATE_FILE).is_file()
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
    match list(&dir).pop() {
        Some(c) => Ok((run, c)),
        None => Err(bad(
            path,
            "no checkpoint here (a run folder, its learner/checkpoints, or a ckpt-N folder)".into(),
        )),
    }
}

/// `state.json` of the checkpoint folder `path`, and the bytes of its tensors file, checked
/// against the hash it records.
pub fn read_checked(path: &Path) -> Result<(State, Vec<u8>)> {
    let json = std::fs::read_to_string(path.join(STATE_FILE))
        .map_err(|e| bad(path, format!("{STATE_FILE}: {e}")))?;
    let state: State =
        serde_json::from_str(&json).map_err(|e| bad(path, format!("{STATE_FILE}: {e}")))?;
    let bytes = std::fs::read(path.join(TENSORS_FILE))
        .map_err(|e| bad(path, format!("{TENSORS_FILE}: {e}")))?;
    if hash_hex(&bytes) != state.tensors_hash {
        return Err(bad(path, format!("{TENSORS_FILE} does not match the hash in {STATE_FILE}")));
    }
    Ok((state, bytes))
}

/// The online network (the greedy policy) of the checkpoint folder `path`, with its state;
/// `dims`, when given, are the widths the caller's config expects.
pub fn read_policy(path: &Path, dims: Option<&[usize]>) -> Result<(QNet, State)> {
    let (state, bytes) = read_checked(path)?;
    if let Some(d) = dims {
        if d != state.dims.as_slice() {
            return Err(bad(
                path,
                format!("network widths {:?}, the config gives {d:?}", state.dims),
            ));
        }
    }
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(path, format!("{TENSORS_FILE}: {e}")))?;
    let read = |name: String, shape: &[usize]| -> Result<Vec<f32>> {
        let t = tensors
            .tensor(&name)
            .map_err(|e| bad(path, format!("{TENSORS_FILE}: tensor `{name}`: {e}")))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape() != shape {
            return Err(bad(
                path,
                format!(
                    "{TENSORS_FILE}: tensor `{name}` is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let layers = state
        .dims
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            Ok(Layer {
                weight: read(format!("online.{}", 2 * k), &[w[1], w[0]])?,
                bias: read(format!("online.{}", 2 * k + 1), &[w[1]])?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let net = QNet::from_layers(&state.dims, layers)
        .map_err(|e| bad(path, format!("{TENSORS_FILE}: the online network: {e}")))?;
    Ok((net, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], dims: Vec<usize>) -> PathBuf {
        let ckpt = dir.join("learner/checkpoints/ckpt-000000000007");
        std::fs::create_dir_all(&ckpt).unwrap();
        let bytes: Vec<Vec<u8>> =
            tensors.iter().map(|t| t.2.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
        let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .zip(&bytes)
            .map(|(t, b)| {
                let v =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.1.clone(), b)
                        .unwrap();
                (t.0, v)
            })
            .collect();
        let file = safetensors::tensor::serialize(views, &None).unwrap();
        std::fs::write(ckpt.join(TENSORS_FILE), &file).unwrap();
        let state =
            State { updates: 7, version: 2, sampled: 9, dims, tensors_hash: hash_hex(&file) };
        std::fs::write(ckpt.join(STATE_FILE), serde_json::to_string(&state).unwrap()).unwrap();
        ckpt
    }

    #[test]
    fn the_online_network_is_read_and_bad_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let tensors = vec![
            ("online.0", vec![2, 1], vec![1.0, -2.0]),
            ("online.1", vec![2], vec![0.5, 0.25]),
            ("target.0", vec![2, 1], vec![9.0, 9.0]),
        ];
        let ckpt = write(tmp.path(), &tensors, vec![1, 2]);
        // Found from the run folder, the checkpoints folder and itself.
        for p in [tmp.path().to_path_buf(), ckpt.parent().unwrap().into(), ckpt.clone()] {
            let (run, found) = locate(&p).unwrap();
            assert_eq!((run.as_deref(), found.as_path()), (Some(tmp.path()), ckpt.as_path()));
        }
        let (net, state) = read_policy(&ckpt, Some(&[1, 2])).unwrap();
        assert_eq!(state.updates, 7);
        assert_eq!(net.q_values(&[2.0]).unwrap(), vec![2.5, -3.75]);
        let e = read_policy(&ckpt, Some(&[1, 3])).unwrap_err().to_string();
        assert!(e.contains("widths [1, 2], the config gives [1, 3]"), "{e}");
        // A tensor of the wrong shape is named.
        let wrong = vec![("online.0", vec![1, 2], vec![1.0, -2.0]), tensors[1].clone()];
        let ckpt = write(tmp.path(), &wrong, vec![1, 2]);
        let e = read_policy(&ckpt, None).unwrap_err().to_string();
        assert!(e.contains("tensor `online.0` is F32 [1, 2], expected F32 [2, 1]"), "{e}");
        // A tensors file that is not the one state.json hashed.
        std::fs::write(ckpt.join(TENSORS_FILE), b"torn").unwrap();
        let e = read_policy(&ckpt, None).unwrap_err().to_string();
        assert!(e.contains("does not match the hash"), "{e}");
        assert!(locate(&tmp.path().join("nothing")).is_err());
    }
}
