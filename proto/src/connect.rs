//! How a client reaches the learner: its URL, the TLS settings and bearer token of the run's
//! `security:` section, and a connected [`Client`] that sends the token with every request.
//! Actors stream through it; the orchestrator polls `Status` with it.

use std::time::Duration;

use casrap_common::config::SecurityConfig;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::LearnerClient;

/// Adds `authorization: Bearer <token>` to every request when a token is set.
#[derive(Debug, Clone)]
pub struct TokenInterceptor(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A learner client carrying the run's token.
pub type Client = LearnerClient<InterceptedService<Channel, TokenInterceptor>>;

/// How to reach the learner: its URL, TLS settings and bearer token (the run's `security:`).
#[derive(Debug, Clone)]
pub struct Connection {
    pub url: String,
    tls: Option<ClientTlsConfig>,
    token: TokenInterceptor,
}

impl Connection {
    /// Reads the token and certificates `sec` names; errors name the field and file.
    pub fn new(url: &str, sec: &SecurityConfig) -> casrap_common::Result<Self> {
        let token = match sec.token()? {
            Some(t) => Some(MetadataValue::try_from(format!("Bearer {t}")).map_err(|e| {
                casrap_common::Error::Invalid { what: "bearer token".into(), reason: e.to_string() }
            })?),
            None => None,
        };
        let read = |path: &str| {
            std::fs::read(path)
                .map_err(|source| casrap_common::Error::Io { path: path.into(), source })
        };
        let tls = match &sec.tls {
            None => None,
            Some(t) => {
                let mut c =
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&t.ca)?));
                if let Some(d) = &t.domain {
                    c = c.domain_name(d.clone());
                }
                if let (Some(cert), Some(key)) = (&t.client_cert, &t.client_key) {
                    c = c.identity(tonic::transport::Identity::from_pem(read(cert)?, read(key)?));
                }
                Some(c)
            }
        };
        Ok(Self { url: url.to_string(), tls, token: TokenInterceptor(token) })
    }

    /// A plain connection (no TLS, no token): loopback tests and local runs.
    pub fn plain(url: &str) -> Self {
        Self { url: url.to_string(), tls: None, token: TokenInterceptor(None) }
    }

    /// Connects (5 s timeout) and wraps the channel with the token.
    pub async fn client(&self) -> std::result::Result<Client, String> {
        let mut endpoint =
            Endpoint::from_shared(self.url.clone()).map_err(|e| format!("bad URL: {e}"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(|e| format!("TLS: {e}"))?;
        }
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        Ok(LearnerClient::with_interceptor(channel, self.token.clone())
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES))
    }
}
