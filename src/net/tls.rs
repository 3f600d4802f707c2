//! TLS for the client stream: the rustls configuration (ring provider, TLS 1.2 and 1.3) with one of
//! three trust choices (the built-in Mozilla roots, the roots of a CA file, or SHA-256 pins of the
//! server's public key), SPKI pins, and the handshake over an established stream.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use smol::io::{AsyncRead, AsyncWrite};

use crate::config::{Trust, PIN_LEN};

/// Most names of a mismatching certificate quoted in an error.
const MAX_NAMES_SHOWN: usize = 4;

/// Why TLS could not be set up or the handshake failed.
#[derive(Debug)]
pub enum TlsError {
    /// The CA file could not be read or is not PEM.
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA file holds no usable certificate.
    NoCertsInCaFile {
        /// The configured file.
        path: PathBuf,
    },
    /// Pinning was asked for with an empty pin list, which no server could pass.
    NoPins,
    /// The XMPP domain cannot be a TLS server name.
    ServerName(String),
    /// The server's certificate was rejected (the "TLS certificate" step of `xrelay check`).
    Certificate(String),
    /// The handshake failed for another reason (alert, protocol, no common parameters).
    Handshake(String),
    /// The connection failed during the handshake.
    Io(io::Error),
}

impl TlsError {
    /// Whether the server's certificate was rejected, as opposed to TLS failing otherwise.
    pub fn is_certificate(&self) -> bool {
        matches!(self, Self::Certificate(_))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaFile { path, reason } => {
                write!(f, "cannot read the CA file {}: {reason}", path.display())
            }
            Self::NoCertsInCaFile { path } => {
                write!(
                    f,
                    "the CA file {} holds no usable certificate",
                    path.display()
                )
            }
            Self::NoPins => f.write_str("pinning needs at least one pin"),
            Self::ServerName(name) => write!(f, "{name:?} is not a valid TLS server name"),
            Self::Certificate(reason) => write!(f, "the server's certificate is {reason}"),
            Self::Handshake(reason) => write!(f, "the TLS handshake failed: {reason}"),
            Self::Io(error) => {
                write!(f, "the connection failed during the TLS handshake: {error}")
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// A client configuration with the ring provider, TLS 1.3 and 1.2, no client certificate, and
/// the given trust. Reads the CA file, if any.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsError::Handshake(error.to_string()))?;
    let config = match trust {
        Trust::Roots => {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::CaFile(path) => builder
            .with_root_certificates(load_ca_file(path)?)
            .with_no_client_auth(),
        Trust::Pins(pins) => {
            if pins.is_empty() {
                return Err(TlsError::NoPins);
            }
            let verifier = PinVerifier {
                pins: pins.clone(),
                algorithms,
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The pin of a DER certificate: base64 of the SHA-256 of its SubjectPublicKeyInfo.
pub fn spki_pin(cert_der: &[u8]) -> Result<String, TlsError> {
    spki_sha256(&CertificateDer::from(cert_der))
        .map(|digest| STANDARD.encode(digest))
        .ok_or_else(|| TlsError::Certificate("malformed".to_owned()))
}

/// The TLS handshake over `stream` (a fresh TCP connection for direct TLS, or the same socket
/// after `<proceed/>`). The certificate is checked against the XMPP domain, not the host
/// connected to (RFC 6120 §13.7.2).
pub async fn connect<S>(
    config: Arc<ClientConfig>,
    domain: &str,
    stream: S,
) -> Result<TlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|_| TlsError::ServerName(domain.to_owned()))?;
    TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(handshake_error)
}

fn load_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let unreadable = |error: rustls::pki_types::pem::Error| TlsError::CaFile {
        path: path.to_owned(),
        reason: match error {
            rustls::pki_types::pem::Error::Io(error) => error.to_string(),
            other => other.to_string(),
        },
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoCertsInCaFile {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; PIN_LEN]> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = cert.subject_public_key_info();
    ring::digest::digest(&ring::digest::SHA256, spki.as_ref())
        .as_ref()
        .try_into()
        .ok()
}

/// Accepts exactly the pinned keys, and still checks that the handshake is signed by that key.
#[derive(Debug)]
struct PinVerifier {
    pins: Vec<[u8; PIN_LEN]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = spki_sha256(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        let pinned = self.pins.iter().fold(false, |found, pin| {
            found | crate::secret::ct_eq(pin, &digest)
        });
        if pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The verifier's rejection, carried through rustls to [`handshake_error`].
#[derive(Debug)]
struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server's key matches no pin")
    }
}

impl std::error::Error for PinMismatch {}

/// futures-rustls reports rustls errors inside `io::Error`; certificate problems get a reason a
/// user can act on.
fn handshake_error(error: io::Error) -> TlsError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(problem)) => {
            TlsError::Certificate(certificate_reason(problem))
        }
        Some(other) => TlsError::Handshake(other.to_string()),
        None => TlsError::Io(error),
    }
}

fn certificate_reason(problem: &CertificateError) -> String {
    use CertificateError as E;
    let reason = match problem {
        E::UnknownIssuer => "not trusted (unknown issuer)",
        E::NotValidForName => "for another name (name mismatch)",
        E::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<&str> = presented.iter().filter_map(|name| san_text(name)).collect();
            if names.is_empty() {
                return format!("not for {} (name mismatch)", expected.to_str());
            }
            let mut shown = names[..names.len().min(MAX_NAMES_SHOWN)].join(", ");
            if names.len() > MAX_NAMES_SHOWN {
                shown.push_str(", ...");
            }
            return format!("for {shown}, not {} (name mismatch)", expected.to_str());
        }
        E::Expired | E::ExpiredContext { .. } => "expired",
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet",
        E::Revoked => "revoked",
        E::BadEncoding => "malformed",
        E::BadSignature => "badly signed",
        E::UnhandledCriticalExtension => "using an unsupported critical extension",
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => "not issued for TLS servers",
        E::UnsupportedSignatureAlgorithmContext { .. }
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "signed with an unsupported algorithm"
        }
        E::Other(OtherError(inner)) if inner.downcast_ref::<PinMismatch>().is_some() => {
            "not pinned (key does not match any pin)"
        }
        other => {
            return format!(
                "rejected ({})",
                rustls::Error::InvalidCertificate(other.clone())
            )
        }
    };
    reason.to_owned()
}

