//! wss://: the client's TLS settings (--ca or --insecure) and the [`Stream`] a connection
//! reads and writes plaintext through, over TCP as it is or through rustls.
//!
//! rustls's buffered API does the work: ciphertext from the socket goes in with `read_tls`
//! and `process_new_packets`, plaintext comes out of its reader; plaintext goes into its
//! writer and out to the socket with `write_tls`. Every connection makes a full handshake
//! (no session resumption), so each costs the same whichever came before it.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use wsloop::tls::ALPN_HTTP_1_1;

use crate::target::Target;

/// Which server certificates a wss:// run accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Those that chain to a root in this PEM text (the --ca file's contents, which is what
    /// agents are sent), and no other roots.
    Ca(String),
    /// Any certificate, unverified (--insecure).
    Insecure,
}

/// A wss:// run's TLS settings, made once and shared by every connection.
#[derive(Debug, Clone)]
pub struct Tls {
    pub trust: Trust,
    pub config: Arc<ClientConfig>,
    /// SNI and the name the certificate must carry: the URL's host (an IP address is
    /// checked against the certificate's IP addresses and sent as no SNI).
    pub server_name: ServerName<'static>,
}

/// The TLS settings for `target`: `None` for ws://. wss:// needs `trust`, and ws:// must not
/// be given any: either would be a run other than the one asked for.
pub fn settings(target: &Target, trust: Option<Trust>) -> Result<Option<Tls>, String> {
    check_scheme(target, trust.is_some())?;
    trust.map(|trust| Tls::new(trust, &target.name)).transpose()
}

/// Whether trust settings (`given`) go with the URL's scheme: wss:// needs them, ws:// takes
/// none.
pub fn check_scheme(target: &Target, given: bool) -> Result<(), String> {
    match (target.secure, given) {
        (true, false) => Err("wss:// needs --ca FILE or --insecure".into()),
        (false, true) => Err(format!(
            "--ca and --insecure are for wss:// URLs; {} is ws://",
            target.url()
        )),
        _ => Ok(()),
    }
}

impl Tls {
    /// Settings that trust `trust` for a server named `name`: TLS 1.3 and 1.2 with the
    /// `ring` provider's defaults, ALPN `http/1.1`, no client certificate.
    pub fn new(trust: Trust, name: &str) -> Result<Tls, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?;
        let mut config = match &trust {
            Trust::Ca(pem) => builder
                .with_root_certificates(roots(pem)?)
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider.signature_verification_algorithms,
                )))
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        config.resumption = Resumption::disabled();
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("{name:?} cannot be a TLS server name: {e}"))?;
        Ok(Tls {
            trust,
            config: Arc::new(config),
            server_name,
        })
    }

    /// A new connection's TLS state over `tcp`; its ClientHello waits to be flushed.
    pub fn connect(&self, tcp: TcpStream) -> io::Result<Stream> {
        let tls = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(TlsStream {
            tcp,
            tls,
            eof: false,
        })))
    }
}

/// The root certificates in `pem`: at least one, each a usable trust anchor.
fn roots(pem: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("--ca: unreadable PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca: a certificate that cannot be a root: {e}"))?;
    }
    if roots.is_empty() {
        return Err("--ca: no PEM certificate in it".into());
    }
    Ok(roots)
}

/// --insecure: accepts every certificate, but still checks that the server signed the
/// handshake with the key of the certificate it sent, with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A connection's byte stream: plaintext in and out, encrypted or not on the wire.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: rustls's state is several times the size of the rest of a connection.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The socket, for the event loop and the connect's outcome.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &mut tls.tcp,
        }
    }

    /// Reads plaintext as [`Read::read`] does. Over TLS a read shorter than `buf` means, as
    /// over TCP, that the socket had no more to give (or its end was reached).
    #[inline]
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }

    /// Writes plaintext as [`Write::write`] does; over TLS, `WouldBlock` while earlier
    /// ciphertext still waits for room in the socket.
    #[inline]
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    /// Sends ciphertext left over from earlier writes and reads (handshake messages, alerts),
    /// as far as the socket takes it.
    #[inline]
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => tls.write_pending(),
        }
    }

    /// After a short read (and when the event was not a hang-up), whether the socket is
    /// known to be empty, so that the read that would say so can be saved. Over TLS, not
    /// once its end has been seen: the next read returns the end.
    #[inline]
    pub fn drained(&self) -> bool {
        match self {
            Stream::Plain(_) => true,
            Stream::Tls(tls) => !tls.eof,
        }
    }

    /// Over TLS, whether the TLS handshake is still under way.
    pub fn tls_handshaking(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.tls.is_handshaking(),
        }
    }
}

