//! Reports from a small committed record file (`fixtures/run-small`, made by
//! scripts/make-report-fixture): every plot is drawn, summary.json follows the records and is
//! reproduced exactly, and a corrupt record is named without losing what was written before.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const PLOTS: &[&str] = &[
    "tokens_per_s.png",
    "inference_time.png",
    "perplexity.png",
    "length_vs_perplexity.png",
    "action_usage.png",
    "time_per_action.png",
    "perplexity_per_action.png",
    "reward_epsilon.png",
    "training_loss.png",
    "quality_vs_speed.png",
    "hardware_speedup.png",
    "hardware_actions.png",
];

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-small");
    std::fs::create_dir_all(to.join("learner")).unwrap();
    for f in ["config.yaml", "episodes.jsonl", "learner/training.jsonl"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn report(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_casrap")).arg("report").arg(dir).output().unwrap()
}

#[test]
fn every_plot_is_drawn_and_the_summary_follows_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    copy_fixture(&run);
    let out = report(&run);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for name in PLOTS {
        let bytes =
            std::fs::read(run.join("plots").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        let (w, h) = (
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
            u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
        );
        assert_eq!((w, h), (1100, 650), "{name}");
        assert!(
            bytes.len() > 12_000,
            "{name} is suspiciously small ({} bytes): nothing drawn?",
            bytes.len()
        );
    }
    // The summary's figures, recomputed here from the raw lines.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("episodes.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["episodes"].as_u64().unwrap() as usize, lines.len());
    let rows = summary["per_action"].as_array().unwrap();
    assert_eq!(
        rows.iter().map(|r| r["stats"]["episodes"].as_u64().unwrap()).sum::<u64>() as usize,
        lines.len()
    );
    for r in rows {
        let action = r["action"].as_str().unwrap();
        let rewards: Vec<f64> = lines
            .iter()
            .filter(|l| l["action"] == action)
            .map(|l| l["reward"].as_f64().unwrap())
            .collect();
        let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
        assert!((r["stats"]["mean_reward"].as_f64().unwrap() - mean).abs() < 1e-12, "{action}");
        let logs: Vec<f64> = lines
            .iter()
            .filter(|l| l["action"] == action)
            .map(|l| l["speedup"].as_f64().unwrap().ln())
            .collect();
        let gmean = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
        assert!((r["stats"]["speedup"].as_f64().unwrap() - gmean).abs() < 1e-12, "{action}");
    }
    let text = std::fs::read_to_string(run.join("report.txt")).unwrap();
    for r in rows {
        assert!(text.contains(&format!("| {} |", r["action"].as_str().unwrap())), "{text}");
    }
    // Regenerating gives the same bytes.
    let first = std::fs::read(run.join("summary.json")).unwrap();
    assert!(report(&run).status.success());
    assert_eq!(std::fs::read(run.join("summary.json")).unwrap(), first);
}

#[test]
fn a_corrupt_record_is_named_and_the_previous_report_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    copy_fixture(&run);
    assert!(report(&run).status.success());
    let before = std::fs::read(run.join("summary.json")).unwrap();
    let text = std::fs::read_to_string(run.join("episodes.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"actor_id\": \"actor-0\", \"seq\": 3, \"action\": ";
    std::fs::write(run.join("episodes.jsonl"), lines.join("\n")).unwrap();
    let out = report(&run);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("episodes.jsonl: line 3"), "{stderr}");
    assert_eq!(std::fs::read(run.join("summary.json")).unwrap(), before);
}

/// Test mode's per-class cost and per-category choices follow the results prompt by prompt: each
/// class's perplexity change is the mean over its prompts of the chosen action's, and the category
/// cells partition the prompts.
#[test]
fn test_mode_tables_of_cost_per_class_and_choices_per_category_follow_the_results() {
    use casrap_deploy::report::policy_tables::{read, TestSummary};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/test-real-chat-240");
    let results = read(&dir.join("results.jsonl")).unwrap();
    let cfg = casrap_common::config::RunConfig::from_file(&dir.join("config.yaml")).unwrap();
    let s = TestSummary::from_results(&results, &cfg.reward, &cfg.budget);
    assert_eq!(s.classes.len(), 3);
    for c in &s.classes {
        let picked: Vec<&casrap_common::record::ActionResult> =
            results.iter().filter(|r| r.budget == c.class).map(|r| &r.results[r.greedy]).collect();
        assert_eq!(picked.len(), c.prompts);
        let ppl = picked.iter().map(|a| a.ppl_change).sum::<f64>() / picked.len() as f64;
        assert!((c.policy_ppl_change - ppl).abs() < 1e-12, "{}: {ppl}", c.class);
        let log = picked.iter().map(|a| a.speedup.ln()).sum::<f64>() / picked.len() as f64;
        assert!((c.policy_speedup - log.exp()).abs() < 1e-12, "{}", c.class);
        let limit = cfg.budget.classes.iter().find(|k| k.name == c.class).unwrap().limit;
        assert_eq!(c.limit, limit);
    }
    assert_eq!(s.categories.iter().map(|c| c.prompts).sum::<usize>(), results.len());
    for c in &s.categories {
        let n = results.iter().filter(|r| r.category == c.category && r.budget == c.class).count();
        assert_eq!((c.prompts, c.policy.values().sum::<usize>()), (n, n), "{c:?}");
    }
}
