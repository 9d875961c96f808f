//! Telemetry fallbacks on a machine without GPU or battery, batteries from a fake power-supply
//! folder, the state vector's bounds, the complexity normalisation and the reward.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use casrap_common::config::RewardConfig;
use casrap_common::state::{self, Complexity};
use casrap_common::state::{PplScale, StateConfig};
use casrap_common::telemetry::{Battery, GpuSnapshot, Snapshot, Telemetry};

fn supply(root: &Path, name: &str, kind: &str, capacity: Option<&str>) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
    if let Some(c) = capacity {
        std::fs::write(d.join("capacity"), format!("{c}\n")).unwrap();
    }
}

#[test]
fn without_gpu_or_battery_every_fallback_is_documented_and_in_range() {
    let tmp = tempfile::tempdir().unwrap();
    supply(tmp.path(), "AC", "Mains", None);
    // No CUDA device asked for; a CUDA device where NVML is absent (this machine) falls back too.
    for cuda in [None, Some(0)] {
        let mut t = Telemetry::open_with(cuda, tmp.path());
        if cuda.is_some() && t.has_gpu() {
            continue; // a machine with NVML: nothing to check here
        }
        assert!(t.notes.iter().any(|n| n.contains("battery reads as 1.0")), "{:?}", t.notes);
        assert!(t.notes.iter().any(|n| n.contains("GPU features read as 0")), "{:?}", t.notes);
        let s = t.snapshot();
        assert_eq!(s.battery, 1.0);
        assert!(s.gpu.is_none());
        assert!((0.0..=1.0).contains(&s.cpu_utilisation));
        assert!(s.memory_total_bytes > 0 && s.memory_available_bytes <= s.memory_total_bytes);
        let v = state::vector(&s, &Complexity::new(50, 300.0, &StateConfig::default()), 0.5);
        assert_eq!(v.len(), state::FEATURES.len());
        assert_eq!((v[2], v[3], v[4], v[5]), (1.0, 0.0, 0.0, 0.0), "battery 1, GPU absent: {v:?}");
        let hw = t.hardware(cuda);
        assert_eq!(hw.device_kind, if cuda.is_some() { "cuda" } else { "cpu" });
        assert!(hw.cpu_cores >= 1 && !hw.cpu_model.is_empty());
    }
}

#[test]
fn a_battery_is_read_from_the_power_supply_folder_and_bad_readings_fall_back() {
    let tmp = tempfile::tempdir().unwrap();
    supply(tmp.path(), "AC", "Mains", None);
    supply(tmp.path(), "BAT0", "Battery", Some("57"));
    let b = Battery::find(tmp.path()).unwrap();
    assert!((b.read().unwrap() - 0.57).abs() < 1e-6);
    let mut t = Telemetry::open_with(None, tmp.path());
    assert!((t.snapshot().battery - 0.57).abs() < 1e-6);
    assert!(!t.notes.iter().any(|n| n.contains("battery")), "{:?}", t.notes);
    // The driver starts reporting garbage: 1.0, said once.
    std::fs::write(tmp.path().join("BAT0/capacity"), "unknown\n").unwrap();
    assert!(b.read().unwrap_err().contains("not a percentage"));
    assert_eq!(t.snapshot().battery, 1.0);
    assert_eq!(t.snapshot().battery, 1.0);
    assert_eq!(t.notes.iter().filter(|n| n.contains("battery unreadable")).count(), 1);
    std::fs::write(tmp.path().join("BAT0/capacity"), "140\n").unwrap();
    assert!(b.read().unwrap_err().contains("outside 0-100"));
}

#[test]
fn gpu_features_come_from_the_snapshot() {
    let s = Snapshot {
        cpu_utilisation: 0.25,
        memory_available_bytes: 3,
        memory_total_bytes: 4,
        battery: 0.5,
        gpu: Some(GpuSnapshot {
            name: "G".into(),
            utilisation: 0.8,
            memory_free_bytes: 1,
            memory_total_bytes: 4,
            power_w: Some(300.0),
            temperature_c: Some(60),
        }),
    };
    let v = state::vector(&s, &Complexity::new(100, 2000.0, &StateConfig::default()), 0.5);
    assert_eq!(&v[..6], &[0.25, 0.75, 0.5, 1.0, 0.8, 0.25]);
    assert_eq!((v[6], v[7]), (0.5, 1.0));
    assert!((v[8] - (0.6 * 0.5 + 0.4)).abs() < 1e-6);
    assert_eq!(state::FEATURES[9], "quality_budget");
    assert_eq!(v[9], 0.5);
    // The budget feature is clamped like the others.
    assert_eq!(state::vector(&s, &Complexity::new(1, 1.0, &StateConfig::default()), 7.0)[9], 1.0);
}

