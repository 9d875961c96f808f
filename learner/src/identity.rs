//! Who may use an actor id.
//!
//! - **Client certificates** (`security.tls.client_ca`): the certificate names the ids its holder
//!   may use, as subject-alternative names: a DNS name is one id, a URI `casrap-actor:ID` is one
//!   id and `casrap-actor:PREFIX*` every id that starts with PREFIX. An id the certificate does not
//!   name is refused, whatever else the registration carries.
//! - **Sessions**: every registration gets a session, a secret only its actor sees. An id is
//!   *held* by its session while a transition stream of it is open and for `learner.session_hold_s`
//!   after the last one closed; within that time only a registration that names the session (the
//!   actor's own reconnect) or carries the run's operator token may take the id.
//! - **Across learner restarts**: a session is its nonce and a MAC of the actor id and the nonce
//!   under the learner's key (`session.key`, kept next to the store), so after a restart the learner
//!   still recognises the sessions it issued. For `session_hold_s` after a start, an id that has
//!   transitions stored is held for whoever presents a session the learner issued for it.

use std::path::Path;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::error::{Error, Result};

/// The URI scheme a client certificate names actor ids with.
pub const CERT_URI_SCHEME: &str = "casrap-actor:";

/// Bytes of the learner's session key.
const KEY_BYTES: usize = 32;

/// Issues and recognises sessions, and says who may take an id.
pub struct Identity {
    key: hmac::Key,
    /// How long an id stays held after its last stream closed (and after the learner starts).
    pub hold: Duration,
    /// The MAC of the run's operator token (a registration carrying it may take a held id),
    /// compared in constant time.
    operator: Option<hmac::Tag>,
    started: Instant,
    /// Whether the key existed before this process: only then can sessions from before it
    /// exist, and ids be held for them after the start.
    key_from_before: bool,
}

impl Identity {
    /// Sessions signed by `key`.
    pub fn new(key: &[u8], hold: Duration, operator: Option<String>) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let operator = operator.filter(|t| !t.is_empty()).map(|t| hmac::sign(&key, t.as_bytes()));
        Self { key, hold, operator, started: Instant::now(), key_from_before: false }
    }

    /// A fresh key that lives as long as this process (tests, and learners without a folder).
    pub fn ephemeral(hold: Duration, operator: Option<String>) -> Self {
        let key: [u8; KEY_BYTES] = rand::random();
        Self::new(&key, hold, operator)
    }

    /// The key kept in `path` (created, readable by its owner only, when missing). A file that is
    /// not a key is an error that names it: a new key would silently disown every running actor.
    pub fn load_or_create(path: &Path, hold: Duration, operator: Option<String>) -> Result<Self> {
        let bad = |reason: String| Error::Security(format!("{}: {reason}", path.display()));
        match std::fs::read(path) {
            Ok(key) if key.len() == KEY_BYTES => {
                Ok(Self { key_from_before: true, ..Self::new(&key, hold, operator) })
            }
            Ok(key) => Err(bad(format!(
                "the learner's session key must be {KEY_BYTES} bytes, found {}; restore it, or delete it to disown every running actor's session",
                key.len()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; KEY_BYTES] = rand::random();
                casrap_common::config::write_private(path, &key).map_err(|e| bad(format!("cannot write the session key: {e}")))?;
                Ok(Self::new(&key, hold, operator))
            }
            Err(e) => Err(bad(format!("cannot read the session key: {e}"))),
        }
    }

    fn mac(&self, actor: &str, nonce: u32) -> u32 {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(actor.len() as u64).to_le_bytes());
        ctx.update(actor.as_bytes());
        ctx.update(&nonce.to_le_bytes());
        let tag = ctx.sign();
        let b = tag.as_ref();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// A new session of `actor`: a random nonce and its MAC (never 0, which means none).
    pub fn issue(&self, actor: &str) -> u64 {
        loop {
            let nonce: u32 = rand::random();
            let s = (u64::from(nonce) << 32) | u64::from(self.mac(actor, nonce));
            if s != 0 {
                return s;
            }
        }
    }

    /// Whether this learner's key issued `session` for `actor`.
    pub fn issued(&self, actor: &str, session: u64) -> bool {
        session != 0 && self.mac(actor, (session >> 32) as u32) == session as u32
    }

    /// Whether `token` is the run's operator token.
    pub fn is_operator(&self, token: &str) -> bool {
        self.operator.as_ref().is_some_and(|op| {
            !token.is_empty() && hmac::verify(&self.key, token.as_bytes(), op.as_ref()).is_ok()
        })
    }

    /// Whether ids with stored transitions are still held for the sessions issued before this
    /// process started: its key is from before, and it started less than the hold time ago.
    pub fn holds_earlier_sessions(&self) -> bool {
        self.key_from_before && self.started.elapsed() < self.hold
    }
}

/// The actor ids a client certificate names: its DNS names, and its `casrap-actor:` URIs (a
/// trailing `*` naming a prefix). An unparsable certificate names none.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return Vec::new();
    };
    let dns = cert.valid_dns_names().filter(|n| !n.starts_with('*')).map(str::to_string);
    let uris =
        cert.valid_uri_names().filter_map(|u| u.strip_prefix(CERT_URI_SCHEME)).map(str::to_string);
    dns.chain(uris).collect()
}

/// Whether any of `names` (see [`certificate_names`]) allows `actor`.
pub fn names_allow(names: &[String], actor: &str) -> bool {
    names.iter().any(|n| match n.strip_suffix('*') {
        Some(prefix) => actor.starts_with(prefix),
        None => n == actor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_recognised_for_their_actor_only() {
        let a = Identity::ephemeral(Duration::from_secs(1), None);
        let b = Identity::ephemeral(Duration::from_secs(1), None);
        let s = a.issue("host-1");
        assert!(a.issued("host-1", s));
        assert!(!a.issued("host-2", s), "a session of one actor is not another's");
        assert!(!b.issued("host-1", s), "another key did not issue it");
        assert!(!a.issued("host-1", s ^ 1) && !a.issued("host-1", 0));
        assert_ne!(a.issue("host-1"), s, "every registration gets a new session");
    }

    #[test]
    fn the_key_survives_a_restart_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("session.key");
        let hold = Duration::from_secs(1);
        let first = Identity::load_or_create(&path, hold, None).unwrap_or_else(|e| panic!("{e}"));
        let s = first.issue("a");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600), "the key is its owner's only");
        }
        let again = Identity::load_or_create(&path, hold, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.issued("a", s));
        std::fs::write(&path, b"short").unwrap_or_else(|e| panic!("{e}"));
        let err = Identity::load_or_create(&path, hold, None).err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|e| e.contains("session.key") && e.contains("32 bytes")),
            "{err:?}"
        );
    }

    #[test]
    fn operator_tokens_and_certificate_names() {
        let id = Identity::ephemeral(Duration::from_secs(1), Some("op-secret".into()));
        assert!(id.is_operator("op-secret"));
        assert!(!id.is_operator("op-secre") && !id.is_operator(""));
        assert!(!Identity::ephemeral(Duration::from_secs(1), None).is_operator(""));
        let names = vec!["node7-gpu0".to_string(), "rack2-*".to_string()];
        assert!(names_allow(&names, "node7-gpu0") && names_allow(&names, "rack2-node1-gpu3"));
        assert!(!names_allow(&names, "node7-gpu1") && !names_allow(&names, "rack3-x"));
        assert!(certificate_names(b"not a certificate").is_empty());
    }
}
