//! Mutual TLS 1.3 with SPIFFE identities, on rustls with the `ring` provider.
//!
//! - Inbound: a [`WebPkiClientVerifier`] over the trust bundle (client certificates required),
//!   wrapped so that a certificate without exactly one `spiffe://` URI SAN is refused during the
//!   handshake. [`peer_identity`] reads the caller's SPIFFE ID after the handshake.
//! - Outbound: [`SpiffeServerVerifier`] checks the chain against the trust bundle as webpki does
//!   for any server, then requires the destination cluster's SPIFFE ID in the URI SAN instead of
//!   a DNS name. One [`ClientConfig`] per expected identity, so session tickets never cross
//!   identities.
//! - [`TlsLive`] holds the current [`TlsState`] behind an `ArcSwap`; [`TlsLive::reload`] re-reads
//!   the three PEM files and swaps only when they changed and build a valid state. New handshakes
//!   use the new state; open connections keep theirs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

/// ALPN protocol ids.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why certificates could not be loaded. The previous state keeps serving on a reload failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` is not valid PEM: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("`{path}` holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("`{path}` holds no private key")]
    NoKey { path: PathBuf },
    #[error(
        "certificate `{path}` has no SPIFFE ID: expected exactly one `spiffe://` URI subject alternative name"
    )]
    NoSpiffeId { path: PathBuf },
    #[error("trust bundle `{path}` is unusable: {message}")]
    TrustBundle { path: PathBuf, message: String },
    #[error("certificate or key is unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The three PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust_bundle: PathBuf,
}

/// The `ring` provider: the one crypto provider in this build.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SPIFFE IDs (`spiffe://` URI SANs) of a DER certificate; `None` when it does not parse.
pub fn spiffe_uris(cert: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, x509) = x509_parser::parse_x509_certificate(cert).ok()?;
    let san = x509.subject_alternative_name().ok()?;
    Some(
        san.map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::URI(u) if u.starts_with("spiffe://") => Some((*u).to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default(),
    )
}

/// The one SPIFFE ID of a certificate (an X.509-SVID carries exactly one).
pub fn spiffe_id(cert: &[u8]) -> Option<String> {
    let mut ids = spiffe_uris(cert)?;
    if ids.len() == 1 { ids.pop() } else { None }
}

/// The SPIFFE ID a connected peer presented, if any.
pub fn peer_identity(conn: &rustls::CommonState) -> Option<String> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| spiffe_id(c))
}

#[derive(Debug, thiserror::Error)]
#[error("client certificate has no SPIFFE ID (exactly one `spiffe://` URI SAN is required)")]
struct MissingSpiffeId;

#[derive(Debug, thiserror::Error)]
#[error("server presented `{presented}`, expected SPIFFE ID `{expected}`")]
struct IdentityMismatch {
    expected: String,
    presented: String,
}

/// Inbound client verification: webpki chain checks, then a SPIFFE ID must be present.
#[derive(Debug)]
struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if spiffe_id(end_entity).is_none() {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(MissingSpiffeId)),
            )));
        }
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Outbound server verification: the chain must lead to the trust bundle (exactly the webpki
/// checks `WebPkiServerVerifier` runs: signatures, validity, `serverAuth` usage) and the leaf
/// must carry `expected` as its SPIFFE ID. The TLS server name plays no part.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    expected: String,
    roots: Arc<RootCertStore>,
    inner: Arc<WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        match spiffe_id(end_entity) {
            Some(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            other => Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(IdentityMismatch {
                    expected: self.expected.clone(),
                    presented: other.unwrap_or_else(|| "no SPIFFE ID".to_string()),
                })),
            ))),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Certificates, key and trust bundle loaded into ready-to-use rustls configurations.
pub struct TlsState {
    /// This sidecar's SPIFFE ID, from its certificate.
    pub identity: String,
    /// `sha256:` of the three files' contents, to skip reloads that change nothing.
    pub fingerprint: String,
    /// Inbound configuration.
    pub server: Arc<ServerConfig>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    clients: Mutex<HashMap<(String, bool), Arc<ClientConfig>>>,
}

impl std::fmt::Debug for TlsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsState")
            .field("identity", &self.identity)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The three files' contents and their joint fingerprint.
struct PemFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
    fingerprint: String,
}

impl PemFiles {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let cert = read(&files.cert)?;
        let key = read(&files.key)?;
        let ca = read(&files.trust_bundle)?;
        let mut all = Vec::with_capacity(cert.len() + key.len() + ca.len() + 3);
        for b in [&cert, &key, &ca] {
            all.extend_from_slice(b);
            all.push(0);
        }
        let fingerprint = mesh_artifact::codec::sha256_tag(&all);
        Ok(PemFiles {
            cert,
            key,
            ca,
            fingerprint,
        })
    }
}

