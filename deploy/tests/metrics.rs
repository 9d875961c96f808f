//! Prometheus endpoints: the learner's (ingest, replay, updates, policy version, actors by
//! hardware) and a running actor process's (episodes, actions, tokens/s), scraped over HTTP.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use casrap_common::config::RunConfig;
use casrap_proto::connect::Connection;
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
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no `{series}` in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learner_exports_ingest_training_and_actors_by_hardware() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = RunConfig::from_yaml(
        "actions: [{kind: none}, {kind: ffn, intensity: 0.25}]\n",
        Path::new("t.yaml"),
    )
    .unwrap();
    cfg.learner.metrics = Some("127.0.0.1:0".into());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let learner = casrap_learner::server::start(&cfg, "127.0.0.1:0", tmp.path(), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let metrics = learner.metrics_addr.unwrap().to_string();
    let mut c = Connection::plain(&format!("http://{}", learner.addr)).client().await.unwrap();
    let hardware = v1::HardwareProfile {
        device_kind: "cuda".into(),
        device_name: "Test GPU \"X\"".into(),
        memory_bytes: 1,
        cpu_model: "c".into(),
        cpu_cores: 2,
    };
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
    let t = |seq| v1::Transition {
        seq,
        state: s.clone(),
        action: 1,
        reward: 0.25,
        next_state: s.clone(),
        done: true,
        metrics: None,
    };
    let batch = v1::TransitionBatch {
        actor_id: "a-1".into(),
        transitions: vec![t(1), t(2), t(3)],
        session: reg.session,
    };
    let mut acks =
        c.stream_transitions(tokio_stream::iter(vec![batch])).await.unwrap().into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().stored, 3);

    let text = tokio::task::spawn_blocking(move || scrape(&metrics)).await.unwrap();
    // OpenMetrics: the family is typed without the counter's `_total`, and the exposition ends.
    assert!(text.contains("# TYPE casrap_learner_transitions_stored counter"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
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
    cmd.args([
        "run",
        "--learner",
        &format!("http://{addr}"),
        "--actor-id",
        "m-1",
        "--episodes",
        "200",
        "--threads",
        "1",
        "--metrics",
        "127.0.0.1:0",
        "--config",
    ])
    .arg(&cfg);
    let mut actor = casrap_deploy::procs::Proc::spawn("actor", cmd, &log).unwrap();
    let t = Instant::now();
    let text = loop {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no episodes exported:\n{}",
            actor.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(200));
        let Some(m) = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("metrics on ").map(str::to_string))
        else {
            continue;
        };
        let text = scrape(&m);
        if text.lines().any(|l| l.starts_with("casrap_actor_episodes_total{") && !l.ends_with(" 0"))
        {
            break text;
        }
    };
    let episodes = text
        .lines()
        .find(|l| l.starts_with("casrap_actor_episodes_total{hardware=\"cpu "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(episodes.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0, "{text}");
    let by_action: f64 = text
        .lines()
        .filter(|l| l.starts_with("casrap_actor_actions_total{action="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(by_action >= 1.0, "{text}");
    // The rewards as a histogram: its count is the episodes', its sum what the dashboard averages.
    let count = text
        .lines()
        .find(|l| l.starts_with("casrap_actor_reward_count{hardware=\"cpu "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(count.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0, "{text}");
    assert!(text.lines().any(|l| l.starts_with("casrap_actor_reward_sum{")), "{text}");
    assert!(text.contains("casrap_actor_reward_bucket{"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("casrap_actor_dense_tokens_per_second{") && !l.ends_with("NaN")),
        "{text}"
    );
    actor.kill().unwrap();
    learner.stop(Duration::from_secs(30)).unwrap();
}

/// Every series the Grafana dashboard (`deploy/grafana/casrap.json`) queries is one the learner
/// or the actor exports, so a renamed metric cannot leave a panel silently empty.
#[test]
fn the_grafana_dashboard_queries_only_exported_series() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana/casrap.json")).unwrap(),
    )
    .unwrap();
    let sources = ["learner/src/service.rs", "actor/src/episodes/metrics.rs"]
        .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
        .join("\n");
    let mut seen = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("casrap_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A counter is registered without its `_total`, a histogram without the
                // `_sum` / `_count` / `_bucket` of its series.
                let family = ["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name);
                assert!(
                    sources.contains(&format!("\"{name}\""))
                        || sources.contains(&format!("\"{family}\"")),
                    "panel {:?} queries `{name}`, which nothing exports",
                    panel["title"]
                );
                seen += 1;
            }
        }
    }
    assert!(seen >= 15, "only {seen} series queried");
}

/// A port nothing listens on now (bound, read and released; the race is harmless on loopback).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` against a local HTTP server, the body parsed as JSON.
fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: casrap\r\n\r\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}\n{out}"))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A real Prometheus server (Debian's `prometheus`, provisioned by `scripts/services-up`) scrapes a
/// learner process and an actor process, and every query of the Grafana dashboard returns data.
#[test]
#[ignore = "needs a Prometheus server binary: run `scripts/test --services` (CI does)"]
fn a_real_prometheus_scrapes_both_and_every_dashboard_query_returns_data() {
    let prometheus = std::env::var("CASRAP_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let tmp = tempfile::tempdir().unwrap();
    let (learner_metrics, actor_metrics, web) = (free_port(), free_port(), free_port());
    let cfg = tmp.path().join("run.yaml");
    std::fs::write(
        &cfg,
        format!(
            "actions: [{{kind: none}}, {{kind: ffn, intensity: 0.25}}]\nlearner: {{dir: {}, metrics: \"127.0.0.1:{learner_metrics}\"}}\n\
             trainer: {{batch: 8, min_replay: 4, publish_every: 2}}\nactors: {{count: 1, episodes: 400, new_tokens: 4, pairs: 1, threads: 1}}\n",
            tmp.path().join("learner").display()
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: casrap\n    static_configs:\n      \
             - targets: [\"127.0.0.1:{learner_metrics}\", \"127.0.0.1:{actor_metrics}\"]\n"
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
    let mut cmd = std::process::Command::new(casrap_deploy::procs::locate("casrap-actor").unwrap());
    cmd.args([
        "run",
        "--learner",
        &format!("http://{addr}"),
        "--actor-id",
        "p-1",
        "--episodes",
        "400",
        "--threads",
        "1",
    ])
    .args(["--metrics", &format!("127.0.0.1:{actor_metrics}"), "--config"])
    .arg(&cfg);
    let mut actor =
        casrap_deploy::procs::Proc::spawn("actor", cmd, &tmp.path().join("actor.log")).unwrap();
    let mut prom = std::process::Command::new(&prometheus);
    prom.arg(format!("--config.file={}", tmp.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", tmp.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"));
    let mut prom =
        casrap_deploy::procs::Proc::spawn("prometheus", prom, &tmp.path().join("prometheus.log"))
            .unwrap_or_else(|e| {
                panic!("cannot start `{prometheus}` (provision it with scripts/services-up): {e}")
            });
    let web = format!("127.0.0.1:{web}");

    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/casrap.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    let t = Instant::now();
    let mut empty = exprs.clone();
    while !empty.is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(150),
            "after {:?} these dashboard queries still return nothing: {empty:?}\nprometheus:\n{}\nactor:\n{}",
            t.elapsed(),
            prom.log_tail(10),
            actor.log_tail(10)
        );
        std::thread::sleep(Duration::from_secs(1));
        empty.retain(|expr| {
            if std::net::TcpStream::connect(&web).is_err() {
                return true; // Prometheus is still starting
            }
            let r = get_json(&web, &format!("/api/v1/query?query={}", url_encode(expr)));
            assert_eq!(r["status"], "success", "{expr}: {r}");
            r["data"]["result"].as_array().is_none_or(|v| v.is_empty())
        });
    }
    // Both targets are up, and the stored counter Prometheus holds is the one the learner reports.
    let up = get_json(&web, "/api/v1/query?query=up");
    let ups: Vec<&str> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap())
        .collect();
    assert_eq!(ups, ["1", "1"], "{up}");
    let stored = get_json(&web, "/api/v1/query?query=casrap_learner_transitions_stored_total");
    let stored: f64 = stored["data"]["result"][0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(stored >= 1.0, "{stored}");
    prom.kill().unwrap();
    actor.kill().unwrap();
    learner.stop(Duration::from_secs(30)).unwrap();
}
