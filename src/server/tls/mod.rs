//! A wss:// connection's TLS layer on rustls's unbuffered API, so an idle connection holds
//! no buffer at all: ciphertext is read into the loop's shared receive buffer and decrypted
//! there, its plaintext written over the records it came from; only a record cut short by the
//! socket is kept until the rest arrives. Ciphertext to send is kept only until the socket
//! takes it, and the send queue's plaintext is encrypted a bounded batch at a time, so that
//! what waits encrypted stays small and counted.
//!
//! One [`Tls`] serves both roles: accepted connections (the server) and the connections the
//! loop opens itself (the client); the record logic is written once, generic over rustls's
//! side.

mod sni;

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedConnectionCommon, UnbufferedStatus, WriteTraffic,
};
use rustls::{ClientConfig, ServerConfig};

use self::sni::Sni;

/// Plaintext encrypted at most while earlier ciphertext has not all gone out: the rest waits
/// in the send queue, where backpressure sees it.
const SEND_BATCH: usize = 64 << 10;

/// The most plaintext in one record (RFC 8446 section 5.1: "The length MUST NOT exceed
/// 2^14 bytes"); smaller writes are gathered up to it, so that many small frames share a
/// record instead of paying a header and tag each.
const RECORD_PLAINTEXT: usize = 1 << 14;

/// The smallest receive buffer a TLS connection can use: one whole record of the largest size
/// TLS 1.2 allows (RFC 5246 section 6.2.3: "The length ... MUST NOT exceed 2^14 + 2048"),
/// header included, since a record is decrypted only once it is all in the buffer.
pub(crate) const MIN_READ_BUFFER: usize = 5 + RECORD_PLAINTEXT + 2048;

/// rustls's state for one connection; boxed in [`Conn`](super::conn::Conn) so plain
/// connections pay one pointer for it.
pub(crate) struct Tls {
    session: Session,
    /// Ciphertext of a record the socket delivered only in part; empty, with no allocation,
    /// between records.
    partial: Vec<u8>,
    /// Ciphertext (handshake messages, records, alerts) waiting for the socket from
    /// `sent` on; freed once the socket has taken it all.
    out: Vec<u8>,
    sent: usize,
    /// Plaintext bytes encrypted into `out` and not yet all written: counted in
    /// `bufferedAmount`.
    held: usize,
    /// The peer's `close_notify` came: once its plaintext is read, the stream has ended.
    peer_closed: bool,
    /// rustls reported a fatal error: it is not called again, since its handshake deframer
    /// may still point into ciphertext that is gone (and would panic on it).
    failed: bool,
    /// The name the client asked for; `sni_pending` until its first record is read.
    server_name: Option<Box<str>>,
    sni_pending: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("handshaking", &self.is_handshaking())
            .field("partial", &self.partial.len())
            .field("out", &(self.out.len() - self.sent))
            .field("held", &self.held)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// rustls's connection state for the role this end plays.
enum Session {
    Server(UnbufferedServerConnection),
    /// Not boxed: smaller than the server's, so a server's [`Tls`] is no bigger for it.
    Client(UnbufferedClientConnection),
}

/// rustls's side data types. `process_tls_records` is an inherent method of each side's
/// connection (the server's may also yield early data), not of the generic one, so the
/// record logic, generic over the side, reaches it through this.
trait Side: Sized {
    fn process_tls_records<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        incoming_tls: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self>;
}

impl Side for ServerConnectionData {
    fn process_tls_records<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        incoming_tls: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self> {
        conn.process_tls_records(incoming_tls)
    }
}

impl Side for ClientConnectionData {
    fn process_tls_records<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        incoming_tls: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self> {
        conn.process_tls_records(incoming_tls)
    }
}

/// rustls's permission to encrypt, whatever the side: lets one closure encrypt for both.
trait Encrypt {
    fn encrypt(&mut self, plaintext: &[u8], outgoing_tls: &mut [u8])
        -> Result<usize, EncryptError>;
    fn queue_close_notify(&mut self, outgoing_tls: &mut [u8]) -> Result<usize, EncryptError>;
}

impl<D> Encrypt for WriteTraffic<'_, D> {
    fn encrypt(
        &mut self,
        plaintext: &[u8],
        outgoing_tls: &mut [u8],
    ) -> Result<usize, EncryptError> {
        WriteTraffic::encrypt(self, plaintext, outgoing_tls)
    }

