//! Kubernetes manifests rendered from a run config: the config as a ConfigMap, the bearer token as
//! a Secret, the learner as a one-replica StatefulSet with a persistent volume for its replay
//! store and checkpoints, a Service in front of it (gRPC and metrics), and the actors as Indexed
//! Jobs, one per kind of device (CUDA actors request `nvidia.com/gpu: 1`). An actor's id is
//! `actor-<kind>-<completion index>`, stable across pod restarts, so a restarted actor continues
//! its sequence.

use casrap_common::config::RunConfig;
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// What the cluster needs beyond the run config.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// Container image holding `casrap-learner` and `casrap-actor` (and the model, or a volume).
    pub image: String,
    pub namespace: String,
    /// The bearer token the Secret carries.
    pub token: String,
    /// Size of the learner's volume (replay store and checkpoints).
    pub storage: String,
    pub storage_class: Option<String>,
}

const GRPC_PORT: u16 = 50051;
const METRICS_PORT: u16 = 9090;

fn slug(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_string();
    if s.is_empty() {
        "run".into()
    } else {
        s.chars().take(40).collect()
    }
}

/// The manifests, in apply order, as JSON values (Kubernetes objects).
pub fn manifests(cfg: &RunConfig, o: &K8sOptions) -> Result<Vec<Value>> {
    if o.token.trim().is_empty() || !o.token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::process("k8s", "the token must be non-empty printable ASCII"));
    }
    let name = format!("casrap-{}", slug(&cfg.name));
    let learner = format!("{name}-learner");
    let ns = &o.namespace;
    let labels = |component: &str| json!({"app.kubernetes.io/name": "casrap", "app.kubernetes.io/instance": name, "app.kubernetes.io/component": component});

    // The config as the pods see it: the learner's folder on its volume, the token from the Secret.
    let mut pod_cfg = cfg.clone();
    pod_cfg.learner.dir = "/data".into();
    pod_cfg.learner.listen = format!("0.0.0.0:{GRPC_PORT}");
    pod_cfg.learner.metrics = Some(format!("0.0.0.0:{METRICS_PORT}"));
    pod_cfg.security.token_file = Some("/etc/casrap/token/token".into());
    let config_yaml = pod_cfg.to_yaml()?;

    let volumes = json!([
        {"name": "config", "configMap": {"name": format!("{name}-config")}},
        {"name": "token", "secret": {"secretName": format!("{name}-token")}},
    ]);
    let mut actor_volumes = volumes.clone();
    if let Some(v) = actor_volumes.as_array_mut() {
        v.push(json!({"name": "session", "emptyDir": {}}));
    }
    let mounts = |extra: Option<Value>| {
        let mut m = vec![
            json!({"name": "config", "mountPath": "/etc/casrap/config", "readOnly": true}),
            json!({"name": "token", "mountPath": "/etc/casrap/token", "readOnly": true}),
        ];
        m.extend(extra);
        Value::Array(m)
    };
    let mut out = vec![
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-config"), "namespace": ns, "labels": labels("config")},
            "data": {"config.yaml": config_yaml},
        }),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-token"), "namespace": ns, "labels": labels("token")},
            "type": "Opaque",
            "stringData": {"token": o.token},
        }),
    ];
    let mut claim = json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": o.storage}}},
    });
    if let Some(class) = &o.storage_class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    out.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": learner, "namespace": ns, "labels": labels("learner")},
        "spec": {
            "selector": labels("learner"),
            "ports": [
                {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": METRICS_PORT},
            ],
        },
    }));
    out.push(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": learner, "namespace": ns, "labels": labels("learner")},
        "spec": {
            "serviceName": learner,
            "replicas": 1,
            "selector": {"matchLabels": labels("learner")},
            "template": {
                "metadata": {"labels": labels("learner"), "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": METRICS_PORT.to_string()}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "learner",
                        "image": o.image,
                        "command": ["casrap-learner", "serve", "--config", "/etc/casrap/config/config.yaml"],
                        "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "metrics", "containerPort": METRICS_PORT}],
                        "volumeMounts": mounts(Some(json!({"name": "data", "mountPath": "/data"}))),
                        "readinessProbe": {"tcpSocket": {"port": GRPC_PORT}, "periodSeconds": 5},
                    }],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": [claim],
        },
    }));

    // Actors, one Indexed Job per device kind, their share of the run's actors and episodes.
    let a = &cfg.actors;
    let mut kinds: Vec<(String, Vec<usize>)> = Vec::new();
    for k in 0..a.count {
        let d = a.device_of(k);
        let kind = if d == "cpu" { "cpu".to_string() } else { "cuda".to_string() };
        match kinds.iter_mut().find(|(n, _)| *n == kind) {
            Some((_, v)) => v.push(k),
            None => kinds.push((kind, vec![k])),
        }
    }
    // With TLS the certificate files named in `security.tls` must be in the image or mounted.
    let scheme = if cfg.security.tls.is_some() { "https" } else { "http" };
    for (kind, members) in kinds {
        let n = members.len();
        let per_actor = members.iter().map(|&k| a.episodes_of(k)).max().unwrap_or(0);
        let gpu = kind == "cuda";
        let device = if gpu { "cuda:0" } else { "cpu" };
        let mut resources = json!({});
        if gpu {
            resources = json!({"limits": {"nvidia.com/gpu": "1"}});
        }
        out.push(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": format!("{name}-actors-{kind}"), "namespace": ns, "labels": labels("actor")},
            "spec": {
                "completionMode": "Indexed",
                "completions": n,
                "parallelism": n,
                "backoffLimit": 6 * n,
                "template": {
                    "metadata": {"labels": labels("actor"), "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": METRICS_PORT.to_string()}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{
                            "name": "actor",
                            "image": o.image,
                            "command": [
                                "casrap-actor", "run",
                                "--learner", format!("{scheme}://{learner}:{GRPC_PORT}"),
                                "--config", "/etc/casrap/config/config.yaml",
                                "--actor-id", format!("actor-{kind}-$(JOB_COMPLETION_INDEX)"),
                                "--episodes", per_actor.to_string(),
                                "--device", device,
                                "--metrics", format!("0.0.0.0:{METRICS_PORT}"),
                                // Kept across the container's restarts in its pod: a restarted
                                // actor reconnects as itself instead of waiting out its id's hold.
                                "--session-file", "/var/lib/casrap/session",
                            ],
                            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                            "resources": resources,
                            "volumeMounts": mounts(Some(json!({"name": "session", "mountPath": "/var/lib/casrap"}))),
                        }],
                        "volumes": actor_volumes,
                    },
                },
            },
        }));
    }
    Ok(out)
}

/// The manifests as one multi-document YAML file.
pub fn render(cfg: &RunConfig, o: &K8sOptions) -> Result<String> {
    let docs = manifests(cfg, o)?;
    let mut s = format!(
        "# Rendered by `casrap render k8s` from the run `{}`; apply with kubectl apply -f.\n",
        cfg.name
    );
    for d in docs {
        s += "---\n";
        s += &serde_yaml_ng::to_string(&d).map_err(|e| Error::process("k8s", e.to_string()))?;
    }
    Ok(s)
}
