//! wss://: the server's TLS settings built from PEM files, and a certificate that can be
//! replaced while the server runs (rotation) without touching the connections already open;
//! and the settings of the connections wsloop opens itself, as a client.
//!
//! ```no_run
//! let cert = wsloop::tls::ReloadableCert::load("cert.pem", "key.pem")?;
//! let config = wsloop::Config {
//!     tls: Some(cert.server_config()),
//!     ..wsloop::Config::default()
//! };
//! // Later, after the files were replaced (the binary does this on SIGHUP):
//! if let Err(err) = cert.reload() {
//!     eprintln!("still serving the old certificate: {err}");
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A client trusting a private CA:
//!
//! ```no_run
//! let config = wsloop::tls::client_config_with_ca_file("ca.pem")?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The one application protocol spoken over TLS: a WebSocket opening handshake is an
/// HTTP/1.1 request (RFC 6455 section 4.1), and RFC 7301 lets the server name it in ALPN.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// A certificate chain and its private key read from PEM files, served to every new TLS
/// handshake, and replaced by [`reload`](ReloadableCert::reload). Cheap to clone: clones
/// share the certificate, so one can live in a signal-handling thread.
#[derive(Debug, Clone)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<CurrentCert>,
}

/// The certificate new handshakes get: read once per handshake, swapped whole by a reload.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl ReloadableCert {
    /// Reads the certificate chain (`cert`: PEM certificates, the server's own first) and its
    /// private key (`key`: PEM, PKCS#8, PKCS#1 RSA or SEC1 EC), and checks they belong together.
    pub fn load(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<ReloadableCert> {
        let (cert_path, key_path) = (cert.as_ref().to_owned(), key.as_ref().to_owned());
        let key = load_certified_key(&cert_path, &key_path)?;
        Ok(ReloadableCert {
            cert_path,
            key_path,
            current: Arc::new(CurrentCert(RwLock::new(Arc::new(key)))),
        })
    }

    /// Reads the files again; handshakes from now on get the new certificate, connections
    /// already open keep theirs. On any error the old certificate stays in place.
    pub fn reload(&self) -> io::Result<()> {
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// The server's TLS settings: TLS 1.3 and 1.2 with the `ring` provider's defaults, no
    /// client certificates, ALPN `http/1.1`, and this certificate (as it is at each handshake).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.current.clone());
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Arc::new(config)
    }
}

/// TLS settings for the connections wsloop opens (wss:// as a client): TLS 1.3 and 1.2 with
/// the `ring` provider's defaults, ALPN `http/1.1`, no client certificate, and servers
/// trusted when their certificate chains to one of `roots`.
///
/// ```no_run
/// let mut roots = rustls::RootCertStore::empty();
/// roots
///     .add(std::fs::read("ca.der")?.into())
///     .map_err(std::io::Error::other)?;
/// let config = wsloop::tls::client_config(roots);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Arc::new(config)
}

/// [`client_config`] trusting the CA certificates in the PEM file at `path` (one or more);
/// a file that cannot be read, holds no certificate, or holds one that does not parse is an
/// error naming it.
///
/// ```no_run
/// let config = wsloop::tls::client_config_with_ca_file("/etc/wsloop/ca.pem")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn client_config_with_ca_file(path: impl AsRef<Path>) -> io::Result<Arc<ClientConfig>> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a usable CA certificate: {err}", path.display()),
            )
        })?;
    }
    Ok(client_config(roots))
}

/// The PEM certificates in the file at `path`, at least one, with errors that name it.
fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| pem_error(path, "certificates", err))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Ok(certs)
}

/// Reads a chain and key and pairs them, with errors that name the file at fault.
fn load_certified_key(cert_path: &Path, key_path: &Path) -> io::Result<CertifiedKey> {
    let chain = read_certs(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| pem_error(key_path, "a private key", err))?;
    CertifiedKey::from_der(chain, key, &ring::default_provider()).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} with {}: {err}", cert_path.display(), key_path.display()),
        )
    })
}

fn pem_error(path: &Path, what: &str, err: rustls::pki_types::pem::Error) -> io::Error {
    let kind = match &err {
        rustls::pki_types::pem::Error::Io(err) => err.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(
        kind,
        format!("{}: cannot read {what} from it: {err}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a self-signed certificate for `name` and its key to `dir`.
    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsloop-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn served(cert: &ReloadableCert) -> Vec<u8> {
        let current = cert.current.0.read().unwrap().clone();
        current.end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn a_bad_reload_keeps_the_old_certificate_and_names_the_file() {
        let dir = temp_dir("reload");
        let (cert_path, key_path) = write_pair(&dir, "localhost");
        let cert = ReloadableCert::load(&cert_path, &key_path).unwrap();
        let first = served(&cert);

        std::fs::write(&cert_path, "not a certificate").unwrap();
        let err = cert.reload().unwrap_err();
        assert!(err.to_string().contains("cert.pem"), "{err}");
        assert_eq!(served(&cert), first);

        write_pair(&dir, "localhost");
        cert.reload().unwrap();
        assert_ne!(served(&cert), first, "the new certificate is served");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (one, two) = (temp_dir("one"), temp_dir("two"));
        let (cert_path, _) = write_pair(&one, "localhost");
        let (_, other_key) = write_pair(&two, "localhost");
        let err = ReloadableCert::load(&cert_path, &other_key).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
        let err = ReloadableCert::load(one.join("missing.pem"), &other_key).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        std::fs::remove_dir_all(one).unwrap();
        std::fs::remove_dir_all(two).unwrap();
    }

    #[test]
    fn a_ca_file_is_read_or_refused_by_name() {
        let dir = temp_dir("ca");
        let (ca_path, _) = write_pair(&dir, "localhost");
        let config = client_config_with_ca_file(&ca_path).unwrap();
        assert_eq!(config.alpn_protocols, vec![ALPN_HTTP_1_1.to_vec()]);

        std::fs::write(&ca_path, "no certificate here").unwrap();
        let err = client_config_with_ca_file(&ca_path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("cert.pem"), "{err}");
        let err = client_config_with_ca_file(dir.join("missing.pem")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