    fn queue_close_notify(&mut self, outgoing_tls: &mut [u8]) -> Result<usize, EncryptError> {
        WriteTraffic::queue_close_notify(self, outgoing_tls)
    }
}

/// What one pass over the buffered ciphertext left to do.
enum Next {
    /// Every whole record is processed: more ciphertext is needed.
    Read,
    /// The connection is closed both ways; nothing more will come.
    Closed,
}

impl Tls {
    pub(crate) fn new(config: &Arc<ServerConfig>) -> io::Result<Tls> {
        let conn = UnbufferedServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(Tls::of(Session::Server(conn)))
    }

    /// The TLS layer of a connection this end opens to `name` (sent in SNI, and what the
    /// server's certificate must be valid for), with its ClientHello already queued: [`wants_write`](Tls::wants_write) is true, and a push sends it once the socket
    /// is connected. Plaintext written before the handshake is over is refused with
    /// `WouldBlock`, so it waits in the send queue.
    pub(crate) fn client(config: &Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<Tls> {
        let mut conn =
            UnbufferedClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
        let mut out = Vec::new();
        queue_messages(&mut conn, &mut out);
        Ok(Tls {
            out,
            ..Tls::of(Session::Client(conn))
        })
    }

    /// A connection with nothing read or queued yet.
    fn of(session: Session) -> Tls {
        // A server learns the name the client asked for from its hello.
        let sni_pending = matches!(session, Session::Server(_));
        Tls {
            session,
            partial: Vec::new(),
            out: Vec::new(),
            sent: 0,
            held: 0,
            peer_closed: false,
            failed: false,
            server_name: None,
            sni_pending,
        }
    }

    /// Plaintext accepted for sending and not yet all written to the socket.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Ciphertext (handshake messages, records, alerts) waits for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        self.sent < self.out.len()
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        match &self.session {
            Session::Server(conn) => conn.is_handshaking(),
            Session::Client(conn) => conn.is_handshaking(),
        }
    }