/// The DNS name or IP address of a subjectAltName as rustls-webpki reports it (`DnsName("a.org")`,
/// `IpAddress(192.0.2.1)`); other kinds of names say nothing useful about a mismatch.
fn san_text(presented: &str) -> Option<&str> {
    presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_pin;
    use futures_rustls::TlsAcceptor;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ServerConfig, SupportedProtocolVersion};
    use smol::io::{AsyncReadExt, AsyncWriteExt, Cursor};
    use smol::net::{TcpListener, TcpStream};

    const LEAF: &[u8] = include_bytes!("testdata/leaf.pem");
    const LEAF_EXPIRED: &[u8] = include_bytes!("testdata/leaf-expired.pem");
    const LEAF_KEY: &[u8] = include_bytes!("testdata/leaf-key.pem");
    /// Computed once with `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
    /// openssl dgst -sha256 -binary | base64`; both leaves share the key.
    const LEAF_PIN: &str = "0RWky7cYcVEKqLqXsVF/EuC2V0Sf0SevKRDIUCwjbck=";
    const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/net/testdata")
            .join(name)
    }

    fn ca_file(name: &str) -> Trust {
        Trust::CaFile(testdata(name))
    }

    fn leaf_pin() -> [u8; PIN_LEN] {
        parse_pin(LEAF_PIN).unwrap()
    }

    fn server_config(
        cert_pem: &[u8],
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let cert = CertificateDer::from_pem_slice(cert_pem).unwrap();
        let key = PrivateKeyDer::from_pem_slice(LEAF_KEY).unwrap();
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
        Arc::new(config)
    }

    /// A loopback handshake against a server presenting `cert_pem`; on success the client reads
    /// a greeting through the tunnel.
    fn handshake(
        trust: &Trust,
        domain: &str,
        cert_pem: &[u8],
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<(), TlsError> {
        let acceptor = TlsAcceptor::from(server_config(cert_pem, versions));
        let config = client_config(trust)?;
        smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let _server = smol::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    tls.write_all(b"hello").await.unwrap();
                    tls.flush().await.unwrap();
                    let mut rest = Vec::new();
                    let _ = tls.read_to_end(&mut rest).await;
                }
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = connect(config, domain, tcp).await?;
            let mut greeting = [0u8; 5];
            tls.read_exact(&mut greeting).await.unwrap();
            assert_eq!(&greeting, b"hello");
            Ok(())
        })
    }

    fn certificate_error(result: Result<(), TlsError>) -> String {
        match result {
            Err(TlsError::Certificate(reason)) => reason,
            other => panic!("expected a certificate error, got {other:?}"),
        }
    }

    #[test]
    fn a_ca_file_with_the_issuing_ca_trusts_the_server_by_name_or_address() {
        for versions in [TLS13, TLS12] {
            handshake(&ca_file("ca.pem"), "localhost", LEAF, versions).unwrap();
            handshake(&ca_file("ca.pem"), "localhost.", LEAF, versions).unwrap();
        }
        handshake(&ca_file("ca.pem"), "127.0.0.1", LEAF, TLS13).unwrap();
    }

    #[test]
    fn builtin_roots_do_not_know_the_test_ca() {
        let reason = certificate_error(handshake(&Trust::Roots, "localhost", LEAF, TLS13));
        assert_eq!(reason, "not trusted (unknown issuer)");
    }

    #[test]
    fn a_ca_file_with_another_ca_is_refused_as_an_unknown_issuer() {
        let result = handshake(&ca_file("other-ca.pem"), "localhost", LEAF, TLS13);
        assert_eq!(certificate_error(result), "not trusted (unknown issuer)");
    }

    #[test]
    fn name_is_the_xmpp_domain() {
        let error = handshake(&ca_file("ca.pem"), "example.org", LEAF, TLS13).unwrap_err();
        assert!(error.is_certificate());
        assert_eq!(
            error.to_string(),
            "the server's certificate is for localhost, 127.0.0.1, not example.org (name mismatch)"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_as_expired() {
        let result = handshake(&ca_file("ca.pem"), "localhost", LEAF_EXPIRED, TLS13);
        assert_eq!(certificate_error(result), "expired");
    }

    #[test]
    fn pinned_key_is_trusted_without_chain_name_or_dates() {
        let trust = Trust::Pins(vec![[0; PIN_LEN], leaf_pin()]);
        for versions in [TLS13, TLS12] {
            handshake(&trust, "localhost", LEAF, versions).unwrap();
            handshake(&trust, "example.org", LEAF, versions).unwrap();
            handshake(&trust, "localhost", LEAF_EXPIRED, versions).unwrap();
        }
    }

    #[test]
    fn wrong_pin_is_a_certificate_error() {
        let mut pin = leaf_pin();
        pin[31] ^= 1;
        for versions in [TLS13, TLS12] {
            let error =
                handshake(&Trust::Pins(vec![pin]), "localhost", LEAF, versions).unwrap_err();
            assert!(error.is_certificate());
            assert_eq!(
                error.to_string(),
                "the server's certificate is not pinned (key does not match any pin)"
            );
        }
    }

    #[test]
    fn empty_pin_list_is_refused() {
        assert!(matches!(
            client_config(&Trust::Pins(Vec::new())),
            Err(TlsError::NoPins)
        ));
    }

    #[test]
    fn a_name_mismatch_names_the_first_presented_names_and_the_expected_one() {
        let expected = ServerName::try_from("example.org").unwrap().to_owned();
        let presented = [
            "DnsName(\"a.org\")",
            "DirectoryName",
            "IpAddress(192.0.2.1)",
            "DnsName(\"b.org\")",
            "DnsName(\"c.org\")",
            "DnsName(\"d.org\")",
        ]
        .map(str::to_owned)
        .to_vec();
        let many = CertificateError::NotValidForNameContext {
            expected: expected.clone(),
            presented,
        };
        assert_eq!(
            certificate_reason(&many),
            "for a.org, 192.0.2.1, b.org, c.org, ..., not example.org (name mismatch)"
        );
        let unnamed = CertificateError::NotValidForNameContext {
            expected,
            presented: vec!["Unsupported(0x88)".to_owned()],
        };
        assert_eq!(
            certificate_reason(&unnamed),
            "not for example.org (name mismatch)"
        );
        assert_eq!(
            certificate_reason(&CertificateError::NotValidForName),
            "for another name (name mismatch)"
        );
    }

    #[test]
    fn spki_pin_matches_openssl() {
        let der = CertificateDer::from_pem_slice(LEAF).unwrap();
        assert_eq!(spki_pin(&der).unwrap(), LEAF_PIN);
        let expired = CertificateDer::from_pem_slice(LEAF_EXPIRED).unwrap();
        assert_eq!(spki_pin(&expired).unwrap(), LEAF_PIN);
        assert!(spki_pin(b"not a certificate").unwrap_err().is_certificate());
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let missing = testdata("missing.pem");
        let error = client_config(&Trust::CaFile(missing.clone())).unwrap_err();
        assert!(matches!(&error, TlsError::CaFile { path, .. } if *path == missing));
        assert!(error.to_string().contains("missing.pem"), "{error}");
        for no_certs in ["leaf-key.pem", "README.md"] {
            let error = client_config(&ca_file(no_certs)).unwrap_err();
            assert!(
                matches!(error, TlsError::NoCertsInCaFile { .. }),
                "{no_certs}"
            );
            assert!(error
                .to_string()
                .ends_with(&format!("{no_certs} holds no usable certificate")));
        }
        client_config(&Trust::Roots).unwrap();
    }

    #[test]
    fn an_invalid_server_name_is_a_name_error_not_a_certificate_error() {
        let config = client_config(&Trust::Roots).unwrap();
        let stream = Cursor::new(Vec::new());
        let error = smol::block_on(connect(config, "bad name", stream)).unwrap_err();
        assert!(matches!(error, TlsError::ServerName(_)));
        assert!(!error.is_certificate());
    }

    #[test]
    fn peer_closing_is_an_io_error() {
        let config = client_config(&ca_file("ca.pem")).unwrap();
        let error = smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let _server = smol::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                drop(tcp);
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            connect(config, "localhost", tcp).await.unwrap_err()
        });
        assert!(matches!(error, TlsError::Io(_)), "{error:?}");
    }

    #[test]
    fn plaintext_server_is_a_handshake_error() {
        let config = client_config(&ca_file("ca.pem")).unwrap();
        let error = smol::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let _server = smol::spawn(async move {
                let (mut tcp, _) = listener.accept().await.unwrap();
                let _ = tcp.write_all(b"<?xml version='1.0'?><stream:stream>").await;
                let _ = tcp.flush().await;
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            connect(config, "localhost", tcp).await.unwrap_err()
        });
        assert!(matches!(error, TlsError::Handshake(_)), "{error:?}");
        assert!(
            error.to_string().starts_with("the TLS handshake failed: "),
            "{error}"
        );
    }
}
