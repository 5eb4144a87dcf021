//! Shared helpers for the integration tests: an in-process server on a loopback port, a
//! tungstenite client, and a hand-written raw client whose frame parser shares no code with
//! wsloop (so what it checks is checked independently).

#![allow(dead_code)]

pub mod pki;
pub mod process;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use wsloop::{
    CloseCode, Config, ConnId, Context, Error, Handler, Message, ReadyState, Server, ShutdownHandle,
};

/// Every blocking read and write in the tests gives up after this long, so a server bug makes
/// a test fail instead of hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The example key of RFC 6455 section 1.3 and its accept value, computed by the RFC itself.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A fixed, non-trivial masking key.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A config for tests: port 0 on loopback, no idle pings, short close timeout.
pub fn config() -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        idle_timeout: None,
        close_timeout: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Binds a server with `config` and `handler` on its own thread and runs it.
pub fn start<H: Handler + Send + 'static>(
    config: Config,
    handler: H,
) -> (SocketAddr, ShutdownHandle, JoinHandle<io::Result<()>>) {
    let (tx, rx) = mpsc::channel();
    let join = thread::Builder::new()
        .name("wsloop-server".into())
        .spawn(move || {
            let server = Server::bind(config, handler)?;
            tx.send((server.local_addr(), server.shutdown_handle()))
                .expect("test thread gone");
            server.run()
        })
        .expect("spawn server thread");
    match rx.recv_timeout(IO_TIMEOUT) {
        Ok((addr, handle)) => (addr, handle, join),
        Err(_) => match join.join() {
            Ok(Err(err)) => panic!("server failed to bind: {err}"),
            other => panic!("server thread ended without binding: {other:?}"),
        },
    }
}

/// Asks the server to shut down and joins its thread, which must return `Ok` within `limit`.
pub fn stop_within(handle: ShutdownHandle, join: JoinHandle<io::Result<()>>, limit: Duration) {
    handle.shutdown();
    join_within(join, limit);
}

/// [`stop_within`] with a generous limit.
pub fn stop(handle: ShutdownHandle, join: JoinHandle<io::Result<()>>) {
    stop_within(handle, join, Duration::from_secs(10));
}

/// Joins the server thread; it must end within `limit` and `run` must have returned `Ok`.
pub fn join_within(join: JoinHandle<io::Result<()>>, limit: Duration) {
    let start = Instant::now();
    while !join.is_finished() {
        assert!(
            start.elapsed() < limit,
            "server did not stop within {limit:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
    match join.join() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("Server::run returned an error: {err}"),
        Err(_) => panic!("the server thread panicked"),
    }
}

/// Polls `cond` until it holds or `limit` passes (for state that no read can wait on, such
/// as what a handler recorded after the connection is gone).
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `python3` with the `websockets` package's client (the independent peer of the
/// interop tests) is here; see [`python_websockets_has`].
pub fn python_websockets_available() -> bool {
    python_websockets_has("websockets.sync.client")
}

/// Whether `python3` can import `module` of the `websockets` package. `.ci/run` installs it
/// and sets `WSLOOP_REQUIRE_INTEROP=1`, which turns a missing package into a failure;
/// without that variable the caller skips, loudly.
pub fn python_websockets_has(module: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("WSLOOP_REQUIRE_INTEROP").is_none(),
            "WSLOOP_REQUIRE_INTEROP is set but python3 with `websockets` is missing \
             (python3 -m pip install websockets==15.0.1)"
        );
        eprintln!("!!! SKIPPED: python3 cannot import {module}; the interop check did not run");
    }
    found
}

// ---------------------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------------------

/// A TCP connection with read and write timeouts and Nagle off.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn setsockopt_int(stream: &TcpStream, level: i32, name: i32, value: libc::c_int) {
    // SAFETY: a valid descriptor and a pointer to a c_int of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// SO_LINGER with a zero timeout: closing the socket then sends RST instead of FIN.
pub fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid descriptor and a pointer to a linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

/// Shrinks the socket's receive buffer (so a peer that is not read from blocks soon).
pub fn set_recv_buffer(stream: &TcpStream, bytes: i32) {
    setsockopt_int(stream, libc::SOL_SOCKET, libc::SO_RCVBUF, bytes);
}

// ---------------------------------------------------------------------------------------
// tungstenite
// ---------------------------------------------------------------------------------------

pub type Ws = tungstenite::WebSocket<TcpStream>;

