//! Hardware telemetry for the state vector and the episode records.
//!
//! - CPU utilisation (all cores, since the previous snapshot) and available memory: sysinfo.
//! - Battery: the OS power-supply interface (`/sys/class/power_supply/*` of type `Battery`,
//!   `capacity` in percent); **1.0 when there is no battery** (mains power).
//! - GPU utilisation, free memory, power draw and temperature: NVML (nvml-wrapper, loaded at run
//!   time), for the actor's CUDA device. **Without NVML or a CUDA device the GPU is absent**:
//!   `gpu_present` 0 and every GPU feature 0.
//!
//! Each fallback is logged once, when the [`Telemetry`] is opened, and kept in [`Telemetry::notes`].
//! NVML numbers devices in PCI order and CUDA may not (`CUDA_DEVICE_ORDER`,
//! `CUDA_VISIBLE_DEVICES`); set `CUDA_DEVICE_ORDER=PCI_BUS_ID` where the two must agree.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the GPU reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSnapshot {
    pub name: String,
    /// Busy fraction of the last sample period, in [0, 1].
    pub utilisation: f32,
    pub memory_free_bytes: u64,
    pub memory_total_bytes: u64,
    /// Watts, when the device reports it.
    pub power_w: Option<f32>,
    /// Degrees Celsius, when the device reports it.
    pub temperature_c: Option<u32>,
}

impl GpuSnapshot {
    pub fn memory_free_fraction(&self) -> f32 {
        if self.memory_total_bytes == 0 {
            0.0
        } else {
            (self.memory_free_bytes as f64 / self.memory_total_bytes as f64) as f32
        }
    }
}

/// One reading of every source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// All cores, in [0, 1], since the previous snapshot.
    pub cpu_utilisation: f32,
    pub memory_available_bytes: u64,
    pub memory_total_bytes: u64,
    /// Charge in [0, 1]; 1 without a battery.
    pub battery: f32,
    /// `None`: no GPU, or no NVML.
    pub gpu: Option<GpuSnapshot>,
}

impl Snapshot {
    pub fn memory_available_fraction(&self) -> f32 {
        if self.memory_total_bytes == 0 {
            0.0
        } else {
            (self.memory_available_bytes as f64 / self.memory_total_bytes as f64) as f32
        }
    }
}

/// The machine an actor runs on, for registration, records and per-hardware reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// `cpu` or `cuda`.
    pub device_kind: String,
    /// The GPU's name, or the CPU model.
    pub device_name: String,
    /// GPU memory, or system memory, in bytes.
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub cpu_cores: u32,
}

impl Hardware {
    /// A short label grouping actors of the same kind (`cuda NVIDIA H200`, `cpu AMD EPYC (2 cores)`).
    pub fn label(&self) -> String {
        if self.device_kind == "cuda" {
            format!("cuda {}", self.device_name)
        } else {
            format!("cpu {} ({} cores)", self.cpu_model, self.cpu_cores)
        }
    }
}

/// This machine's host name (`localhost` when the OS does not say).
pub fn host_name() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "localhost".into())
}

/// The first battery under a power-supply folder (`/sys/class/power_supply` on Linux).
#[derive(Debug, Clone)]
pub struct Battery {
    capacity: PathBuf,
}

impl Battery {
    /// Looks for a supply of `type` `Battery` with a `capacity` file.
    pub fn find(root: &Path) -> Option<Self> {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(root).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        entries.into_iter().find_map(|dir| {
            let kind = std::fs::read_to_string(dir.join("type")).ok()?;
            let capacity = dir.join("capacity");
            (kind.trim() == "Battery" && capacity.is_file()).then_some(Self { capacity })
        })
    }

    /// Charge in [0, 1], or why it could not be read.
    pub fn read(&self) -> Result<f32, String> {
        let text = std::fs::read_to_string(&self.capacity)
            .map_err(|e| format!("{}: {e}", self.capacity.display()))?;
        let pct: f32 = text.trim().parse().map_err(|_| {
            format!("{}: `{}` is not a percentage", self.capacity.display(), text.trim())
        })?;
        if !(0.0..=100.0).contains(&pct) {
            return Err(format!("{}: {pct} is outside 0-100", self.capacity.display()));
        }
        Ok(pct / 100.0)
    }
}

/// The sources an actor reads telemetry from; open once, snapshot per episode.
pub struct Telemetry {
    sys: Option<sysinfo::System>,
    battery: Option<Battery>,
    nvml: Option<(nvml_wrapper::Nvml, u32)>,
    battery_failed: bool,
    /// Every fallback in force, in words (also logged once at open).
    pub notes: Vec<String>,
}

impl Telemetry {
    /// Opens the sources for `cuda_device` (`None`: a CPU actor) with the OS's power supplies.
    pub fn open(cuda_device: Option<u32>) -> Self {
        Self::open_with(cuda_device, Path::new("/sys/class/power_supply"))
    }

