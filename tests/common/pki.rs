//! A test CA made at test time (rcgen): no key material is checked in, and a test can mint
//! as many server certificates as it needs (rotation tests mint a second one).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use wsloop::tls::ReloadableCert;
use wsloop::Config;

/// The test CA's common name, as a client reports the issuer.
pub const CA_NAME: &str = "wsloop test CA";

/// A certificate [`Pki::issue`] wrote.
pub struct Issued {
    /// The certificate, to recognise it by.
    pub der: Vec<u8>,
    /// Its key's SubjectPublicKeyInfo (what Chromium's SPKI allow-list hashes).
    pub spki: Vec<u8>,
}

/// A test CA in a temporary directory, issuing server certificates for `localhost` and
/// 127.0.0.1 into `cert.pem` and `key.pem` there; the directory goes with it.
pub struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("wsloop-tls-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap().der().clone();
        std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", &ca)).unwrap();
        Pki {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a certificate named `common_name` and writes it (then the CA, as a chain) and
    /// its key over the files the server reads.
    pub fn issue(&self, common_name: &str) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = format!("{}{}", cert.pem(), pem("CERTIFICATE", &self.ca));
        std::fs::write(self.cert_path(), chain).unwrap();
        std::fs::write(self.key_path(), key.serialize_pem()).unwrap();
        Issued {
            der: cert.der().to_vec(),
            spki: key.subject_public_key_info(),
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client that trusts this CA only and offers ALPN `http/1.1`. Each has its own
    /// session cache: a resumed session presents no certificate, so rotation checks take a
    /// new client for each connection.
    pub fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        wsloop::tls::client_config(roots)
    }

    /// The server's TLS settings from the files as they are now.
    pub fn server(&self) -> (ReloadableCert, Config) {
        let cert = ReloadableCert::load(self.cert_path(), self.key_path()).unwrap();
        let config = Config {
            tls: Some(cert.server_config()),
            ..super::config()
        };
        (cert, config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}
