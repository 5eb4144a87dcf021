//! Hand-written servers for the client tests: a TCP listener on a thread that reads one
//! upgrade request and answers it with bytes written by hand (a wrong accept, a chunked 302,
//! nothing at all), and a byte-counting TCP forwarder. They share no code with wsloop, so
//! what the client is checked against is independent of it.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

/// Every blocking read and write of these servers gives up after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted connection whose upgrade request has been read.
pub struct Accepted {
    pub stream: TcpStream,
    /// The request head, up to and including the blank line.
    pub request: String,
}

impl Accepted {
    /// The value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `Sec-WebSocket-Accept` the request's key calls for (RFC 6455 section 4.2.2),
    /// computed here with `sha1` + `base64` rather than wsloop's own function.
    pub fn accept(&self) -> String {
        use base64::Engine;
        use sha1::{Digest, Sha1};
        let key = self
            .header("sec-websocket-key")
            .expect("no Sec-WebSocket-Key");
        let mut sha = Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        base64::engine::general_purpose::STANDARD.encode(sha.finalize())
    }

    /// Writes `bytes` as they are.
    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("fake server write");
    }

    /// Writes `bytes` one at a time, so the client's reads see the answer in pieces.
    pub fn write_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.stream
                .write_all(std::slice::from_ref(b))
                .expect("fake server write");
        }
    }

    /// Reads until the client closes (or the I/O timeout): keeps the connection open
    /// without answering anything.
    pub fn hold_until_client_closes(&mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// A listener on 127.0.0.1 port 0 whose thread accepts one connection, reads its request
/// head, reports it on `requests`, and hands it to `respond`.
pub struct FakeServer {
    pub addr: SocketAddr,
    /// The request head, sent once it has been read.
    pub requests: mpsc::Receiver<String>,
}

impl FakeServer {
    pub fn start(respond: impl FnOnce(Accepted) + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::channel();
        thread::Builder::new()
            .name("fake-server".into())
            .spawn(move || {
                // The thread is detached: if no client comes (a failed test), it is left
                // blocked in accept and ends with the test process.
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                stream.set_nodelay(true).unwrap();
                let mut accepted = Accepted {
                    stream,
                    request: String::new(),
                };
                let Some(request) = read_head(&mut accepted.stream) else {
                    return;
                };
                accepted.request = request.clone();
                let _ = tx.send(request);
                respond(accepted);
            })
            .expect("spawn fake server");
        FakeServer { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

/// Reads a request head up to its blank line; `None` if the client went away first.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A TCP forwarder on 127.0.0.1 port 0 to `target` that counts the bytes each way: to see
/// on the wire that a message went compressed.
pub struct CountingProxy {
    pub addr: SocketAddr,
    /// Bytes from the client to the server.
    pub upstream: Arc<AtomicUsize>,
    /// Bytes from the server to the client.
    pub downstream: Arc<AtomicUsize>,
}

impl CountingProxy {
    /// Forwards the first connection it accepts.
    pub fn start(target: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(AtomicUsize::new(0));
        let downstream = Arc::new(AtomicUsize::new(0));
        let (up, down) = (upstream.clone(), downstream.clone());
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(target) else {
                return;
            };
            for s in [&client, &server] {
                s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                s.set_nodelay(true).unwrap();
            }
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let forward = thread::spawn(move || pipe(c2, s2, up));
            pipe(server, client, down);
            let _ = forward.join();
        });
        CountingProxy {
            addr,
            upstream,
            downstream,
        }
    }
}

/// Copies `from` to `to` until EOF or an error, counting into `count`, then passes the EOF
/// on.
fn pipe(mut from: TcpStream, mut to: TcpStream, count: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n, Ordering::SeqCst);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
