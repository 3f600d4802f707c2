//! The test CA and the server certificate it signs, made with the `openssl` CLI once per
//! test process.
//!
//! rustls refuses a self-signed CA certificate as an end entity (`CaUsedAsEndEntity`), so the
//! server gets a proper leaf (CA:FALSE, serverAuth) signed by a separate CA that clients trust.

use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Extensions of the server's leaf certificate: every name a test connects to.
const LEAF_EXTENSIONS: &str = "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:conference.localhost, IP:127.0.0.1
";

/// The files of the test PKI and the server key's pin.
pub(crate) struct Certs {
    /// PEM of the test CA.
    pub ca: PathBuf,
    /// PEM of the server's leaf certificate.
    pub cert: PathBuf,
    /// PEM of the server's private key (readable by the Prosody it is handed to).
    pub key: PathBuf,
    /// Base64 SHA-256 of the leaf's SubjectPublicKeyInfo.
    pub pin: String,
}

/// The PKI of this test process, made on first use.
pub(crate) fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| make(&super::new_dir("certs")))
}

fn make(dir: &Path) -> Certs {
    std::fs::write(dir.join("leaf.ext"), LEAF_EXTENSIONS).expect("write leaf.ext");
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    openssl(
        dir,
        &format!(
            "req -x509 {ec} -days 3650 -subj /CN=xrelay-test-CA \
             -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem"
        ),
    );
    openssl(
        dir,
        &format!("req {ec} -subj /CN=localhost -keyout server.key -out server.csr"),
    );
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
         -extfile leaf.ext -out server.pem",
    );
    let spki = openssl(dir, "pkey -in server.key -pubout -outform DER");
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let key = dir.join("server.key");
    // The instance may run as another user than the one that made the key; it is a test key.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod server.key");
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key,
        pin: base64::engine::general_purpose::STANDARD.encode(digest.as_ref()),
    }
}

/// Runs `openssl` with whitespace-separated `args` in `dir` and returns its stdout; panics
/// with its stderr on failure.
fn openssl(dir: &Path, args: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("run openssl (tests/setup-debian.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