/// A TCP socket with rustls's client state over it.
#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    tls: ClientConnection,
    /// The TCP connection or the TLS session has ended: no more to read.
    eof: bool,
}

impl TlsStream {
    /// Fills `buf` with plaintext until it is full or the socket has no more (`WouldBlock`
    /// when nothing came at all; 0 at the end). Handshake messages and alerts rustls has to
    /// answer with go out on the way.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            filled += self.plaintext(&mut buf[filled..])?;
            if filled == buf.len() || self.eof {
                return Ok(filled);
            }
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // The alert rustls queued for the server, on a best-effort basis.
                let _ = self.write_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.write_pending()?;
        }
    }

    /// Plaintext rustls has decrypted, into `buf`; 0 when it has none (yet).
    fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.tls.reader().read(buf) {
            // The server ended the TLS session (close_notify).
            Ok(0) => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            // The TCP connection ended without a close_notify: an end all the same, which
            // the WebSocket closing handshake before it (or its absence) qualifies.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.eof = true;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Encrypts as much of `buf` as rustls takes and sends it as far as the socket allows.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_pending()?;
        if self.tls.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Before the handshake has finished (the upgrade request), rustls keeps the
        // plaintext and sends it once the session keys are there.
        let n = self.tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.write_pending()?;
        Ok(n)
    }

    /// Writes queued ciphertext until there is none or the socket is full.
    fn write_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The TLS failure behind `e` (a certificate not trusted, an alert from the server), said
/// as rustls says it; `None` for any other error.
pub fn failure(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|tls| format!("TLS: {tls}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_come_from_pem_certificates_only() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = cert.cert.pem();
        assert_eq!(roots(&pem).unwrap().len(), 1);
        // Text around the certificates, as in bundles, is skipped.
        let bundle = format!("# a root\n{pem}\n# the same again\n{pem}");
        assert_eq!(roots(&bundle).unwrap().len(), 2);
        assert!(roots("").unwrap_err().contains("no PEM certificate"));
        assert!(roots("hello\n").unwrap_err().contains("no PEM certificate"));
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(roots(broken).is_err());
    }

    #[test]
    fn the_server_name_is_the_host_an_address_included() {
        let tls = Tls::new(Trust::Insecure, "127.0.0.1").unwrap();
        assert!(matches!(tls.server_name, ServerName::IpAddress(_)));
        let tls = Tls::new(Trust::Insecure, "::1").unwrap();
        assert!(matches!(tls.server_name, ServerName::IpAddress(_)));
        let tls = Tls::new(Trust::Insecure, "localhost").unwrap();
        assert!(matches!(tls.server_name, ServerName::DnsName(_)));
        assert_eq!(tls.config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(Tls::new(Trust::Insecure, "no spaces").is_err());
    }

    #[test]
    fn the_scheme_decides_whether_trust_settings_are_needed() {
        let ws = Target::parse("ws://127.0.0.1:1/", false).unwrap();
        let wss = Target::parse("wss://127.0.0.1:1/", false).unwrap();
        assert!(settings(&ws, None).unwrap().is_none());
        assert!(settings(&wss, Some(Trust::Insecure)).unwrap().is_some());
        assert_eq!(
            settings(&wss, None).unwrap_err(),
            "wss:// needs --ca FILE or --insecure"
        );
        assert!(settings(&ws, Some(Trust::Insecure))
            .unwrap_err()
            .contains("for wss:// URLs"));
    }
}
