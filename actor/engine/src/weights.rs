//! Reading HF `model.safetensors` (single file or sharded through `model.safetensors.index.json`).
//!
//! Files are memory-mapped and every header is validated up front (a truncated or corrupt file
//! fails here, naming the file); tensors are then copied out one by one with their name and
//! expected shape checked.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result, TorchContext};

/// Name of the single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

/// The tensors of a checkpoint, validated and mapped, not yet copied.
pub struct SafeTensorFiles {
    shards: Vec<Shard>,
    /// Tensor name to shard index.
    location: HashMap<String, usize>,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl SafeTensorFiles {
    /// Opens `dir/model.safetensors`, or the shards listed in `dir/model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        if single.is_file() {
            return Self::open(&[single]);
        }
        if !index.is_file() {
            return Err(Error::io(
                single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no {SINGLE_FILE} or {INDEX_FILE}"),
                ),
            ));
        }
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let parsed: ShardIndex = serde_json::from_str(&text)
            .map_err(|source| Error::Json { path: index.clone(), source })?;
        let mut files: Vec<String> = parsed.weight_map.values().cloned().collect();
        files.sort();
        files.dedup();
        for f in &files {
            if f.contains('/') || f.contains('\\') || f == ".." {
                return Err(Error::Config {
                    path: index.clone(),
                    field: "weight_map",
                    reason: format!("shard name `{f}` must be a plain file name"),
                });
            }
        }
        let this = Self::open(&files.iter().map(|f| dir.join(f)).collect::<Vec<_>>())?;
        for (name, file) in &parsed.weight_map {
            let at = this.location.get(name).map(|&i| &this.shards[i].path);
            if at.map(|p| p.file_name() != Some(std::ffi::OsStr::new(file))).unwrap_or(true) {
                return Err(Error::MissingTensor {
                    name: name.clone(),
                    searched: dir.join(file).display().to_string(),
                });
            }
        }
        Ok(this)
    }

    /// Maps and validates the given safetensors files.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut location = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let mmap = map_readonly(&file).map_err(|e| Error::io(path, e))?;
            let (header_len, meta) = SafeTensors::read_metadata(&mmap)
                .map_err(|e| Error::Safetensors { path: path.clone(), reason: format!("{e:?}") })?;
            let tensors: HashMap<String, TensorInfo> =
                meta.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
            for name in tensors.keys() {
                if let Some(prev) = location.insert(name.clone(), i) {
                    return Err(Error::Safetensors {
                        path: path.clone(),
                        reason: format!(
                            "tensor `{name}` also present in {}",
                            paths[prev].display()
                        ),
                    });
                }
            }
            shards.push(Shard { path: path.clone(), mmap, data_start: 8 + header_len, tensors });
        }
        Ok(Self { shards, location })
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.location.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    fn searched(&self) -> String {
        self.shards.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Copies tensor `name` out, checks its shape, converts to `kind` on `device`.
    pub fn load(&self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
        let &i = self
            .location
            .get(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into(), searched: self.searched() })?;
        let shard = &self.shards[i];
        let info = &shard.tensors[name];
        let found: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        if found != shape {
            return Err(Error::Shape {
                path: shard.path.clone(),
                name: name.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        let src_kind = match info.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            other => {
                return Err(Error::TensorDtype {
                    path: shard.path.clone(),
                    name: name.into(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let (start, end) = info.data_offsets;
        // read_metadata validated that the offsets are contiguous and inside the file.
        let bytes = &shard.mmap[shard.data_start + start..shard.data_start + end];
        let t = Tensor::f_from_data_size(bytes, &found, src_kind)
            .ctx(|| format!("{}: reading `{name}`", shard.path.display()))?;
        t.f_to_dtype(kind, false, false)
            .and_then(|t| t.f_to_device(device)?.f_contiguous())
            .ctx(|| format!("moving `{name}` to {kind:?} on {device:?}"))
    }
}

/// Maps a file read-only.
#[allow(unsafe_code)]
fn map_readonly(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process; model files are not expected to be
    // rewritten while loading. A concurrent truncation could fault, as with any mmap-based loader
    // (candle and safetensors' own loaders make the same trade for zero-copy reads).
    unsafe { Mmap::map(file) }
}

/// Writes `tensors` to `path` as one safetensors file, with a `format: pt` header like HF.
pub fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, path).ctx(|| format!("writing {}", path.display()))
}