    /// The name the client asked for in SNI (RFC 6066 section 3), once its hello is read;
    /// `None` for a client.
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Reads plaintext into `buf` (at least [`MIN_READ_BUFFER`] long), reading and decrypting
    /// records from `socket` as needed: `Ok(0)` at the end of the stream (the peer's
    /// `close_notify` or its FIN), `WouldBlock` when the socket is drained and no plaintext is
    /// ready (handshake records were perhaps processed: check
    /// [`wants_write`](Tls::wants_write)). A record that does not decrypt or parse, or bytes
    /// that are not TLS at all, fail with `InvalidData` after the alert rustls made for it is
    /// sent, best effort.
    pub(crate) fn read<S: Read + Write>(
        &mut self,
        socket: &mut S,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        debug_assert!(buf.len() >= MIN_READ_BUFFER);
        // Ciphertext waiting for processing is buf[start..end]; plaintext goes to buf[..plain],
        // over records already processed, which are always longer than their plaintext.
        let mut end = self.partial.len();
        buf[..end].copy_from_slice(&self.partial);
        self.partial = Vec::new();
        let mut start = 0;
        loop {
            let mut plain = 0;
            let next = match self.process(buf, &mut start, end, &mut plain) {
                Ok(next) => next,
                Err(err) => {
                    let _ = self.writer(socket).push();
                    return Err(err);
                }
            };
            if plain > 0 || self.peer_closed || matches!(next, Next::Closed) {
                self.partial = buf[start..end].to_vec();
                return Ok(plain);
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
            if end == buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS: a record longer than the receive buffer",
                ));
            }
            match socket.read(&mut buf[end..]) {
                Ok(0) => return Ok(0),
                Ok(n) => end += n,
                Err(err) => {
                    self.partial = buf[..end].to_vec();
                    return Err(err);
                }
            }
            if self.sni_pending {
                match sni::server_name(&buf[..end]) {
                    Sni::Partial => {}
                    Sni::Name(name) => (self.server_name, self.sni_pending) = (Some(name), false),
                    Sni::None => self.sni_pending = false,
                }
            }
        }
    }

    /// Hands rustls every whole record in `buf[*start..end]`: see [`process`].
    fn process(
        &mut self,
        buf: &mut [u8],
        start: &mut usize,
        end: usize,
        plain: &mut usize,
    ) -> io::Result<Next> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS: the connection failed",
            ));
        }
        let queue = Queue {
            out: &mut self.out,
            peer_closed: &mut self.peer_closed,
        };
        let result = match &mut self.session {
            Session::Server(conn) => process(conn, queue, buf, start, end, plain),
            Session::Client(conn) => process(conn, queue, buf, start, end, plain),
        };
        self.failed = result.is_err();
        result
    }

    /// Runs `with` on rustls's permission to encrypt: see [`write_traffic`].
    fn write_traffic<T>(
        &mut self,
        with: impl FnOnce(&mut dyn Encrypt, &mut Vec<u8>) -> T,
    ) -> io::Result<T> {
        if self.failed {
            return Err(io::Error::other("TLS: the connection failed"));
        }
        match &mut self.session {
            Session::Server(conn) => write_traffic(conn, &mut self.out, with),
            Session::Client(conn) => write_traffic(conn, &mut self.out, with),
        }
    }

    /// The socket as the send queue sees it: writes encrypt and go on to `socket`.
    pub(crate) fn writer<'a, S: Write>(&'a mut self, socket: &'a mut S) -> TlsWriter<'a, S> {
        TlsWriter { tls: self, socket }
    }

    /// Queues `close_notify` (RFC 8446 section 6.1: "Each party MUST send a "close_notify"
    /// alert before closing its write side of the connection") and writes what the socket takes.
    pub(crate) fn close_notify<S: Write>(&mut self, socket: &mut S) {
        let _ = self.write_traffic(|traffic, out| {
            append(out, |spare| match traffic.queue_close_notify(spare) {
                Ok(n) => Ok(n),
                Err(EncryptError::InsufficientSize(size)) => Err(size),
                Err(EncryptError::EncryptExhausted) => Ok(0),
            })
        });
        let _ = self.writer(socket).push();
    }
}

/// Where the record logic puts what it makes of the peer's records.
struct Queue<'a> {
    /// Handshake messages and alerts for the peer.
    out: &'a mut Vec<u8>,
    /// Set when the peer's `close_notify` is read.
    peer_closed: &'a mut bool,
}

/// Hands rustls every whole record in `buf[*start..end]`, moving `start` past what it
/// consumed; application data goes to `buf[*plain..]`, handshake messages and alerts to
/// `queue.out`.
fn process<D: Side>(
    conn: &mut UnbufferedConnectionCommon<D>,
    queue: Queue<'_>,
    buf: &mut [u8],
    start: &mut usize,
    end: usize,
    plain: &mut usize,
) -> io::Result<Next> {
    loop {
        let (done, ciphertext) = buf.split_at_mut(*start);
        let UnbufferedStatus { discard, state } =
            D::process_tls_records(conn, &mut ciphertext[..end - *start]);
        let state = match state {
            Ok(state) => state,
            Err(err) => {
                *start += discard;
                queue_messages(conn, queue.out);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("TLS: {err}"),
                ));
            }
        };
        let mut stalled = false;
        match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                // Records decrypted in this call are counted in `discard` only once it
                // returns: what does not fit yet is taken on the next pass.
                while let Some(len) = traffic.peek_len() {
                    let len = len.get();
                    if *plain + len > done.len() {
                        stalled = discard == 0;
                        break;
                    }
                    let Some(Ok(record)) = traffic.next_record() else {
                        break;
                    };
                    done[*plain..*plain + len].copy_from_slice(record.payload);
                    *plain += len;
                }
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                queue_handshake(queue.out, &mut encode);
            }
            // Kept in `out` and written in order: never sent twice.
            ConnectionState::TransmitTlsData(transmit) => transmit.done(),
            ConnectionState::PeerClosed => *queue.peer_closed = true,
            ConnectionState::Closed => {
                *start += discard;
                return Ok(Next::Closed);
            }
            ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake => {
                *start += discard;
                return Ok(Next::Read);
            }
            // wsloop's configurations accept no 0-RTT data (a replayable upgrade request).
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS: early data is not accepted",
                ))
            }
        }
        *start += discard;
        if stalled {
            // Unreachable while records are longer than their plaintext; an error, not a
            // loop, if that ever breaks.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS: plaintext outgrew its record",
            ));
        }
    }
}

