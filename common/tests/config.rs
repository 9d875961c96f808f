//! Run configs: the shipped files parse; a bad file fails with the path of the offending key.

use std::path::Path;

use casrap_common::config::RunConfig;

fn deploy(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

#[test]
fn the_shipped_local_config_parses() {
    let cfg = RunConfig::from_file(&deploy("local.yaml")).unwrap();
    assert_eq!(
        cfg.action_labels(),
        vec!["none", "heads:0.1", "heads:0.15", "ffn:0.25", "layers:0.125", "kv_window:4+32"]
    );
    assert_eq!(cfg.trainer.batch, 64);
    assert_eq!(cfg.state_dim(), 11);
    assert_eq!(cfg.budget.names(), vec!["strict", "normal", "lenient"]);
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
        (format!("{base}trainer:\n  hidden: [64, 0]\n"), "trainer.hidden: at most 14 layers"),
        (format!("{base}trainer:\n  nice: -5\n"), "trainer.nice: must be in 0 to 19"),
        (format!("{base}trainer:\n  nice: 20\n"), "trainer.nice: must be in 0 to 19"),
        (
            format!("{base}trainer:\n  epsilon: {{start: 1.0, end: 0.1}}\n"),
            "trainer.epsilon: missing field `decay_updates`",
        ),
        ("actions: []\n".to_string(), "deploy/x.yaml: actions: the action list is empty"),
        (
            "actions:\n  - {kind: none}\n  - {kind: heads, intensity: 1.5}\n".to_string(),
            "actions[1]: invalid action: `heads` intensity 1.5 is outside (0, 1)",
        ),
        ("actions:\n  - {kind: prune}\n".to_string(), "actions[0].kind: unknown variant `prune`"),
        (
            "actions:\n  - {kind: none}\n  - {kind: sparsity, intensity: 0.95}\n".to_string(),
            "actions[1]: invalid action: `sparsity` intensity 0.95 is outside [0, 0.9]",
        ),
        (
            "actions:\n  - {kind: none}\n  - {kind: lookup, draft: 0}\n".to_string(),
            "actions[1]: invalid action: `lookup` draft length 0 is outside 1..=15",
        ),
        (
            "actions:\n  - {kind: none}\n  - {kind: lookup, draft: 16}\n".to_string(),
            "actions[1]: invalid action: `lookup` draft length 16 is outside 1..=15 (the verifier takes 16 positions)",
        ),
        (
            "actions:\n  - {kind: none}\n  - {kind: sparsity, intensity: 0.2, draft: 20}\n".to_string(),
            "actions[1]: invalid action: `lookup` draft length 20",
        ),
        (
            "actions:\n  - {kind: none}\n  - {kind: none}\n".to_string(),
            "actions[1]: `none` is listed twice",
        ),
        (
            format!("{base}learner:\n  max_batch: -1\n"),
            "learner.max_batch: invalid type: integer `-1`",
        ),
        ("actions: [\n".to_string(), "deploy/x.yaml"),
        ("model: m\n".to_string(), "missing field `actions`"),
        (
            format!("{base}actors:\n  devices: [cpu, gpu0]\n"),
            "actors.devices[1]: `gpu0` is not cpu, cuda or cuda:N",
        ),
        (format!("{base}actors:\n  count: 0\n"), "actors.count: must be at least 1"),
        (format!("{base}actors:\n  episodes: many\n"), "actors.episodes: invalid type"),
        (format!("{base}actors:\n  batch: 64\n  max_unacked: 8\n"), "actors.batch / max_unacked"),
        (format!("{base}actors:\n  dtype: f64\n"), "actors.dtype: must be f32, bf16 or f16"),
        (format!("{base}reward:\n  clip: [1.0, -1.0]\n"), "reward.clip: needs finite [low, high]"),
        (
            format!("{base}reward:\n  alpha: -0.5\n"),
            "reward.alpha: must be finite and not negative",
        ),
        (format!("{base}reward:\n  gamma: 1\n"), "reward.gamma: unknown field `gamma`"),
        (format!("{base}state:\n  ppl_scale: cubic\n"), "state.ppl_scale: unknown variant `cubic`"),
        (
            format!("{base}actors:\n  prompt_format: jinja\n"),
            "actors.prompt_format: unknown variant `jinja`",
        ),
        (format!("{base}state:\n  ppl_max: 1\n"), "state.ppl_max: must be above 1"),
        (format!("{base}budget:\n  classes: []\n"), "budget.classes: needs at least one class"),
        (
            format!("{base}budget:\n  classes: [{{name: a}}, {{name: a}}]\n"),
            "budget.classes[1].name: `a` is listed twice",
        ),
        (
            format!("{base}budget:\n  classes: [{{name: a, limit: -0.1}}]\n"),
            "budget.classes[0].limit: must be finite and not negative",
        ),
        (
            format!("{base}budget:\n  classes: [{{name: a, cap: 1}}]\n"),
            "budget.classes[0].cap: unknown field `cap`",
        ),
        (
            format!("{base}budget:\n  assign: dependency\n  classes: [{{name: a}}]\n  from_dependency: {{high: b}}\n"),
            "budget.from_dependency.high: `b` is not one of the classes (a)",
        ),
        (
            format!("{base}budget:\n  assign: dependency\n  classes: [{{name: a}}]\n"),
            "budget.from_dependency: `assign: dependency` needs the mapping",
        ),
        (format!("{base}budget:\n  assign: sometimes\n"), "budget.assign: unknown variant `sometimes`"),
    ] {
        let e = error(&yaml);
        eprintln!("{e}");
        assert!(e.contains(want), "for\n{yaml}\nwanted `{want}`, got `{e}`");
    }
}