/// Opens a connection, writes `bytes` (the server may close before it has read them all),
/// and expects a close frame with `code` and then the end of the connection.
pub fn assert_fails(addr: SocketAddr, bytes: &[u8], code: u16, what: &str) {
    let mut raw = Raw::open(addr);
    raw.write_lenient(bytes);
    let frame = raw.expect_close_frame();
    assert_eq!(
        frame.close_code(),
        Some(code),
        "{what}: close code (reason {:?})",
        frame.close_reason()
    );
    raw.expect_closed();
}

/// A tungstenite client connected to `path`, its socket with read and write timeouts.
pub fn ws_connect_path(addr: SocketAddr, path: &str) -> Ws {
    let stream = tcp(addr);
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    assert_eq!(response.status().as_u16(), 101);
    ws
}

pub fn ws_connect(addr: SocketAddr) -> Ws {
    ws_connect_path(addr, "/")
}

/// Reads the next message that is not a ping or pong.
pub fn ws_read_data(ws: &mut Ws) -> tungstenite::Message {
    loop {
        match ws.read().expect("read") {
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            msg => return msg,
        }
    }
}

/// Closes with 1000 and waits for the echo and the end of the TCP connection.
pub fn ws_close(mut ws: Ws) {
    use tungstenite::protocol::frame::coding::CloseCode;
    use tungstenite::protocol::CloseFrame;
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
    .expect("send close");
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(_)) => {}
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(err) => panic!("closing: {err}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Raw frames
// ---------------------------------------------------------------------------------------

/// Builds a frame: FIN, RSV bits (0-7, as the three bits below FIN), opcode, mask, payload.
pub fn frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(key) => out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4])),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame header declaring `len` bytes of payload (which the caller may or may not send).
pub fn header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// A masked client frame with FIN set and no RSV bits.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, Some(MASK), payload)
}

/// A close payload: code then reason bytes.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A frame as the raw client decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The code and reason of a close frame (`None` for an empty body).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        match self.payload.len() {
            0 => None,
            1 => panic!("server sent a close frame with a 1-byte body"),
            _ => Some(u16::from_be_bytes([self.payload[0], self.payload[1]])),
        }
    }

    pub fn close_reason(&self) -> &str {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        std::str::from_utf8(self.payload.get(2..).unwrap_or(&[]))
            .expect("server close reason is not UTF-8")
    }
}

/// What came next on a raw connection.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server closed the TCP connection (FIN).
    Eof,
    /// The server reset the TCP connection.
    Reset,
    /// Nothing came within the read timeout.
    Timeout,
}

/// An HTTP response as the raw client read it.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is not UTF-8")
    }
}