#[test]
fn complexity_normalisation_spreads_and_clamps() {
    let log = StateConfig::default();
    let lin = StateConfig { ppl_scale: PplScale::Linear, ppl_max: 50.0, ..StateConfig::default() };
    // The embedded model's 10th and 90th percentile prompt perplexities stay apart on the log scale...
    let (p10, p90) = (Complexity::new(10, 181.0, &log), Complexity::new(10, 572.0, &log));
    assert!(p90.perplexity_norm - p10.perplexity_norm > 0.1, "{p10:?} {p90:?}");
    // ...and both saturate on the seed's linear scale.
    assert_eq!(
        (
            Complexity::new(10, 181.0, &lin).perplexity_norm,
            Complexity::new(10, 572.0, &lin).perplexity_norm
        ),
        (1.0, 1.0)
    );
    for ppl in [0.5, 1.0, 1e9, f64::INFINITY, f64::NAN] {
        for cfg in [&log, &lin] {
            let c = Complexity::new(1000, ppl, cfg);
            assert!(
                (0.0..=1.0).contains(&c.perplexity_norm) && (0.0..=1.0).contains(&c.complexity),
                "{ppl}: {c:?}"
            );
            assert_eq!(c.tokens_norm, 1.0);
        }
    }
}

#[test]
fn reward_follows_the_configured_formula_and_refuses_non_finite_inputs() {
    let r = RewardConfig { alpha: 0.7, beta: 0.3, slowdown_penalty: 0.5, clip: Some([-1.0, 1.0]) };
    assert!((r.reward(1.2, 0.1).unwrap() - (0.7 * 0.2 - 0.3 * 0.1)).abs() < 1e-12);
    // Quality gains are not rewarded; slowdowns pay the extra penalty.
    assert!((r.reward(1.0, -0.5).unwrap()).abs() < 1e-12);
    assert!((r.reward(0.8, 0.0).unwrap() - (0.7 * -0.2 - 0.5 * 0.2)).abs() < 1e-12);
    assert_eq!(r.reward(10.0, 0.0), Some(1.0));
    assert_eq!(r.reward(1.0, 100.0), Some(-1.0));
    assert_eq!(r.reward(f64::NAN, 0.0), None);
    assert_eq!(r.reward(1.0, f64::INFINITY), None);
    assert_eq!(RewardConfig { clip: None, ..r }.reward(10.0, 0.0), Some(0.7 * 9.0));
}

#[test]
fn a_budget_class_replaces_beta_and_penalises_what_exceeds_its_limit() {
    use casrap_common::budget::Class;
    let r = RewardConfig { alpha: 0.7, beta: 0.3, slowdown_penalty: 0.0, clip: None };
    // The seed's reward is the class without a limit or a beta of its own.
    assert_eq!(r.reward_for(1.2, 0.1, &Class::seed("any")), r.reward(1.2, 0.1));
    let strict =
        Class { name: "strict".into(), beta: Some(1.0), limit: Some(0.02), over_penalty: 5.0 };
    let within = r.reward_for(1.2, 0.01, &strict).unwrap();
    assert!((within - (0.7 * 0.2 - 1.0 * 0.01)).abs() < 1e-12, "{within}");
    let over = r.reward_for(1.2, 0.1, &strict).unwrap();
    assert!((over - (0.7 * 0.2 - 1.0 * 0.1 - 5.0 * 0.08)).abs() < 1e-12, "{over}");
    // A quality gain is never penalised.
    assert!((r.reward_for(1.0, -0.3, &strict).unwrap()).abs() < 1e-12);
    assert_eq!(r.reward_for(f64::NAN, 0.0, &strict), None);
}