#[test]
fn overrides_survive_a_yaml_round_trip_and_episodes_are_shared_evenly() {
    let mut cfg = RunConfig::from_file(&deploy("local.yaml")).unwrap();
    cfg.actors.count = 3;
    cfg.actors.episodes = 10;
    cfg.actors.devices = vec!["cuda:0".into(), "cuda:1".into()];
    let back = RunConfig::from_yaml(&cfg.to_yaml().unwrap(), Path::new("x.yaml")).unwrap();
    assert_eq!(back, cfg);
    assert_eq!((0..3).map(|k| back.actors.episodes_of(k)).collect::<Vec<_>>(), vec![4, 3, 3]);
    assert_eq!(
        (0..3).map(|k| back.actors.device_of(k)).collect::<Vec<_>>(),
        vec!["cuda:0", "cuda:1", "cuda:0"]
    );
}

#[test]
fn the_shipped_real_model_config_parses_with_its_fitted_actions() {
    let cfg = RunConfig::from_file(&deploy("real.yaml")).unwrap();
    assert_eq!(cfg.model, "casrap-cache:models/smollm2-135m-instruct");
    let labels = cfg.action_labels();
    assert_eq!(labels[0], "none");
    // Every sparsity level fitted on served text (the committed calibration record) is an action.
    let path = deploy("../bench/real/calibration-sparsity-chat.json");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let fitted = record["fitted"].as_array().unwrap();
    assert!(fitted.len() >= 3, "{fitted:?}");
    for f in fitted {
        let want = f["action"].as_str().unwrap();
        assert!(labels.iter().any(|l| l == want), "{want} missing from {labels:?}");
    }
    assert!(labels.iter().any(|l| l.starts_with("lookup:")), "{labels:?}");
    assert_eq!(cfg.budget.names(), vec!["strict", "normal", "lenient"]);
}

#[test]
fn the_shipped_fleet_config_parses() {
    let cfg = RunConfig::from_file(&deploy("fleet.yaml")).unwrap();
    assert_eq!(
        (0..3).map(|k| cfg.actors.device_of(k)).collect::<Vec<_>>(),
        vec!["cuda:0", "cuda:1", "cpu"]
    );
    assert_eq!(cfg.actors.episodes_of(0) * 6, 3000);
}

#[test]
fn a_prompt_formats_name_is_the_one_configs_use() {
    use casrap_common::config::PromptFormat;
    for f in [PromptFormat::Raw, PromptFormat::Chat] {
        assert_eq!(serde_json::to_value(f).unwrap(), f.name());
    }
}
