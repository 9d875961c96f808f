//! The learner's security over real gRPC on loopback: bearer tokens (none, wrong, right), TLS with a
//! generated CA (and client certificates when required), and the refusal to listen on a
//! non-loopback address without a token.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use casrap_common::config::{RunConfig, SecurityConfig, TlsConfig};
use casrap_proto::connect::Connection;
use casrap_proto::{fixtures, v1};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// A CA, a learner certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
struct Pki {
    ca: String,
    cert: String,
    key: String,
    client_cert: String,
    client_key: String,
    /// A client certificate naming a prefix of ids (`casrap-actor:rack2-*`).
    rack_cert: String,
    rack_key: String,
}

fn pki(dir: &Path) -> Pki {
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let ckey = KeyPair::generate().unwrap();
    let ccert = CertificateParams::new(vec!["actor-1".to_string()])
        .unwrap()
        .signed_by(&ckey, &ca, &ca_key)
        .unwrap();
    let rkey = KeyPair::generate().unwrap();
    let mut rack = CertificateParams::new(Vec::<String>::new()).unwrap();
    rack.subject_alt_names =
        vec![SanType::URI("casrap-actor:rack2-*".to_string().try_into().unwrap())];
    let rcert = rack.signed_by(&rkey, &ca, &ca_key).unwrap();
    Pki {
        rack_cert: write("rack.pem", rcert.pem()),
        rack_key: write("rack.key", rkey.serialize_pem()),
        ca: write("ca.pem", ca.pem()),
        cert: write("learner.pem", cert.pem()),
        key: write("learner.key", key.serialize_pem()),
        client_cert: write("actor.pem", ccert.pem()),
        client_key: write("actor.key", ckey.serialize_pem()),
    }
}

fn config(security: SecurityConfig) -> RunConfig {
    let mut cfg = RunConfig::from_yaml(
        "actions: [{kind: none}, {kind: ffn, intensity: 0.25}]\n",
        Path::new("t.yaml"),
    )
    .unwrap();
    cfg.security = security;
    cfg
}

fn info() -> v1::ActorInfo {
    fixtures::actor_info("actor-1", vec!["none".into(), "ffn:0.25".into()])
}

fn batch(session: u64) -> v1::TransitionBatch {
    fixtures::batch(
        "actor-1",
        vec![v1::Transition { action: 1, ..fixtures::transition(1) }],
        session,
    )
}

fn tls(p: &Pki, client: bool) -> TlsConfig {
    TlsConfig {
        cert: p.cert.clone(),
        key: p.key.clone(),
        ca: p.ca.clone(),
        domain: Some("localhost".into()),
        client_ca: client.then(|| p.ca.clone()),
        client_cert: client.then(|| p.client_cert.clone()),
        client_key: client.then(|| p.client_key.clone()),
    }
}

/// Registers and streams one transition; the status code on failure.
async fn exchange(conn: &Connection) -> Result<u32, String> {
    let mut c = conn.client().await?;
    let reg = c
        .register(info())
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut acks = c
        .stream_transitions(tokio_stream::iter(vec![batch(reg.session)]))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let ack = acks
        .message()
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .ok_or("no ack")?;
    Ok(ack.stored)
}

