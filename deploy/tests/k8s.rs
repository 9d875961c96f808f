//! Kubernetes manifests rendered from the fleet example: each document parses into its typed
//! Kubernetes API object (k8s-openapi), says what the run needs, and matches the golden file.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use casrap_common::config::RunConfig;
use casrap_deploy::k8s::{self, K8sOptions};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use serde::Deserialize;

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn options() -> K8sOptions {
    K8sOptions {
        image: "registry.example/casrap:0.1".into(),
        namespace: "casrap".into(),
        token: std::fs::read_to_string(here("tests/fixtures/token")).unwrap().trim().to_string(),
        storage: "10Gi".into(),
        storage_class: None,
    }
}

fn docs(text: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn fleet_manifests_parse_as_typed_objects_and_carry_the_run() {
    let cfg = RunConfig::from_file(&here("fleet.yaml")).unwrap();
    let text = k8s::render(&cfg, &options()).unwrap();
    let docs = docs(&text);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Service", "StatefulSet", "Job", "Job"]);

    let cm: ConfigMap = serde_yaml_ng::from_value(docs[0].clone()).unwrap();
    let pod_cfg =
        RunConfig::from_yaml(&cm.data.unwrap()["config.yaml"], Path::new("configmap")).unwrap();
    assert_eq!(pod_cfg.learner.dir, "/data");
    assert_eq!(pod_cfg.security.token_file.as_deref(), Some("/etc/casrap/token/token"));
    assert_eq!(pod_cfg.action_labels(), cfg.action_labels());

    let secret: Secret = serde_yaml_ng::from_value(docs[1].clone()).unwrap();
    assert_eq!(secret.string_data.unwrap()["token"], "golden-test-token");

    let svc: Service = serde_yaml_ng::from_value(docs[2].clone()).unwrap();
    let ports: Vec<i32> = svc.spec.unwrap().ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [50051, 9090]);

    let sts: StatefulSet = serde_yaml_ng::from_value(docs[3].clone()).unwrap();
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    let claim = &spec.volume_claim_templates.unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    let learner = &spec.template.spec.unwrap().containers[0];
    assert!(learner
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .any(|m| m.name == "data" && m.mount_path == "/data"));

    // fleet.yaml: 6 actors over [cuda:0, cuda:1, cpu]: 4 on GPUs, 2 on CPUs, 500 episodes each.
    let jobs: Vec<Job> =
        docs[4..].iter().map(|d| serde_yaml_ng::from_value(d.clone()).unwrap()).collect();
    for (job, (n, gpu)) in jobs.iter().zip([(4, true), (2, false)]) {
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            (spec.completions, spec.parallelism, spec.completion_mode.as_deref()),
            (Some(n), Some(n), Some("Indexed"))
        );
        let c = &spec.template.spec.as_ref().unwrap().containers[0];
        let limits = c.resources.as_ref().and_then(|r| r.limits.clone()).unwrap_or_default();
        assert_eq!(
            limits.get("nvidia.com/gpu").map(|q| q.0.as_str()),
            gpu.then_some("1"),
            "{:?}",
            job.metadata.name
        );
        let cmd = c.command.as_ref().unwrap().join(" ");
        assert!(
            cmd.contains("--learner http://casrap-fleet-learner:50051")
                && cmd.contains("$(JOB_COMPLETION_INDEX)")
                && cmd.contains("--episodes 500"),
            "{cmd}"
        );
    }
}

#[test]
fn the_rendering_matches_the_golden_file() {
    let cfg = RunConfig::from_file(&here("fleet.yaml")).unwrap();
    let text = k8s::render(&cfg, &options()).unwrap();
    let golden = std::fs::read_to_string(here("tests/fixtures/fleet.k8s.yaml")).unwrap();
    assert!(
        text == golden,
        "the rendering changed; if intended, run: casrap render k8s deploy/fleet.yaml --out deploy/tests/fixtures/fleet.k8s.yaml \
         --image registry.example/casrap:0.1 --namespace casrap --token-file deploy/tests/fixtures/token"
    );
}

#[test]
fn an_unusable_token_is_refused() {
    let cfg = RunConfig::from_file(&here("fleet.yaml")).unwrap();
    let e = k8s::render(&cfg, &K8sOptions { token: "two words".into(), ..options() })
        .unwrap_err()
        .to_string();
    assert!(e.contains("token"), "{e}");
}