/// An upgrade request for `path` with the fixed key, plus `extra` header lines.
pub fn upgrade_request(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// A hand-written client: writes bytes it built itself and parses what comes back.
pub struct Raw {
    pub stream: TcpStream,
    /// Bytes read and not parsed yet.
    buf: Vec<u8>,
}

impl Raw {
    /// A TCP connection, no handshake yet.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: tcp(addr),
            buf: Vec::new(),
        }
    }

    /// Connects and completes the opening handshake for `/`.
    pub fn open(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.handshake(&upgrade_request("/", &[]));
        raw
    }

    /// Sends `request` and checks the answer is a valid 101 for the fixed key.
    pub fn handshake(&mut self, request: &[u8]) -> HttpResponse {
        self.write(request);
        let response = self.read_response();
        assert_upgraded(&response);
        response
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Writes, tolerating a server that has already closed or reset the connection.
    pub fn write_lenient(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.write(&client_frame(opcode, payload));
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Reads more bytes into the buffer; `Ok(0)` is EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads an HTTP response: status line, headers, and a body of `Content-Length` bytes.
    /// Bytes after it stay buffered (the server's first frames after a 101).
    pub fn read_response(&mut self) -> HttpResponse {
        let head_end = loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            match self.fill() {
                Ok(0) => panic!(
                    "connection closed before the response ended; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(_) => {}
                Err(err) => panic!(
                    "reading the response: {err}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_owned();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap();
        assert_eq!(version, "HTTP/1.1", "status line {status_line:?}");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        self.buf.drain(..head_end);
        let mut response = HttpResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("Content-Length");
            while self.buf.len() < len {
                match self.fill() {
                    Ok(0) => panic!("connection closed inside the response body"),
                    Ok(_) => {}
                    Err(err) => panic!("reading the response body: {err}"),
                }
            }
            response.body = self.buf.drain(..len).collect();
        }
        response
    }

    /// The next frame, or how the connection ended.
    pub fn next(&mut self) -> Next {
        loop {
            if let Some(frame) = self.parse_frame() {
                return Next::Frame(frame);
            }
            match self.fill() {
                Ok(0) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed inside a frame: {} bytes left",
                        self.buf.len()
                    );
                    return Next::Eof;
                }
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::ConnectionReset => return Next::Reset,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Next::Timeout
                }
                Err(err) => panic!("reading frames: {err}"),
            }
        }
    }

    /// Parses one complete server frame from the buffer, if there is one.
    fn parse_frame(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut pos) = match b[1] & 0x7f {
            126 => {
                if b.len() < 4 {
                    return None;
                }
                (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
            }
            127 => {
                if b.len() < 10 {
                    return None;
                }
                let mut be = [0u8; 8];
                be.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(be), 10)
            }
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            if b.len() < pos + 4 {
                return None;
            }
            let key = [b[pos], b[pos + 1], b[pos + 2], b[pos + 3]];
            pos += 4;
            Some(key)
        } else {
            None
        };
        let len = usize::try_from(len).expect("frame length");
        if b.len() < pos + len {
            return None;
        }
        let mut payload = b[pos..pos + len].to_vec();
        if let Some(key) = mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[i % 4];
            }
        }
        let frame = Frame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 7,
            opcode: b[0] & 0x0f,
            masked,
            payload,
        };
        self.buf.drain(..pos + len);
        Some(frame)
    }

    /// The next frame; anything else fails the test. Server frames must be unmasked and
    /// have no RSV bits.
    pub fn frame(&mut self) -> Frame {
        match self.next() {
            Next::Frame(frame) => {
                assert!(!frame.masked, "server frame is masked: {frame:?}");
                assert_eq!(frame.rsv, 0, "server frame has RSV bits: {frame:?}");
                frame
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame must be a close frame; returns it.
    pub fn expect_close_frame(&mut self) -> Frame {
        let frame = self.frame();
        assert_eq!(
            frame.opcode,
            OP_CLOSE,
            "expected a close frame, got opcode {:#x} with {} bytes",
            frame.opcode,
            frame.payload.len()
        );
        assert!(frame.fin, "close frame without FIN");
        frame
    }

    /// The next thing must be the end of the TCP connection (FIN or RST), with no more frames.
    pub fn expect_closed(&mut self) {
        match self.next() {
            Next::Eof | Next::Reset => {}
            other => panic!("expected the server to close the connection, got {other:?}"),
        }
    }

    /// The server must fail the connection with `code`: a close frame with that code, then
    /// the end of the TCP connection. Drops the connection.
    pub fn expect_failed_with(mut self, code: u16) {
        let frame = self.expect_close_frame();
        assert_eq!(
            frame.close_code(),
            Some(code),
            "close code (reason {:?})",
            frame.close_reason()
        );
        self.expect_closed();
    }

    /// Reads a complete data message (joining fragments), answering nothing.
    pub fn read_message(&mut self) -> (u8, Vec<u8>) {
        let first = self.frame();
        assert!(
            first.opcode == OP_TEXT || first.opcode == OP_BINARY,
            "expected a data frame, got {first:?}"
        );
        let mut payload = first.payload;
        let mut fin = first.fin;
        while !fin {
            let next = self.frame();
            assert_eq!(next.opcode, OP_CONT, "expected a continuation frame");
            payload.extend_from_slice(&next.payload);
            fin = next.fin;
        }
        (first.opcode, payload)
    }

    /// A clean close from the client side: close 1000, the echo, then the server's EOF; then
    /// the socket is closed.
    pub fn close_normally(mut self) {
        self.send(OP_CLOSE, &close_payload(1000, b""));
        let frame = self.expect_close_frame();
        assert_eq!(frame.close_code(), Some(1000));
        self.expect_closed();
    }
}

/// A valid 101 answer to the fixed key.
pub fn assert_upgraded(response: &HttpResponse) {
    assert_eq!(
        response.status,
        101,
        "expected 101, got {:?} with body {:?}",
        response.status_line,
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("sec-websocket-accept"), Some(ACCEPT));
    assert!(response
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(response
        .header("connection")
        .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")));
}

// ---------------------------------------------------------------------------------------
// A handler that records every event
// ---------------------------------------------------------------------------------------

/// One handler callback as [`Recorder`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// `on_open`, with what `peer_addr` answered.
    Open(ConnId, Option<SocketAddr>),
    /// `on_message`: opcode-like kind (`OP_TEXT` / `OP_BINARY`), payload, and `ready_state`
    /// inside the callback.
    Message(ConnId, u8, Vec<u8>, ReadyState),
    Ping(ConnId, Vec<u8>),
    Pong(ConnId, Vec<u8>),
    Drain(ConnId),
    /// `on_close`: code and reason.
    Close(ConnId, u16, String),
    /// `on_error`: `"protocol"`, `"io"` or `"timeout"`.
    Error(ConnId, &'static str),
    /// `ready_state` right after the handler called `ctx.close`.
    AfterClose(ConnId, ReadyState),
}

impl Ev {
    pub fn id(&self) -> ConnId {
        match self {
            Ev::Open(id, _)
            | Ev::Message(id, ..)
            | Ev::Ping(id, _)
            | Ev::Pong(id, _)
            | Ev::Drain(id)
            | Ev::Close(id, ..)
            | Ev::Error(id, _)
            | Ev::AfterClose(id, _) => *id,
        }
    }
}

pub type Events = Arc<Mutex<Vec<Ev>>>;

/// Records every callback and echoes messages. The text message `close me` makes it close
/// the connection with 4000 "bye" instead.
pub struct Recorder {
    pub events: Events,
}

impl Recorder {
    pub fn new() -> (Recorder, Events) {
        let events = Events::default();
        (
            Recorder {
                events: events.clone(),
            },
            events,
        )
    }

    fn push(&self, ev: Ev) {
        self.events.lock().unwrap().push(ev);
    }
}

impl Handler for Recorder {
    type Data = ();

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        self.push(Ev::Open(id, ctx.peer_addr(id)));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let kind = match msg {
            Message::Text(_) => OP_TEXT,
            Message::Binary(_) => OP_BINARY,
        };
        self.push(Ev::Message(
            id,
            kind,
            msg.as_bytes().to_vec(),
            ctx.ready_state(id),
        ));
        if msg == Message::Text("close me") {
            ctx.close(id, CloseCode(4000), "bye").expect("ctx.close");
            self.push(Ev::AfterClose(id, ctx.ready_state(id)));
        } else {
            let _ = ctx.send(id, msg);
        }
    }

    fn on_ping(&mut self, _ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.push(Ev::Ping(id, payload.to_vec()));
    }

    fn on_pong(&mut self, _ctx: &mut Context<'_>, id: ConnId, payload: &[u8]) {
        self.push(Ev::Pong(id, payload.to_vec()));
    }

    fn on_drain(&mut self, _ctx: &mut Context<'_>, id: ConnId) {
        self.push(Ev::Drain(id));
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, code: CloseCode, reason: &str) {
        self.push(Ev::Close(id, code.0, reason.to_owned()));
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, id: ConnId, err: &Error) {
        let kind = match err {
            Error::Protocol(_) => "protocol",
            Error::Io(_) => "io",
            Error::Timeout => "timeout",
            _ => "other",
        };
        self.push(Ev::Error(id, kind));
    }
}

/// A copy of the events so far.
pub fn events(events: &Events) -> Vec<Ev> {
    events.lock().unwrap().clone()
}

/// The ids of the connections opened so far, in order.
pub fn opened(events: &Events) -> Vec<ConnId> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Ev::Open(id, _) => Some(*id),
            _ => None,
        })
        .collect()
}

/// The events of connection `id`, in order.
pub fn events_of(events: &Events, id: ConnId) -> Vec<Ev> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.id() == id)
        .cloned()
        .collect()
}

/// Every opened connection got exactly one `on_close`, after its `on_open`, and nothing
/// after it.
pub fn assert_closed_exactly_once(events: &Events) {
    for id in opened(events) {
        let evs = events_of(events, id);
        let closes = evs.iter().filter(|e| matches!(e, Ev::Close(..))).count();
        assert_eq!(closes, 1, "on_close count for {id:?}: {evs:?}");
        assert!(
            matches!(evs.last(), Some(Ev::Close(..))),
            "events after on_close for {id:?}: {evs:?}"
        );
        assert!(matches!(evs.first(), Some(Ev::Open(..))), "{evs:?}");
    }
}