/// A learner started in-process on `listen` with its store in `dir`; it runs until `stop` is sent.
async fn learner(
    cfg: &RunConfig,
    listen: &str,
    dir: &Path,
) -> (casrap_learner::server::Learner, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let learner = casrap_learner::server::start(cfg, listen, dir, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    (learner, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_on_every_rpc_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let server_sec = SecurityConfig {
        token_file: Some(token_file.display().to_string()),
        tls: Some(tls(&p, false)),
        ..Default::default()
    };
    let (learner, stop) =
        learner(&config(server_sec.clone()), "127.0.0.1:0", &tmp.path().join("learner")).await;
    let url = format!("https://{}", learner.addr);

    // No token, and a wrong one: UNAUTHENTICATED, nothing stored.
    let none =
        Connection::new(&url, &SecurityConfig { token_file: None, ..server_sec.clone() }).unwrap();
    let e = exchange(&none).await.unwrap_err();
    assert!(e.contains("Unauthenticated") && e.contains("requires a bearer token"), "{e}");
    let wrong_file = tmp.path().join("wrong");
    std::fs::write(&wrong_file, "guess").unwrap();
    let wrong = Connection::new(
        &url,
        &SecurityConfig {
            token_file: Some(wrong_file.display().to_string()),
            ..server_sec.clone()
        },
    )
    .unwrap();
    let e = exchange(&wrong).await.unwrap_err();
    assert!(e.contains("Unauthenticated") && e.contains("wrong bearer token"), "{e}");
    let mut status = none.client().await.unwrap();
    assert_eq!(
        status.status(v1::StatusRequest::default()).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    assert_eq!(learner.shared.replay.total().unwrap(), 0);

    // Plain HTTP against the TLS learner does not get through.
    let plain = Connection::plain(&format!("http://{}", learner.addr));
    assert!(exchange(&plain).await.is_err());
    assert_eq!(learner.shared.replay.total().unwrap(), 0);

    // The right token over TLS: stored.
    let right = Connection::new(&url, &server_sec).unwrap();
    assert_eq!(exchange(&right).await.unwrap(), 1);
    assert_eq!(learner.shared.replay.total().unwrap(), 1);

    let _ = stop.send(());
    learner.wait().await.unwrap();
}

/// A learner that requires client certificates of a generated CA, with its PKI and settings.
async fn mtls_learner(
    dir: &Path,
) -> (Pki, SecurityConfig, casrap_learner::server::Learner, tokio::sync::oneshot::Sender<()>, String)
{
    let p = pki(dir);
    let server_sec = SecurityConfig { tls: Some(tls(&p, true)), ..Default::default() };
    let (learner, stop) =
        learner(&config(server_sec.clone()), "127.0.0.1:0", &dir.join("learner")).await;
    let url = format!("https://{}", learner.addr);
    (p, server_sec, learner, stop, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_when_required() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, server_sec, learner, stop, url) = mtls_learner(tmp.path()).await;
    let mut anonymous = tls(&p, false);
    anonymous.client_ca = None;
    let without =
        Connection::new(&url, &SecurityConfig { tls: Some(anonymous), ..server_sec.clone() })
            .unwrap();
    assert!(exchange(&without).await.is_err(), "a client without a certificate got through");
    let with = Connection::new(&url, &server_sec).unwrap();
    assert_eq!(exchange(&with).await.unwrap(), 1);
    let _ = stop.send(());
    learner.wait().await.unwrap();
}

/// With client certificates, a certificate names the actor ids its holder may use (a DNS name,
/// or a `casrap-actor:` URI naming a prefix): any other id is refused, so no other identity can
/// register, let alone supersede, an actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_name_the_actor_ids_they_may_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, server_sec, learner, stop, url) = mtls_learner(tmp.path()).await;
    let actions = || vec!["none".to_string(), "ffn:0.25".to_string()];
    let register = |conn: Connection, actor: &'static str| async move {
        let mut c = conn.client().await.unwrap();
        c.register(fixtures::actor_info(actor, actions())).await.unwrap().into_inner()
    };
    let named = Connection::new(&url, &server_sec).unwrap();
    assert!(register(named.clone(), "actor-1").await.accepted);
    let r = register(named, "actor-2").await;
    assert!(!r.accepted && r.session == 0, "{r:?}");
    assert!(
        r.reason.contains("does not name actor id `actor-2`") && r.reason.contains("actor-1"),
        "{}",
        r.reason
    );
    let mut rack_tls = tls(&p, true);
    rack_tls.client_cert = Some(p.rack_cert.clone());
    rack_tls.client_key = Some(p.rack_key.clone());
    let rack = Connection::new(&url, &SecurityConfig { tls: Some(rack_tls), ..Default::default() })
        .unwrap();
    assert!(register(rack.clone(), "rack2-node1-gpu0").await.accepted);
    let r = register(rack, "actor-1").await;
    assert!(!r.accepted && r.reason.contains("rack2-*"), "{}", r.reason);
    let _ = stop.send(());
    learner.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_address_needs_a_token_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let open = SecurityConfig::default();
    let e = match casrap_learner::server::start(
        &config(open),
        "0.0.0.0:0",
        &tmp.path().join("a"),
        std::future::pending(),
    )
    .await
    {
        Ok(_) => panic!("started on 0.0.0.0 without a token"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("refusing to listen") && e.contains("security.token_file"), "{e}");
    let insecure = SecurityConfig { allow_insecure: true, ..Default::default() };
    let (learner, stop) = learner(&config(insecure), "0.0.0.0:0", &tmp.path().join("b")).await;
    let _ = stop.send(());
    learner.wait().await.unwrap();
}
