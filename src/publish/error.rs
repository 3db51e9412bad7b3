//! What can go wrong when setting up or running the publisher, each saying
//! what failed and what to do.
//!
//! Broker trouble (refused, unreachable, TLS handshake) is not here: the
//! session retries it forever and reports it through
//! [`PublishStatus`](super::PublishStatus), because the outbox keeps every
//! result until the broker is back.

use std::path::PathBuf;
use tokio_rustls::rustls::pki_types::pem::Error as PemError;

/// A boxed error from an [`Outbox`](super::Outbox) implementation.
pub type OutboxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("mqtt.url `{url}` is not a broker address: {reason}")]
    BadUrl { url: String, reason: String },

    #[error(
        "cannot read {what} from {path}: {source} \
         (check that mqtt.{key} names a readable PEM file)"
    )]
    TlsFile {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
        #[source]
        source: PemError,
    },

    #[error("{path} holds no {what} (mqtt.{key} must be a PEM file with one)")]
    TlsEmpty {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
    },

    #[error("mqtt.client_cert and mqtt.client_key must be set together (mutual TLS needs both)")]
    HalfClientAuth,

    #[error(
        "no trusted CA certificates for mqtts://: the system store is empty or \
         unreadable ({detail}); set mqtt.ca_file to the broker's CA bundle"
    )]
    NoTrustRoots { detail: String },

    #[error("cannot set up TLS to the broker: {0} (check the CA, client certificate and key)")]
    Tls(#[source] tokio_rustls::rustls::Error),

    #[error("the outbox failed while {doing}: {source} (rows stay queued and are retried)")]
    Outbox {
        doing: &'static str,
        #[source]
        source: OutboxError,
    },

    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}
