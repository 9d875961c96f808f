//! Prometheus endpoints: the learner's (ingest, replay, updates, policy version, actors by
//! hardware) and a running actor process's (episodes, actions, tokens/s), scraped over HTTP.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use casrap_actor::client::Connection;
use casrap_common::config::RunConfig;
use casrap_proto::v1;

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: casrap\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

fn value(text: &str, series: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' ')).unwrap_or_else(|| panic!("no `{series}` in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learner_exports_ingest_training_and_actors_by_hardware() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::from_yaml("actions: [{kind: none}, {kind: ffn, intensity: 0.25}]\n", Path::new("t.yaml")).unwrap();
    cfg.learner.metrics = Some("127.0.0.1:0".into());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let learner = casrap_learner::server::start(&cfg, "127.0.0.1:0", tmp.path(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let metrics = learner.metrics_addr.unwrap().to_string();
    let mut c = Connection::plain(&format!("http://{}", learner.addr)).client().await.unwrap();
    let hardware = v1::HardwareProfile { device_kind: "cuda".into(), device_name: "Test GPU \"X\"".into(), memory_bytes: 1, cpu_model: "c".into(), cpu_cores: 2 };
    let info = v1::ActorInfo {
        actor_id: "a-1".into(),
        hardware: Some(hardware),
        actions: cfg.action_labels(),
        state_layout_version: casrap_common::state::LAYOUT_VERSION,
        state_dim: cfg.state_dim() as u32,
        ..Default::default()
    };
    let reg = c.register(info).await.unwrap().into_inner();
    assert!(reg.accepted);
    let s = vec![0.5; cfg.state_dim()];
    let t = |seq| v1::Transition { seq, state: s.clone(), action: 1, reward: 0.25, next_state: s.clone(), done: true, metrics: None };
    let batch = v1::TransitionBatch { actor_id: "a-1".into(), transitions: vec![t(1), t(2), t(3)], session: reg.session };
    let mut acks = c.stream_transitions(tokio_stream::iter(vec![batch])).await.unwrap().into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().stored, 3);

    let text = tokio::task::spawn_blocking(move || scrape(&metrics)).await.unwrap();
    assert!(text.contains("# TYPE casrap_learner_transitions_stored_total counter"), "{text}");
    assert_eq!(value(&text, "casrap_learner_transitions_stored_total"), 3.0);
    assert_eq!(value(&text, "casrap_learner_replay_size"), 3.0);
    assert!(value(&text, "casrap_learner_policy_version") >= 1.0);
    assert!(value(&text, "casrap_learner_ingest_per_second") > 0.0);
    assert_eq!(value(&text, "casrap_learner_recent_mean_reward"), 0.25);
    assert_eq!(value(&text, "casrap_learner_actors{hardware=\"cuda Test GPU \\\"X\\\"\"}"), 1.0);
    let _ = stop.send(());
    learner.wait().await.unwrap();
}

#[test]
fn a_running_actor_exports_its_episodes_actions_and_speed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.yaml");
    std::fs::write(
        &cfg,
        format!(
            "actions: [{{kind: none}}, {{kind: ffn, intensity: 0.25}}]\nlearner: {{dir: {}}}\nactors: {{count: 1, episodes: 200, new_tokens: 4, pairs: 1, threads: 1}}\n",
            tmp.path().join("learner").display()
        ),
    )
    .unwrap();
    let (mut learner, addr) = casrap_deploy::procs::spawn_learner(
        &casrap_deploy::procs::locate("casrap-learner").unwrap(),
        &cfg,
        "127.0.0.1:0",
        &tmp.path().join("learner"),
        &tmp.path().join("learner.log"),
        Duration::from_secs(60),
    )
    .unwrap();
    let log = tmp.path().join("actor.log");
    let mut cmd = std::process::Command::new(casrap_deploy::procs::locate("casrap-actor").unwrap());
    cmd.args(["run", "--learner", &format!("http://{addr}"), "--actor-id", "m-1", "--episodes", "200", "--threads", "1", "--metrics", "127.0.0.1:0", "--config"]).arg(&cfg);
    let mut actor = casrap_deploy::procs::Proc::spawn("actor", cmd, &log).unwrap();
    let t = Instant::now();
    let text = loop {
        assert!(t.elapsed() < Duration::from_secs(120), "no episodes exported:\n{}", actor.log_tail(20));
        std::thread::sleep(Duration::from_millis(200));
        let Some(m) = std::fs::read_to_string(&log).unwrap_or_default().lines().find_map(|l| l.strip_prefix("metrics on ").map(str::to_string)) else { continue };
        let text = scrape(&m);
        if text.lines().any(|l| l.starts_with("casrap_actor_episodes_total{") && !l.ends_with(" 0")) {
            break text;
        }
    };
    let episodes = text.lines().find(|l| l.starts_with("casrap_actor_episodes_total{hardware=\"cpu ")).unwrap_or_else(|| panic!("{text}"));
    assert!(episodes.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0, "{text}");
    let by_action: f64 = text.lines().filter(|l| l.starts_with("casrap_actor_actions_total{action=")).map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()).sum();
    assert!(by_action >= 1.0, "{text}");
    assert!(text.lines().any(|l| l.starts_with("casrap_actor_dense_tokens_per_second{") && !l.ends_with("NaN")), "{text}");
    actor.kill().unwrap();
    learner.stop(Duration::from_secs(30)).unwrap();
}

/// Every series the Grafana dashboard (`deploy/grafana/casrap.json`) queries is one the learner
/// or the actor exports, so a renamed metric cannot leave a panel silently empty.
#[test]
fn the_grafana_dashboard_queries_only_exported_series() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("deploy/grafana/casrap.json")).unwrap()).unwrap();
    let sources = ["learner/src/service.rs", "actor/src/episodes.rs"].map(|f| std::fs::read_to_string(root.join(f)).unwrap()).join("\n");
    let mut seen = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("casrap_") {
                let name: String = expr[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                assert!(sources.contains(&format!("\"{name}\"")), "panel {:?} queries `{name}`, which nothing exports", panel["title"]);
                seen += 1;
            }
        }
    }
    assert!(seen >= 15, "only {seen} series queried");
}
