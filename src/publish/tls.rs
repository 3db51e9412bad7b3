//! The rustls client configuration for `mqtts://`, with the ring provider.
//!
//! Built here rather than with rumqttc's helpers because those panic when
//! the system store is unreadable and pick the process-wide default crypto
//! provider; we want a typed error at startup and ring on every board.

use super::error::PublishError;
use super::options::TlsOptions;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Read the CA (or the system roots) and the optional client identity.
pub fn client_config(tls: &TlsOptions) -> Result<Arc<ClientConfig>, PublishError> {
    let roots = match &tls.ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(PublishError::Tls)?
        .with_root_certificates(roots);
    let config = match (&tls.client_cert, &tls.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certs_from_file(cert, "client_cert")?, key_from_file(key)?)
            .map_err(PublishError::Tls)?,
        _ => return Err(PublishError::HalfClientAuth),
    };
    Ok(Arc::new(config))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, PublishError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_file(path, "ca_file")? {
        roots.add(cert).map_err(PublishError::Tls)?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, PublishError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // Some system bundles carry a few certificates rustls rejects; the
    // rest are still good, so only an empty store is an error.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let detail = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PublishError::NoTrustRoots {
            detail: if detail.is_empty() {
                "no certificates found".to_owned()
            } else {
                detail
            },
        });
    }
    Ok(roots)
}

fn certs_from_file(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PublishError> {
    let file_err = |source| PublishError::TlsFile {
        what: "certificates",
        key,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(file_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(file_err)?;
    if certs.is_empty() {
        return Err(PublishError::TlsEmpty {
            what: "certificate",
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>, PublishError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => PublishError::TlsEmpty {
            what: "private key",
            key: "client_key",
            path: path.to_path_buf(),
        },
        source => PublishError::TlsFile {
            what: "the private key",
            key: "client_key",
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_key_and_path() {
        let tls = TlsOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&tls).unwrap_err().to_string();
        assert!(
            err.contains("mqtt.ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a pem file\n").unwrap();
        let tls = TlsOptions {
            ca_file: Some(path),
            ..TlsOptions::default()
        };
        let err = client_config(&tls).unwrap_err();
        assert!(matches!(err, PublishError::TlsEmpty { .. }), "{err}");
    }

    #[test]
    fn a_client_cert_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, TEST_CA).unwrap();
        let tls = TlsOptions {
            ca_file: Some(path.clone()),
            client_cert: Some(path),
            client_key: None,
        };
        let err = client_config(&tls).unwrap_err();
        assert!(matches!(err, PublishError::HalfClientAuth), "{err}");
    }

    /// A self-signed CA certificate, only parsed (never trusted for anything).
    const TEST_CA: &str = include_str!("../../tests/fixtures/tls/ca.pem");
}
