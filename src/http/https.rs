//! HTTPS on the TCP listeners: the certificate and key of `http.tls_cert`/`tls_key`, read at
//! start (an unusable pair stops the start) and read again on SIGHUP or when either file
//! changes (an ACME renewal), checked at most every [`CHECK_EVERY`] as connections arrive.
//! A pair that fails to load at a reload is logged and the previous one stays in use, so a
//! half-written renewal never takes HTTPS down; connections already open keep theirs.

#[cfg(feature = "https")]
use crate::log;
#[cfg(feature = "https")]
use futures_rustls::TlsAcceptor;
#[cfg(feature = "https")]
use rustls::pki_types::pem::PemObject;
#[cfg(feature = "https")]
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
#[cfg(feature = "https")]
use rustls::ServerConfig;
#[cfg(feature = "https")]
use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
#[cfg(feature = "https")]
use std::sync::Arc;
#[cfg(feature = "https")]
use std::time::{Instant, SystemTime};

/// How often an incoming connection may look at the files' modification times.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the certificate or key cannot be used.
#[derive(Debug)]
pub enum HttpsError {
    /// The certificate file is unreadable, not PEM, or holds no certificate.
    Cert(PathBuf, String),
    /// The key file is unreadable, not PEM, or holds no private key.
    Key(PathBuf, String),
    /// rustls refused the pair (e.g. the key does not belong to the certificate).
    Pair(rustls::Error),
    /// This binary was built without the `https` feature.
    NotBuilt,
}

impl fmt::Display for HttpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cert(p, e) => write!(f, "http.tls_cert {}: {e}", p.display()),
            Self::Key(p, e) => write!(f, "http.tls_key {}: {e}", p.display()),
            Self::Pair(e) => write!(
                f,
                "http.tls_cert/http.tls_key: the key does not fit the certificate: {e}"
            ),
            Self::NotBuilt => write!(
                f,
                "http.tls_cert: this xrelay was built without HTTPS serving (cargo feature \"https\")"
            ),
        }
    }
}

impl std::error::Error for HttpsError {}

/// What identifies one version of the files: both modification times and sizes.
#[cfg(feature = "https")]
type Stamp = Option<[(SystemTime, u64); 2]>;

/// The certificate in use and where it comes from.
#[cfg(feature = "https")]
pub struct Https {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RefCell<TlsAcceptor>,
    stamp: RefCell<Stamp>,
    checked: Cell<Instant>,
}

/// HTTPS serving is not built in: [`Https::open`] refuses every pair.
#[cfg(not(feature = "https"))]
#[derive(Debug)]
pub struct Https;

#[cfg(not(feature = "https"))]
impl Https {
    /// Always [`HttpsError::NotBuilt`].
    pub fn open(_cert: &Path, _key: &Path) -> Result<Https, HttpsError> {
        Err(HttpsError::NotBuilt)
    }

    /// Nothing to reload.
    pub fn reload(&self) {}
}

#[cfg(feature = "https")]
impl fmt::Debug for Https {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Https")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "https")]
impl Https {
    /// Load the pair; an error here is a config error.
    pub fn open(cert: &Path, key: &Path) -> Result<Self, HttpsError> {
        let stamp = stamp(cert, key);
        let config = load(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            acceptor: RefCell::new(TlsAcceptor::from(config)),
            stamp: RefCell::new(stamp),
            checked: Cell::new(Instant::now()),
        })
    }

    /// The acceptor for a new connection, after reloading the files if they changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        if self.checked.get().elapsed() >= CHECK_EVERY {
            self.checked.set(Instant::now());
            if stamp(&self.cert, &self.key) != *self.stamp.borrow() {
                self.reload();
            }
        }
        self.acceptor.borrow().clone()
    }

    /// Read the pair again (SIGHUP, or a file changed); on failure keep the old one.
    pub fn reload(&self) {
        *self.stamp.borrow_mut() = stamp(&self.cert, &self.key);
        match load(&self.cert, &self.key) {
            Ok(config) => {
                *self.acceptor.borrow_mut() = TlsAcceptor::from(config);
                log!("https: certificate reloaded from {}", self.cert.display());
            }
            Err(e) => log!("https: RELOAD FAILED, still serving the previous certificate: {e}"),
        }
    }
}

#[cfg(feature = "https")]
fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(cert)?, one(key)?])
}

/// A server config for the pair: ring, TLS 1.3 and 1.2, no client certificates.
#[cfg(feature = "https")]
fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, HttpsError> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| HttpsError::Cert(cert.to_path_buf(), pem_error(e)))?;
    if certs.is_empty() {
        return Err(HttpsError::Cert(
            cert.to_path_buf(),
            "no certificate in the file".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| HttpsError::Key(key.to_path_buf(), pem_error(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(HttpsError::Pair)?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(HttpsError::Pair)?;
    Ok(Arc::new(config))
}

#[cfg(feature = "https")]
fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM item of this kind in the file".into()
        }
        other => format!("not valid PEM ({other:?})"),
    }
}

#[cfg(all(test, feature = "https"))]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/net/testdata")
            .join(name)
    }

    #[test]
    fn a_matching_certificate_and_key_load() {
        Https::open(&testdata("leaf.pem"), &testdata("leaf-key.pem")).unwrap();
    }

    #[test]
    fn a_key_file_without_a_key_is_refused_naming_tls_key() {
        let e = Https::open(&testdata("leaf.pem"), &testdata("leaf.pem")).unwrap_err();
        assert!(e.to_string().starts_with("http.tls_key"), "{e}");
    }

    #[test]
    fn a_missing_certificate_is_refused_naming_tls_cert() {
        let e = Https::open(&testdata("missing.pem"), &testdata("leaf-key.pem")).unwrap_err();
        assert!(e.to_string().starts_with("http.tls_cert"), "{e}");
    }
}
