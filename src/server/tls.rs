//! A wss:// connection's TLS layer: ciphertext read from the socket comes out as plaintext
//! in the loop's receive buffer, and the send queue's plaintext is encrypted on its way to
//! the socket, a bounded batch at a time, so that what rustls holds stays small and counted.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// Plaintext handed to rustls at most while its earlier ciphertext has not all gone out: the
/// rest waits in the send queue, where backpressure sees it. rustls's `set_buffer_limit`
/// bounds "unsent TLS records" and, before the handshake ends, "unsent plaintext".
const SEND_BATCH: usize = 64 << 10;

/// rustls's state for one connection; boxed in [`Conn`](super::conn::Conn) so plain
/// connections pay one pointer for it.
#[derive(Debug)]
pub(crate) struct Tls {
    conn: ServerConnection,
    /// Plaintext bytes handed to rustls since its send buffer was last empty: a bound on
    /// what it still holds, counted in `bufferedAmount`.
    held: usize,
}

impl Tls {
    pub(crate) fn new(config: &Arc<ServerConfig>) -> io::Result<Tls> {
        let mut conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(SEND_BATCH));
        Ok(Tls { conn, held: 0 })
    }

    /// Plaintext accepted for sending and not yet all written to the socket.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Ciphertext (handshake messages, records, alerts) waits for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The name the client asked for in SNI (RFC 6066 section 3), once its hello is read.
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.conn.server_name()
    }

    /// Reads plaintext into `buf`, reading and decrypting records from `socket` as needed:
    /// `Ok(0)` at the end of the stream (the peer's `close_notify` or its FIN), `WouldBlock`
    /// when the socket is drained and no plaintext is ready (handshake records were perhaps
    /// processed: check [`wants_write`](Tls::wants_write)). A record that does not decrypt or
    /// parse, or bytes that are not TLS at all, fail with `InvalidData` after the alert rustls
    /// queued for it is sent, best effort.
    pub(crate) fn read<S: Read + Write>(
        &mut self,
        socket: &mut S,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                // The stream ended without `close_notify`: to WebSocket, an end like any other
                // (without its close frame, it is reported as 1006 anyway).
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            if self.conn.read_tls(socket)? == 0 {
                return Ok(0);
            }
            if let Err(err) = self.conn.process_new_packets() {
                let _ = self.conn.write_tls(socket);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {err}"),
                ));
            }
        }
    }

    /// The socket as the send queue sees it: writes encrypt into rustls and go on to `socket`.
    pub(crate) fn writer<'a, S: Write>(&'a mut self, socket: &'a mut S) -> TlsWriter<'a, S> {
        TlsWriter { tls: self, socket }
    }

    /// Queues `close_notify` (RFC 8446 section 6.1: "Each party MUST send a "close_notify"
    /// alert before closing its write side of the connection") and writes what the socket takes.
    pub(crate) fn close_notify<S: Write>(&mut self, socket: &mut S) {
        self.conn.send_close_notify();
        let _ = self.writer(socket).push();
    }
}

/// A [`Write`] that encrypts: plaintext goes into rustls only once its earlier ciphertext is
/// all on the socket, so the send queue keeps the rest (and the count of it).
pub(crate) struct TlsWriter<'a, S: Write> {
    tls: &'a mut Tls,
    socket: &'a mut S,
}

impl<S: Write> TlsWriter<'_, S> {
    /// Writes rustls's ciphertext to the socket: `Ok(true)` once none is left, `Ok(false)`
    /// when the socket refused the rest.
    pub(crate) fn push(&mut self) -> io::Result<bool> {
        while self.tls.conn.wants_write() {
            match self.tls.conn.write_tls(self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.tls.held = 0;
        Ok(true)
    }

    /// Encrypts through `encrypt` once the socket has taken everything before, then pushes.
    fn encrypt(
        &mut self,
        encrypt: impl FnOnce(&mut ServerConnection) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if !self.push()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = encrypt(&mut self.tls.conn)?;
        self.tls.held += n;
        // What the socket refuses now stays in rustls, counted in `held`.
        self.push()?;
        Ok(n)
    }
}

impl<S: Write> Write for TlsWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encrypt(|conn| conn.writer().write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.encrypt(|conn| conn.writer().write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    /// The server's socket in memory: what the client sent, what the server wrote, and how
    /// many more bytes the "kernel" takes before it would block.
    #[derive(Default)]
    struct Socket {
        inbound: VecDeque<u8>,
        outbound: Vec<u8>,
        room: usize,
    }

    impl Read for Socket {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.inbound.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.inbound.read(buf)
        }
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.outbound.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A server config with a self-signed certificate for `localhost`, and that certificate.
    fn server_config() -> (Arc<ServerConfig>, CertificateDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        (Arc::new(config), der)
    }

    /// A server `Tls` and a rustls client, handshaken through `socket`.
    fn connected(socket: &mut Socket) -> (Tls, ClientConnection) {
        let (server, der) = server_config();
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tls = Tls::new(&server).unwrap();
        let mut client =
            ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        socket.room = usize::MAX;
        let mut buf = [0u8; 1024];
        while client.is_handshaking() || tls.is_handshaking() || tls.wants_write() {
            let mut sent = Vec::new();
            client.write_tls(&mut sent).unwrap();
            socket.inbound.extend(sent);
            let read = tls.read(socket, &mut buf);
            assert!(matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock));
            assert!(tls.writer(socket).push().unwrap());
            client.read_tls(&mut &socket.outbound[..]).unwrap();
            socket.outbound.clear();
            client.process_new_packets().unwrap();
        }
        (tls, client)
    }

    #[test]
    fn what_the_socket_refuses_stays_counted_and_goes_out_encrypted() {
        let mut socket = Socket::default();
        let (mut tls, mut client) = connected(&mut socket);
        let message = b"plaintext that must not reach the wire ".repeat(2000);
        socket.room = 100;
        let taken = tls.writer(&mut socket).write(&message).unwrap();
        assert_eq!(taken, SEND_BATCH, "one batch is taken");
        assert_eq!(tls.held(), taken, "and counted while the socket refuses it");
        let again = tls.writer(&mut socket).write(&message[taken..]);
        assert!(matches!(again, Err(e) if e.kind() == io::ErrorKind::WouldBlock));

        socket.room = usize::MAX;
        let mut writer = tls.writer(&mut socket);
        writer.write_all(&message[taken..]).unwrap();
        assert!(writer.push().unwrap());
        assert_eq!(tls.held(), 0);
        let wire = std::mem::take(&mut socket.outbound);
        assert!(!wire.windows(9).any(|w| w == b"plaintext"), "encrypted");

        let mut received = Vec::new();
        let mut wire = &wire[..];
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut received);
        }
        assert_eq!(received, message);
    }

    #[test]
    fn bytes_that_are_not_tls_fail_the_read() {
        let mut tls = Tls::new(&server_config().0).unwrap();
        let mut socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };
        socket.inbound.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = tls.read(&mut socket, &mut [0u8; 1024]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(
            socket.outbound.first(),
            Some(&21),
            "an alert record was sent"
        );
    }
}
