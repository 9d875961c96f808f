//! Run configs: the shipped files parse; a bad file fails with the path of the offending key.

use std::path::Path;

use casrap_common::config::RunConfig;

fn deploy(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

#[test]
fn the_shipped_local_config_parses() {
    let cfg = RunConfig::from_file(&deploy("local.yaml")).unwrap();
    assert_eq!(cfg.action_labels(), vec!["none", "heads:0.1", "heads:0.15", "ffn:0.25", "layers:0.125", "kv_window:4+32"]);
    assert_eq!(cfg.trainer.batch, 64);
    assert_eq!(cfg.state_dim(), 9);
}

fn error(yaml: &str) -> String {
    RunConfig::from_yaml(yaml, Path::new("deploy/x.yaml")).expect_err("the file is bad").to_string()
}

#[test]
fn bad_files_name_the_key() {
    let base = "actions:\n  - {kind: none}\n  - {kind: layers, intensity: 0.125}\n";
    for (yaml, want) in [
        (format!("{base}trainer:\n  lrr: 0.1\n"), "deploy/x.yaml: trainer.lrr: "),
        (format!("{base}trainer:\n  lr: fast\n"), "deploy/x.yaml: trainer.lr: invalid type"),
        (format!("{base}trainer:\n  gamma: 1.5\n"), "trainer.gamma: must be in [0, 1]"),
        (format!("{base}trainer:\n  epsilon: {{start: 1.0, end: 0.1}}\n"), "trainer.epsilon: missing field `decay_updates`"),
        ("actions: []\n".to_string(), "deploy/x.yaml: actions: the action list is empty"),
        ("actions:\n  - {kind: none}\n  - {kind: heads, intensity: 1.5}\n".to_string(), "actions[1]: invalid action: `heads` intensity 1.5 is outside (0, 1)"),
        ("actions:\n  - {kind: prune}\n".to_string(), "actions[0].kind: unknown variant `prune`"),
        ("actions:\n  - {kind: none}\n  - {kind: none}\n".to_string(), "actions[1]: `none` is listed twice"),
        (format!("{base}learner:\n  max_batch: -1\n"), "learner.max_batch: invalid type: integer `-1`"),
        ("actions: [\n".to_string(), "deploy/x.yaml"),
        ("model: m\n".to_string(), "missing field `actions`"),
    ] {
        let e = error(&yaml);
        eprintln!("{e}");
        assert!(e.contains(want), "for\n{yaml}\nwanted `{want}`, got `{e}`");
    }
}
