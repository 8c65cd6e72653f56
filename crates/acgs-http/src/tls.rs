//! TLS for every client: ring crypto, safe default protocol versions, and server certificates
//! verified by rustls' WebPKI verifier against the operating system's roots plus the configured
//! CA bundle.
//!
//! The OS roots are read and parsed at the first handshake, not when a client is built: a
//! command whose requests all go to plain-http loopback (tests, local fakes) never reads them, and
//! one that speaks TLS reads them once ([`preload_trust_roots`] starts that early on a spare
//! thread). They are the system's CA bundle file where OpenSSL would find one (Debian's
//! `/etc/ssl/certs/ca-certificates.crt`, Fedora's `/etc/pki/tls/certs/ca-bundle.crt`, …): the
//! curated set `update-ca-certificates` maintains, read in under a millisecond. The hashed
//! certificate folder beside it holds the same roots one file each (about five times slower to read)
//! and sometimes files that are no trust roots (a host's `ssl-cert-snakeoil.pem`); it is read
//! only when there is no bundle, or when `SSL_CERT_FILE` / `SSL_CERT_DIR` name what to read. The
//! configured bundle is read when the client is built, so a bad bundle is a setup error before
//! anything is sent.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::client::NetworkPolicy;
use crate::error::HttpError;

/// The operating system's trust roots, read once per process.
static NATIVE_ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();

/// Read the operating system's trust roots now (milliseconds of file reading and parsing) rather
/// than at the first TLS handshake. A command that will speak TLS calls it on a spare thread
/// while it starts; a handshake meanwhile waits for it; calling it again costs nothing.
pub fn preload_trust_roots() {
    native_roots();
}

fn native_roots() -> &'static [CertificateDer<'static>] {
    NATIVE_ROOTS.get_or_init(|| {
        if openssl_probe::has_ssl_cert_env_vars() {
            rustls_native_certs::load_native_certs().certs
        } else {
            system_roots(&openssl_probe::probe())
        }
    })
}

/// The roots where `probe` found them: the bundle file when it holds any, else the folders.
fn system_roots(probe: &openssl_probe::ProbeResult) -> Vec<CertificateDer<'static>> {
    if let Some(bundle) = &probe.cert_file {
        let found = rustls_native_certs::load_certs_from_paths(Some(bundle), None).certs;
        if !found.is_empty() {
            return found;
        }
    }
    probe
        .cert_dir
        .iter()
        .flat_map(|dir| rustls_native_certs::load_certs_from_paths(None, Some(dir)).certs)
        .collect()
}

/// The client configuration for `policy` (the CA bundle, if any, is read now).
pub(crate) fn client_config(policy: &NetworkPolicy) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = RootsOnFirstUse {
        bundle: bundle(policy)?,
        provider: Arc::clone(&provider),
        verifier: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The trust anchors of `network.ca_bundle` (none when it is not set).
fn bundle(policy: &NetworkPolicy) -> Result<rustls::RootCertStore, HttpError> {
    let mut roots = rustls::RootCertStore::empty();
    let Some(path) = &policy.ca_bundle else {
        return Ok(roots);
    };
    let pem = fs_err::read(path)
        .map_err(|e| HttpError::Setup(format!("cannot read the CA bundle: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| HttpError::Setup(format!("{} is not a PEM bundle", path.display())))?;
    for cert in certs {
        roots.add(cert).map_err(|e| {
            HttpError::Setup(format!(
                "a certificate in {} is unusable: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(HttpError::Setup(format!(
            "{} holds no certificates",
            path.display()
        )));
    }
    Ok(roots)
}

/// rustls' WebPKI verifier, built at the first handshake from the OS roots and the bundle.
/// Signatures are checked with the provider's algorithms, exactly as that verifier does.
#[derive(Debug)]
struct RootsOnFirstUse {
    bundle: rustls::RootCertStore,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl RootsOnFirstUse {
    fn verifier(&self) -> Result<&WebPkiServerVerifier, rustls::Error> {
        self.verifier
            .get_or_init(|| self.build())
            .as_deref()
            .map_err(|reason| rustls::Error::General(reason.clone()))
    }

    fn build(&self) -> Result<Arc<WebPkiServerVerifier>, String> {
        let mut roots = self.bundle.clone();
        // An OS root rustls cannot use is skipped, as a browser would.
        let _ = roots.add_parsable_certificates(native_roots().iter().cloned());
        if roots.is_empty() {
            return Err("no trusted root certificates were found (install ca-certificates or set network.ca_bundle)".into());
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| e.to_string())
    }
}

impl ServerCertVerifier for RootsOnFirstUse {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/tls")
            .join(name)
    }

    fn certs_in(path: &Path) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(path)
            .expect("a PEM file")
            .collect::<Result<_, _>>()
            .expect("certificates")
    }

    #[test]
    fn the_bundle_is_read_alone_and_the_folder_only_without_one() {
        let folder = tempfile::tempdir().expect("tmp");
        fs_err::copy(fixture("server.pem"), folder.path().join("0a1b2c3d.0")).expect("copy");
        let elsewhere = tempfile::tempdir().expect("tmp");
        let empty = elsewhere.path().join("empty.pem");
        fs_err::write(&empty, "").expect("empty bundle");
        let probe = |bundle: Option<PathBuf>| openssl_probe::ProbeResult {
            cert_file: bundle,
            cert_dir: vec![folder.path().to_owned()],
        };
        let (ca, server) = (
            certs_in(&fixture("ca.pem")),
            certs_in(&fixture("server.pem")),
        );
        assert_ne!(ca, server);
        assert_eq!(system_roots(&probe(Some(fixture("ca.pem")))), ca);
        assert_eq!(system_roots(&probe(None)), server, "no bundle: the folder");
        assert_eq!(
            system_roots(&probe(Some(empty))),
            server,
            "a bundle without certificates: the folder"
        );
    }
}