fn pem_err(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

impl TlsState {
    /// Read and check the three files.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let pem = PemFiles::read(files)?;
        Self::from_pem(files, pem)
    }

    fn from_pem(files: &TlsFiles, pem: PemFiles) -> Result<Self, TlsError> {
        let PemFiles {
            cert: cert_pem,
            key: key_pem,
            ca: ca_pem,
            fingerprint,
        } = pem;
        let chain = certs(&files.cert, &cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                path: files.key.clone(),
            },
            other => pem_err(&files.key, other),
        })?;
        let identity =
            chain
                .first()
                .and_then(|c| spiffe_id(c))
                .ok_or_else(|| TlsError::NoSpiffeId {
                    path: files.cert.clone(),
                })?;
        let mut roots = RootCertStore::empty();
        for ca in certs(&files.trust_bundle, &ca_pem)? {
            roots.add(ca).map_err(|e| TlsError::TrustBundle {
                path: files.trust_bundle.clone(),
                message: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::TrustBundle {
                    path: files.trust_bundle.clone(),
                    message: e.to_string(),
                })?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(SpiffeClientVerifier {
                inner: client_verifier,
            }))
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        server.session_storage = ServerSessionMemoryCache::new(4096);
        let state = TlsState {
            identity,
            fingerprint,
            server: Arc::new(server),
            chain,
            key,
            roots,
            provider,
            clients: Mutex::new(HashMap::new()),
        };
        // Build one client configuration now so that a key that does not fit the certificate
        // is reported at load time, not at the first outbound connection.
        let own = state.identity.clone();
        state.client_config(&own, false)?;
        Ok(state)
    }

    /// Client configuration for connections whose server must present `identity`. Built once
    /// per (identity, protocol) and cached; only called when a new connection is made.
    pub fn client_config(&self, identity: &str, h2: bool) -> Result<Arc<ClientConfig>, TlsError> {
        let key = (identity.to_string(), h2);
        if let Ok(map) = self.clients.lock()
            && let Some(c) = map.get(&key)
        {
            return Ok(c.clone());
        }
        let inner =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| TlsError::TrustBundle {
                    path: PathBuf::new(),
                    message: e.to_string(),
                })?;
        let verifier = Arc::new(SpiffeServerVerifier {
            expected: identity.to_string(),
            roots: self.roots.clone(),
            inner,
            algorithms: self.provider.signature_verification_algorithms,
        });
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        cfg.alpn_protocols = if h2 {
            vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()]
        } else {
            vec![ALPN_HTTP11.to_vec()]
        };
        let cfg = Arc::new(cfg);
        if let Ok(mut map) = self.clients.lock() {
            map.insert(key, cfg.clone());
        }
        Ok(cfg)
    }
}

/// The current TLS state, swapped atomically on rotation.
pub struct TlsLive {
    files: TlsFiles,
    current: ArcSwap<TlsState>,
}

impl TlsLive {
    /// Load the files; fails when they are missing or invalid.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let state = TlsState::load(&files)?;
        Ok(TlsLive {
            files,
            current: ArcSwap::from_pointee(state),
        })
    }

    pub fn current(&self) -> Arc<TlsState> {
        self.current.load_full()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Re-read the files. `Ok(true)` when a new state was swapped in, `Ok(false)` when nothing
    /// changed; on error the current state stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        match self.read_changed()? {
            Some(state) => {
                self.install(Arc::new(state));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Re-read the files: `Ok(None)` when they hold the current state, else the valid state
    /// they build, not in use until [`TlsLive::install`]ed.
    pub fn read_changed(&self) -> Result<Option<TlsState>, TlsError> {
        let pem = PemFiles::read(&self.files)?;
        if pem.fingerprint == self.current.load().fingerprint {
            return Ok(None);
        }
        TlsState::from_pem(&self.files, pem).map(Some)
    }

    /// Use `state` for new handshakes from now on.
    pub fn install(&self, state: Arc<TlsState>) {
        self.current.store(state);
    }
}

/// The text of a failed TLS handshake's error, with a wrong or missing SPIFFE ID of the peer
/// spelled out (rustls shows a verifier's own error in its debug form).
pub fn handshake_error(e: &std::io::Error) -> String {
    let mismatch = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Error>())
        .and_then(|r| match r {
            Error::InvalidCertificate(CertificateError::Other(OtherError(o))) => {
                o.downcast_ref::<IdentityMismatch>()
            }
            _ => None,
        });
    match mismatch {
        Some(m) => format!("invalid peer certificate: {m}"),
        None => e.to_string(),
    }
}

/// Whether a failed handshake failed in TLS itself (a certificate refused either way, an alert,
/// a protocol error) rather than in the transport under it.
pub fn is_tls_failure(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Error>())
}