/// Queues the messages rustls has ready for the peer (a client's hello when it starts, the
/// alert after a fatal error), and only those: asked for more, rustls would read again, which
/// after a fatal error either repeats it on the same bytes or panics on bytes that are gone.
fn queue_messages<D: Side>(conn: &mut UnbufferedConnectionCommon<D>, out: &mut Vec<u8>) {
    while conn.wants_write() {
        match D::process_tls_records(conn, &mut []).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => queue_handshake(out, &mut encode),
            _ => return,
        }
    }
}

/// Runs `with` on rustls's permission to encrypt, once the handshake is over and every
/// message rustls made since (a key update's answer, say) is queued first; `WouldBlock`
/// while the handshake goes on, so that plaintext waits where it is.
fn write_traffic<D: Side, T>(
    conn: &mut UnbufferedConnectionCommon<D>,
    out: &mut Vec<u8>,
    with: impl FnOnce(&mut dyn Encrypt, &mut Vec<u8>) -> T,
) -> io::Result<T> {
    loop {
        let status = D::process_tls_records(conn, &mut []);
        match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => return Ok(with(&mut traffic, out)),
            Ok(ConnectionState::EncodeTlsData(mut encode)) => queue_handshake(out, &mut encode),
            Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
            Ok(ConnectionState::BlockedHandshake) => return Err(io::ErrorKind::WouldBlock.into()),
            Ok(_) => return Err(io::ErrorKind::BrokenPipe.into()),
            Err(err) => return Err(io::Error::other(format!("TLS: {err}"))),
        }
    }
}

/// Appends a handshake message or alert rustls has ready to `out`.
fn queue_handshake<D>(out: &mut Vec<u8>, encode: &mut EncodeTlsData<'_, D>) {
    append(out, |spare| match encode.encode(spare) {
        Ok(n) => Ok(n),
        Err(EncodeError::InsufficientSize(size)) => Err(size),
        // Encoded once already: nothing more to add.
        Err(EncodeError::AlreadyEncoded) => Ok(0),
    });
}

/// Appends what `encode` writes to `out`, growing it to the size rustls asks for.
fn append(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, InsufficientSizeError>,
) {
    let len = out.len();
    let mut room = 0;
    loop {
        out.resize(len + room, 0);
        match encode(&mut out[len..]) {
            Ok(n) => {
                out.truncate(len + n);
                return;
            }
            Err(InsufficientSizeError { required_size }) => room = required_size,
        }
    }
}

/// A [`Write`] that encrypts: plaintext is encrypted only once the earlier ciphertext is all
/// on the socket, so the send queue keeps the rest (and the count of it).
pub(crate) struct TlsWriter<'a, S: Write> {
    tls: &'a mut Tls,
    socket: &'a mut S,
}