    /// As [`Telemetry::open`], with power supplies looked up under `power_supply`.
    pub fn open_with(cuda_device: Option<u32>, power_supply: &Path) -> Self {
        let mut notes = Vec::new();
        let sys = match sysinfo::System::new() {
            Ok(mut s) => {
                s.refresh_cpu_usage();
                s.refresh_memory();
                Some(s)
            }
            Err(e) => {
                notes.push(format!(
                    "sysinfo is unavailable ({e}): CPU utilisation and available memory read as 0"
                ));
                None
            }
        };
        let battery = Battery::find(power_supply);
        if battery.is_none() {
            notes.push(format!(
                "no battery under {}: battery reads as 1.0 (mains power)",
                power_supply.display()
            ));
        }
        let nvml = match cuda_device {
            None => {
                notes.push("CPU actor: GPU features read as 0 (gpu_present 0)".into());
                None
            }
            Some(index) => match nvml_wrapper::Nvml::init() {
                Ok(n) => match n.device_by_index(index) {
                    Ok(_) => Some((n, index)),
                    Err(e) => {
                        notes.push(format!(
                            "NVML has no device {index} ({e}): GPU features read as 0"
                        ));
                        None
                    }
                },
                Err(e) => {
                    notes.push(format!("NVML is unavailable ({e}): GPU features read as 0"));
                    None
                }
            },
        };
        for n in &notes {
            tracing::info!(fallback = %n, "telemetry");
        }
        Self { sys, battery, nvml, battery_failed: false, notes }
    }

    /// Whether NVML answers for this actor's GPU.
    pub fn has_gpu(&self) -> bool {
        self.nvml.is_some()
    }

    /// Reads every source now.
    pub fn snapshot(&mut self) -> Snapshot {
        let (cpu_utilisation, memory_available_bytes, memory_total_bytes) = match self.sys.as_mut()
        {
            Some(s) => {
                s.refresh_cpu_usage();
                s.refresh_memory();
                (
                    (s.global_cpu_usage() / 100.0).clamp(0.0, 1.0),
                    s.available_memory(),
                    s.total_memory(),
                )
            }
            None => (0.0, 0, 0),
        };
        let battery = match &self.battery {
            Some(b) => match b.read() {
                Ok(v) => v,
                Err(e) => {
                    if !self.battery_failed {
                        tracing::warn!(error = %e, "battery unreadable: reading as 1.0 from now on");
                        self.notes.push(format!("battery unreadable ({e}): reads as 1.0"));
                        self.battery_failed = true;
                    }
                    1.0
                }
            },
            None => 1.0,
        };
        let gpu = self.nvml.as_ref().and_then(|(n, i)| gpu_snapshot(n, *i));
        Snapshot { cpu_utilisation, memory_available_bytes, memory_total_bytes, battery, gpu }
    }

    /// The hardware profile (`device` as the actor was told: `cpu`, `cuda:N`).
    pub fn hardware(&self, cuda_device: Option<u32>) -> Hardware {
        let (cpu_model, cpu_cores, memory) = match &self.sys {
            Some(s) => {
                let model = s
                    .cpus()
                    .first()
                    .map(|c| c.brand().trim().to_string())
                    .filter(|b| !b.is_empty());
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
                (model.unwrap_or_else(|| "unknown CPU".into()), cores, s.total_memory())
            }
            None => ("unknown CPU".into(), 1, 0),
        };
        let gpu = self.nvml.as_ref().and_then(|(n, i)| gpu_snapshot(n, *i));
        match (cuda_device, gpu) {
            (Some(_), Some(g)) => Hardware {
                device_kind: "cuda".into(),
                device_name: g.name,
                memory_bytes: g.memory_total_bytes,
                cpu_model,
                cpu_cores,
            },
            (Some(i), None) => Hardware {
                device_kind: "cuda".into(),
                device_name: format!("cuda:{i}"),
                memory_bytes: 0,
                cpu_model,
                cpu_cores,
            },
            (None, _) => Hardware {
                device_kind: "cpu".into(),
                device_name: cpu_model.clone(),
                memory_bytes: memory,
                cpu_model,
                cpu_cores,
            },
        }
    }
}

fn gpu_snapshot(nvml: &nvml_wrapper::Nvml, index: u32) -> Option<GpuSnapshot> {
    let d = nvml.device_by_index(index).ok()?;
    let mem = d.memory_info().ok()?;
    Some(GpuSnapshot {
        name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
        utilisation: d.utilization_rates().map_or(0.0, |u| (u.gpu as f32 / 100.0).clamp(0.0, 1.0)),
        memory_free_bytes: mem.free,
        memory_total_bytes: mem.total,
        power_w: d.power_usage().ok().map(|mw| mw as f32 / 1000.0),
        temperature_c: d
            .temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu)
            .ok(),
    })
}