impl<S: Write> TlsWriter<'_, S> {
    /// Writes the waiting ciphertext to the socket: `Ok(true)` once none is left, `Ok(false)`
    /// when the socket refused the rest.
    pub(crate) fn push(&mut self) -> io::Result<bool> {
        let tls = &mut *self.tls;
        while tls.sent < tls.out.len() {
            match self.socket.write(&tls.out[tls.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => tls.sent += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        // Nothing waits: give the memory back, so an idle connection holds none.
        tls.out = Vec::new();
        tls.sent = 0;
        tls.held = 0;
        Ok(true)
    }

    /// Encrypts up to [`SEND_BATCH`] bytes of `bufs` once the socket has taken everything
    /// before, gathering small slices into whole records, then pushes.
    fn encrypt(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.push()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Slices after the last one with bytes need no gathering room.
        let last = bufs.iter().rposition(|buf| !buf.is_empty()).unwrap_or(0);
        let taken = self.tls.write_traffic(|traffic, out| {
            // Small slices gathered into one record; allocated (not zeroed) only when a
            // write has several slices to gather.
            let mut record: Vec<u8> = Vec::new();
            let mut taken = 0;
            for (i, buf) in bufs.iter().enumerate() {
                let mut rest = &buf[..buf.len().min(SEND_BATCH - taken)];
                taken += rest.len();
                if record.is_empty() && (i == last || taken == SEND_BATCH) {
                    // Nothing gathered and nothing after: straight from the caller's memory.
                    seal(traffic, out, rest)?;
                    break;
                }
                if record.is_empty() && rest.len() >= RECORD_PLAINTEXT {
                    // Whole records straight from the caller's memory.
                    let whole = rest.len() - rest.len() % RECORD_PLAINTEXT;
                    seal(traffic, out, &rest[..whole])?;
                    rest = &rest[whole..];
                }
                while !rest.is_empty() {
                    if record.capacity() == 0 {
                        record.reserve_exact(RECORD_PLAINTEXT);
                    }
                    let n = rest.len().min(RECORD_PLAINTEXT - record.len());
                    record.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if record.len() == RECORD_PLAINTEXT {
                        seal(traffic, out, &record)?;
                        record.clear();
                    }
                }
                if taken == SEND_BATCH {
                    break;
                }
            }
            seal(traffic, out, &record)?;
            Ok::<usize, io::Error>(taken)
        })??;
        self.tls.held += taken;
        // What the socket refuses now stays in `out`, counted in `held`.
        self.push()?;
        Ok(taken)
    }
}

/// Encrypts `plaintext` (split into records by rustls) onto the end of `out`.
fn seal(traffic: &mut dyn Encrypt, out: &mut Vec<u8>, plaintext: &[u8]) -> io::Result<()> {
    if plaintext.is_empty() {
        return Ok(());
    }
    let mut exhausted = false;
    append(out, |spare| match traffic.encrypt(plaintext, spare) {
        Ok(n) => Ok(n),
        Err(EncryptError::InsufficientSize(size)) => Err(size),
        Err(EncryptError::EncryptExhausted) => {
            exhausted = true;
            Ok(0)
        }
    });
    if exhausted {
        return Err(io::Error::other("TLS: the key's record limit was reached"));
    }
    Ok(())
}

impl<S: Write> Write for TlsWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encrypt(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.encrypt(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::version::{TLS12, TLS13};
    use rustls::{ClientConnection, RootCertStore, SupportedProtocolVersion};

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
        server_config_with(&[&TLS13, &TLS12])
    }

    /// [`server_config`] speaking only `versions`.
    fn server_config_with(
        versions: &[&'static SupportedProtocolVersion],
    ) -> (Arc<ServerConfig>, CertificateDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
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
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut tls = Tls::new(&server).unwrap();
        let mut client =
            ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        socket.room = usize::MAX;
        let mut buf = vec![0u8; MIN_READ_BUFFER];
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

        let received = decrypt(&mut client, &wire);
        assert_eq!(received, message);
    }

    /// What rustls's client makes of `wire`, all of it.
    fn decrypt(client: &mut ClientConnection, mut wire: &[u8]) -> Vec<u8> {
        let mut received = Vec::new();
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut received);
        }
        received
    }

    #[test]
    fn vectored_writes_of_small_and_large_slices_arrive_in_order() {
        let mut socket = Socket::default();
        let (mut tls, mut client) = connected(&mut socket);
        let small: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let large = vec![7u8; 40 << 10];
        let mut slices: Vec<IoSlice<'_>> = small.iter().map(|s| IoSlice::new(s)).collect();
        slices.push(IoSlice::new(&large));
        slices.push(IoSlice::new(b"tail"));
        slices.push(IoSlice::new(b""));
        let expected: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        let mut sent = 0;
        while sent < expected.len() {
            // What is left of the slices, from byte `sent` on.
            let mut skip = sent;
            let rest: Vec<IoSlice<'_>> = slices
                .iter()
                .filter_map(|s| {
                    let from = skip.min(s.len());
                    skip -= from;
                    (from < s.len()).then(|| IoSlice::new(&s[from..]))
                })
                .collect();
            sent += tls.writer(&mut socket).write_vectored(&rest).unwrap();
        }
        let wire = std::mem::take(&mut socket.outbound);
        let received = decrypt(&mut client, &wire);
        assert_eq!(received, expected);
    }

    #[test]
    fn bytes_that_are_not_tls_fail_the_read() {
        let mut tls = Tls::new(&server_config().0).unwrap();
        let mut socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };
        socket.inbound.extend(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let err = tls
            .read(&mut socket, &mut vec![0u8; MIN_READ_BUFFER])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(
            socket.outbound.first(),
            Some(&21),
            "an alert record was sent"
        );
    }

    /// What `from` wrote goes to `to`'s inbound side, as a TCP connection would carry it.
    fn carry(from: &mut Socket, to: &mut Socket) {
        to.inbound.extend(from.outbound.drain(..));
    }

    fn would_block<T: std::fmt::Debug>(result: io::Result<T>) -> bool {
        matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// A client `Tls` for `localhost` trusting `root`, its socket with room to write.
    fn client_to(root: CertificateDer<'static>) -> (Tls, Socket) {
        let mut roots = RootCertStore::empty();
        roots.add(root).unwrap();
        let config = crate::tls::client_config(roots);
        let tls = Tls::client(&config, "localhost".try_into().unwrap()).unwrap();
        let socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };
        (tls, socket)
    }

    /// Plays the reactor for a client and a server `Tls` until `request`, written on the
    /// client from the start, has reached the server; returns what the server read, and
    /// how many of the client's writes were refused during the handshake.
    fn upgrade(
        client: &mut Tls,
        client_socket: &mut Socket,
        server: &mut Tls,
        server_socket: &mut Socket,
        request: &[u8],
    ) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; MIN_READ_BUFFER];
        let (mut unsent, mut refused, mut received) = (request, 0, Vec::new());
        for _ in 0..20 {
            if client.wants_write() {
                assert!(client.writer(client_socket).push().unwrap());
            }
            while !unsent.is_empty() {
                match client.writer(client_socket).write(unsent) {
                    Ok(n) => unsent = &unsent[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(client.is_handshaking(), "refused only while handshaking");
                        refused += 1;
                        break;
                    }
                    Err(e) => panic!("a write during the handshake failed: {e}"),
                }
            }
            carry(client_socket, server_socket);
            loop {
                match server.read(server_socket, &mut buf) {
                    Ok(0) => panic!("the server saw the stream end"),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("the server failed: {e}"),
                }
            }
            assert!(server.writer(server_socket).push().unwrap());
            carry(server_socket, client_socket);
            assert!(would_block(client.read(client_socket, &mut buf)));
            if received.len() == request.len() && !client.wants_write() {
                return (received, refused);
            }
        }
        panic!("no upgrade after 20 rounds: the server got {received:?}");
    }

    /// Reads what `socket` holds through `tls` until it would block or the stream ends.
    fn read_all(tls: &mut Tls, socket: &mut Socket) -> io::Result<(Vec<u8>, bool)> {
        let mut buf = vec![0u8; MIN_READ_BUFFER];
        let mut received = Vec::new();
        loop {
            match tls.read(socket, &mut buf) {
                Ok(0) => return Ok((received, true)),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((received, false)),
                Err(e) => return Err(e),
            }
        }
    }

    fn a_client_and_a_server_talk(versions: &[&'static SupportedProtocolVersion]) {
        let (config, der) = server_config_with(versions);
        let (mut client, mut client_socket) = client_to(der);
        assert!(client.wants_write(), "the ClientHello is queued at once");
        assert!(client.is_handshaking());
        assert_eq!(client.server_name(), None);
        let mut server = Tls::new(&config).unwrap();
        let mut server_socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };

        let request = b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(500);
        let (received, refused) = upgrade(
            &mut client,
            &mut client_socket,
            &mut server,
            &mut server_socket,
            &request,
        );
        assert!(refused > 0, "writes wait while the handshake goes on");
        assert_eq!(received, request, "and then arrive whole, in order");
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(server.server_name(), Some("localhost"));
        assert_eq!(client.server_name(), None);

        let response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".repeat(900);
        server
            .writer(&mut server_socket)
            .write_all(&response)
            .unwrap();
        carry(&mut server_socket, &mut client_socket);
        let (got, ended) = read_all(&mut client, &mut client_socket).unwrap();
        assert_eq!((got, ended), (response, false));

        client.close_notify(&mut client_socket);
        carry(&mut client_socket, &mut server_socket);
        let (got, ended) = read_all(&mut server, &mut server_socket).unwrap();
        assert_eq!(
            (got, ended),
            (Vec::new(), true),
            "close_notify ends the stream"
        );
        server.close_notify(&mut server_socket);
        carry(&mut server_socket, &mut client_socket);
        let (got, ended) = read_all(&mut client, &mut client_socket).unwrap();
        assert_eq!((got, ended), (Vec::new(), true));
    }

    #[test]
    fn a_client_and_a_server_talk_over_tls_1_3() {
        a_client_and_a_server_talk(&[&TLS13]);
    }

    #[test]
    fn a_client_and_a_server_talk_over_tls_1_2() {
        a_client_and_a_server_talk(&[&TLS12]);
    }

    #[test]
    fn a_client_refuses_a_certificate_it_cannot_verify() {
        let (config, _) = server_config();
        // A CA of its own name: one named like the server's would fail on the signature.
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "a stranger");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let stranger = params.self_signed(&key).unwrap().der().clone();
        let (mut client, mut client_socket) = client_to(stranger);
        let mut server = Tls::new(&config).unwrap();
        let mut server_socket = Socket {
            room: usize::MAX,
            ..Socket::default()
        };
        assert!(client.writer(&mut client_socket).push().unwrap());
        carry(&mut client_socket, &mut server_socket);
        let (got, ended) = read_all(&mut server, &mut server_socket).unwrap();
        assert_eq!((got, ended), (Vec::new(), false));
        assert!(server.writer(&mut server_socket).push().unwrap());
        carry(&mut server_socket, &mut client_socket);

        let err = read_all(&mut client, &mut client_socket).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(
            err.to_string(),
            "TLS: invalid peer certificate: UnknownIssuer"
        );
        // Encrypted in TLS 1.3 (RFC 8446 section 5.2): the server tells what it is.
        carry(&mut client_socket, &mut server_socket);
        let err = read_all(&mut server, &mut server_socket).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert_eq!(err.to_string(), "TLS: received fatal alert: UnknownCA");

        // The reactor drops the connection now; were it to go on, rustls is not called again.
        let write = client
            .writer(&mut client_socket)
            .write(b"GET / HTTP/1.1\r\n\r\n");
        assert!(write.is_err() && !would_block(write), "no plaintext taken");
        client.close_notify(&mut client_socket);
        let err = client.read(&mut client_socket, &mut vec![0u8; MIN_READ_BUFFER]);
        assert!(matches!(err, Err(e) if e.kind() == io::ErrorKind::InvalidData));
    }
}
