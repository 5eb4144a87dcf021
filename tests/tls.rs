//! wss://: the server behind TLS, checked with clients that share no code with it (rustls's
//! client under tungstenite, Python's `ssl` under `websockets`), against certificates minted
//! for each test by a test CA (rcgen): echo, rooms across loops, SNI, ALPN, certificate
//! rotation (library call and SIGHUP), and clients that misbehave.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::process::Proc;
use common::*;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use tungstenite::Message as TMessage;
use wsloop::{Context, Echo, Handler, Message, Request, Upgrade};

type Wss = tungstenite::WebSocket<StreamOwned<ClientConnection, TcpStream>>;

/// A wss:// connection to `path` asking for `name` (a DNS name is sent as SNI; an IP
/// address is not); returns it and the upgrade response.
fn wss_connect_as(
    addr: SocketAddr,
    client: &Arc<ClientConfig>,
    name: &str,
    path: &str,
) -> (Wss, tungstenite::handshake::client::Response) {
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = ClientConnection::new(client.clone(), server_name).unwrap();
    let stream = StreamOwned::new(conn, tcp(addr));
    let url = format!("wss://{name}:{}{path}", addr.port());
    tungstenite::client(url, stream).expect("wss handshake")
}

fn wss_connect(addr: SocketAddr, client: &Arc<ClientConfig>) -> Wss {
    wss_connect_as(addr, client, "localhost", "/").0
}

/// The certificate the server presented on this connection.
fn peer_cert(ws: &Wss) -> Vec<u8> {
    ws.get_ref()
        .conn
        .peer_certificates()
        .expect("a certificate")[0]
        .to_vec()
}

fn wss_read_data(ws: &mut Wss) -> TMessage {
    loop {
        match ws.read().expect("read") {
            TMessage::Ping(_) | TMessage::Pong(_) => continue,
            msg => return msg,
        }
    }
}

fn assert_echoes(ws: &mut Wss, text: &str) {
    ws.send(TMessage::text(text)).unwrap();
    assert_eq!(wss_read_data(ws), TMessage::text(text));
}

/// Reads until the server ends the connection; returns what came first, and fails if it
/// does not end within the read timeout.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(err) => panic!("the server did not close the connection: {err}"),
        }
    }
}

/// Echoes the handler's SNI view back in a response header.
struct Names;

impl Handler for Names {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        Upgrade::accept().header("X-Server-Name", req.server_name().unwrap_or("(none)"))
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: wsloop::ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }
}

#[test]
fn echo_text_binary_and_a_mebibyte_over_wss_with_alpn() {
    let pki = Pki::new("echo");
    let issued = pki.issue("first").der;
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();
    let mut ws = wss_connect(addr, &client);
    assert_eq!(peer_cert(&ws), issued);
    assert_eq!(
        ws.get_ref().conn.alpn_protocol(),
        Some(&b"http/1.1"[..]),
        "ALPN"
    );
    assert_echoes(&mut ws, "hello over TLS");
    ws.send(TMessage::binary(vec![7u8; 300])).unwrap();
    assert_eq!(wss_read_data(&mut ws), TMessage::binary(vec![7u8; 300]));
    // Past the direct-write size: encrypted from the caller's memory, never sent in plain.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    ws.send(TMessage::binary(big.clone())).unwrap();
    assert_eq!(wss_read_data(&mut ws), TMessage::binary(big));
    assert_echoes(&mut ws, "after the big one");
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    stop(handle, join);
}

#[test]
fn on_upgrade_sees_the_sni_name_and_none_without_it() {
    let pki = Pki::new("sni");
    pki.issue("sni");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Names);
    let client = pki.client();
    let (mut by_name, response) = wss_connect_as(addr, &client, "localhost", "/");
    assert_eq!(response.headers()["x-server-name"], "localhost");
    assert_echoes(&mut by_name, "named");
    // RFC 6066: an IP address is not sent as SNI.
    let (mut by_ip, response) = wss_connect_as(addr, &client, "127.0.0.1", "/");
    assert_eq!(response.headers()["x-server-name"], "(none)");
    assert_echoes(&mut by_ip, "by address");
    // And plain ws:// has none either.
    let (plain_addr, plain_handle, plain_join) = start(common::config(), Names);
    let (_plain, response) =
        tungstenite::client(format!("ws://{plain_addr}/"), tcp(plain_addr)).unwrap();
    assert_eq!(response.headers()["x-server-name"], "(none)");
    stop(handle, join);
    stop(plain_handle, plain_join);
}

#[test]
fn library_reload_serves_the_new_certificate_to_new_connections_only() {
    let pki = Pki::new("reload");
    let first = pki.issue("first").der;
    let (cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();
    let mut old = wss_connect(addr, &client);
    assert_eq!(peer_cert(&old), first);

    let second = pki.issue("second").der;
    cert.reload().expect("reload");
    let mut new = wss_connect(addr, &pki.client());
    assert_eq!(
        peer_cert(&new),
        second,
        "a new connection gets the new certificate"
    );
    assert_echoes(&mut old, "the old connection goes on");
    assert_echoes(&mut new, "and the new one works");

    std::fs::write(pki.cert_path(), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    let err = cert.reload().expect_err("a broken file is refused");
    assert!(err.to_string().contains("cert.pem"), "{err}");
    let mut after = wss_connect(addr, &pki.client());
    assert_eq!(
        peer_cert(&after),
        second,
        "the old certificate stays in place"
    );
    assert_echoes(&mut after, "still served");
    assert_echoes(&mut old, "old still going");
    stop(handle, join);
}

/// Lines the process writes to stderr, as they come.
fn stderr_lines(proc: &mut Proc) -> mpsc::Receiver<String> {
    let stderr = proc.0.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no stderr line with {needle:?} within 10 s"),
        }
    }
}

#[test]
fn binary_serves_rooms_over_wss_on_two_loops_and_rotates_on_sighup() {
    let pki = Pki::new("binary");
    let first = pki.issue("first").der;
    let cert = pki.cert_path();
    let key = pki.key_path();
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let lines = stderr_lines(&mut proc);
    let addr = proc.listening_addr();
    let client = pki.client();

    // Balanced accepting spreads four members over both loops; a room spans them.
    let mut members: Vec<Wss> = (0..4)
        .map(|_| wss_connect_as(addr, &client, "localhost", "/chat/tls").0)
        .collect();
    assert_eq!(peer_cert(&members[0]), first);
    members[0].send(TMessage::text("from 0")).unwrap();
    for member in &mut members[1..] {
        assert_eq!(wss_read_data(member), TMessage::text("from 0"));
    }
    members[3].send(TMessage::text("from 3")).unwrap();
    for member in &mut members[..3] {
        assert_eq!(wss_read_data(member), TMessage::text("from 3"));
    }

    let second = pki.issue("second").der;
    proc.signal("HUP");
    wait_for_line(&lines, "TLS certificate reloaded");
    let mut fresh = wss_connect(addr, &pki.client());
    assert_eq!(peer_cert(&fresh), second);
    assert_echoes(&mut fresh, "new certificate");
    // The connections opened before the rotation go on as they were.
    members[1].send(TMessage::text("still here")).unwrap();
    for (i, member) in members.iter_mut().enumerate() {
        if i != 1 {
            assert_eq!(wss_read_data(member), TMessage::text("still here"));
        }
    }

    std::fs::write(pki.key_path(), "not a key").unwrap();
    proc.signal("HUP");
    let line = wait_for_line(&lines, "keeping the old TLS certificate");
    assert!(line.contains("key.pem"), "{line}");
    let mut after = wss_connect(addr, &pki.client());
    assert_eq!(peer_cert(&after), second);
    assert_echoes(&mut after, "old certificate kept");

    proc.sigterm();
    for member in &mut members {
        match member.read().unwrap() {
            TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
    }
    drop(members);
    drop((fresh, after));
    let status = proc.wait_within(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn binary_with_reuseport_loops_serves_wss_on_each() {
    let pki = Pki::new("reuseport");
    let issued = pki.issue("reuseport").der;
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "2",
        "--accept",
        "reuseport",
        "--tls-cert",
        pki.cert_path().to_str().unwrap(),
        "--tls-key",
        pki.key_path().to_str().unwrap(),
    ]);
    let addr = proc.listening_addr();
    let client = pki.client();
    // Each loop has its own listener and the kernel picks one per client by a hash of its
    // port, so sixteen clients land on both loops but for odds of 2 in 65,536.
    let mut clients: Vec<Wss> = (0..16).map(|_| wss_connect(addr, &client)).collect();
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_echoes(ws, &format!("client {i}"));
    }
    assert_eq!(peer_cert(&clients[0]), issued);
    drop(clients);
    proc.stop();
}

/// The process's resident set in KiB.
fn rss_kib(pid: u32) -> u64 {
    common::process::status_kib(pid, "VmRSS")
}

/// The per-connection figure for BENCHMARKS.md comes from a larger run of this test:
/// `WSLOOP_TLS_IDLE_CONNS=10000 cargo test --release --test tls idle_wss -- --nocapture`.
#[test]
fn idle_wss_connections_keep_no_traffic_buffers() {
    let conns: u64 = std::env::var("WSLOOP_TLS_IDLE_CONNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let pki = Pki::new("memory");
    pki.issue("memory");
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--log-level",
        "off",
        "--tls-cert",
        pki.cert_path().to_str().unwrap(),
        "--tls-key",
        pki.key_path().to_str().unwrap(),
    ]);
    let addr = proc.listening_addr();
    let pid = proc.0.id();
    let client = pki.client();
    // Past the direct-write size, so every send path has run once before the measure.
    let big = vec![5u8; 40 << 10];
    let mut warm = wss_connect(addr, &client);
    warm.send(TMessage::binary(big.clone())).unwrap();
    assert_eq!(wss_read_data(&mut warm), TMessage::binary(big.clone()));
    let before = rss_kib(pid);
    let mut idle = Vec::new();
    for _ in 0..conns {
        let mut ws = wss_connect(addr, &client);
        ws.send(TMessage::binary(big.clone())).unwrap();
        assert_eq!(wss_read_data(&mut ws), TMessage::binary(big.clone()));
        idle.push(ws);
    }
    assert_echoes(&mut warm, "all idle now");
    let per_conn = (rss_kib(pid).saturating_sub(before) << 10) / conns;
    eprintln!("{per_conn} bytes of RSS per idle wss connection ({conns} connections)");
    // Under 4 KiB at 10,000 (rustls's connection state and keys, no buffer): a 4 KiB record
    // buffer kept per connection, or a 40 KiB message's, would show over this.
    assert!(
        per_conn < 6 << 10,
        "{per_conn} bytes per idle wss connection"
    );
    drop(idle);
}

#[test]
fn the_binary_refuses_a_key_that_is_not_the_certificates() {
    let pki = Pki::new("mismatch");
    pki.issue("first");
    let other = Pki::new("mismatch-other");
    other.issue("other");
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        pki.cert_path().to_str().unwrap(),
        "--tls-key",
        other.key_path().to_str().unwrap(),
    ]);
    let status = proc.wait_within(Duration::from_secs(10));
    let stderr = proc.stderr();
    assert!(!status.success());
    assert!(
        stderr.contains("cannot load the TLS certificate") && stderr.contains("key.pem"),
        "{stderr}"
    );
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_and_others_keep_echoing() {
    let pki = Pki::new("garbage");
    pki.issue("garbage");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();
    let mut good = wss_connect(addr, &client);

    let mut plain = tcp(addr);
    plain
        .write_all(&upgrade_request("/", &[]))
        .expect("write the plain request");
    let answer = read_until_closed(&mut plain);
    // Whatever came is a TLS alert record (content type 21), never an HTTP answer.
    assert!(
        answer.is_empty() || answer[0] == 21,
        "expected a TLS alert or nothing, got {:?}",
        String::from_utf8_lossy(&answer)
    );
    let mut noise = tcp(addr);
    noise.write_all(&[0xff; 512]).unwrap();
    read_until_closed(&mut noise);

    assert_echoes(&mut good, "unaffected");
    let mut later = wss_connect(addr, &client);
    assert_echoes(&mut later, "new ones too");
    stop(handle, join);
}

#[test]
fn a_stalled_tls_handshake_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new("stalled");
    pki.issue("stalled");
    let (_cert, mut config) = pki.server();
    config.handshake_timeout = Duration::from_millis(300);
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();

    let mut hello = Vec::new();
    let mut conn = ClientConnection::new(client.clone(), "localhost".try_into().unwrap()).unwrap();
    conn.write_tls(&mut hello).unwrap();
    let started = Instant::now();
    let mut silent = tcp(addr);
    let mut half = tcp(addr);
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    for stream in [&mut silent, &mut half] {
        assert!(read_until_closed(stream).is_empty());
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "dropped after {waited:?}, before the handshake timeout"
    );
    let mut ws = wss_connect(addr, &client);
    assert_echoes(&mut ws, "after the stalls");
    stop(handle, join);
}

#[test]
fn a_client_that_closes_mid_record_does_not_disturb_others() {
    let pki = Pki::new("midrecord");
    pki.issue("midrecord");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();
    let mut good = wss_connect(addr, &client);

    let mut leaving = wss_connect(addr, &client);
    assert_echoes(&mut leaving, "before leaving");
    let stream = leaving.get_mut();
    stream
        .conn
        .writer()
        .write_all(&client_frame(OP_BINARY, &[9; 10_000]))
        .unwrap();
    let mut records = Vec::new();
    while stream.conn.wants_write() {
        stream.conn.write_tls(&mut records).unwrap();
    }
    stream
        .sock
        .write_all(&records[..records.len() / 2])
        .unwrap();
    stream.sock.shutdown(Shutdown::Both).unwrap();
    drop(leaving);

    assert_echoes(&mut good, "unaffected");
    let mut later = wss_connect(addr, &client);
    assert_echoes(&mut later, "new ones too");
    stop(handle, join);
}

#[test]
fn a_handshake_flood_does_not_starve_an_open_connection() {
    const FLOOD: usize = 200;
    let pki = Pki::new("flood");
    pki.issue("flood");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let client = pki.client();
    let mut ws = wss_connect(addr, &client);

    let flooding = Arc::new(AtomicBool::new(true));
    let start_line = Arc::new(Barrier::new(FLOOD + 1));
    let threads: Vec<_> = (0..FLOOD)
        .map(|_| {
            let (client, start_line) = (client.clone(), start_line.clone());
            thread::spawn(move || {
                start_line.wait();
                let mut conn =
                    ClientConnection::new(client, "localhost".try_into().unwrap()).unwrap();
                let mut sock = tcp(addr);
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).expect("flood handshake");
                }
            })
        })
        .collect();
    let watcher = {
        let flooding = flooding.clone();
        thread::spawn(move || {
            let all_done = threads.into_iter().all(|t| t.join().is_ok());
            flooding.store(false, Ordering::SeqCst);
            all_done
        })
    };
    start_line.wait();
    let mut echoed_during_flood = 0;
    let mut slowest = Duration::ZERO;
    while flooding.load(Ordering::SeqCst) {
        let sent = Instant::now();
        assert_echoes(&mut ws, "served during the flood");
        slowest = slowest.max(sent.elapsed());
        echoed_during_flood += 1;
    }
    assert!(watcher.join().unwrap(), "every flood handshake completed");
    eprintln!("{echoed_during_flood} echoes during {FLOOD} handshakes, slowest {slowest:?}");
    assert!(echoed_during_flood > 0, "the open connection was served");
    assert_echoes(&mut ws, "after the flood");
    stop(handle, join);
}

/// Echoes, but holds its loop for a while on "stall", and answers "deferred" with the
/// loop's count of TLS handshakes put off by the per-turn cap.
struct Stall;

impl Handler for Stall {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: wsloop::ConnId, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        let reply = match text {
            "stall" => {
                thread::sleep(Duration::from_millis(300));
                text.to_owned()
            }
            "deferred" => ctx
                .metrics()
                .encode()
                .lines()
                .find(|line| line.starts_with("wsloop_tls_handshakes_deferred_total{"))
                .and_then(|line| line.rsplit(' ').next())
                .expect("the deferred-handshakes counter")
                .to_owned(),
            _ => text.to_owned(),
        };
        let _ = ctx.send_text(id, &reply);
    }
}

/// ClientHellos that all arrive while the loop is busy are read at most 32 a turn: the
/// rest wait for later turns (counted), and every handshake still completes.
#[test]
fn the_handshake_cap_puts_a_burst_of_client_hellos_off_to_later_turns() {
    const BURST: usize = 100;
    let pki = Pki::new("cap");
    pki.issue("cap");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Stall);
    let client = pki.client();
    let mut ws = wss_connect(addr, &client);
    let mut burst: Vec<_> = (0..BURST)
        .map(|_| {
            let conn = ClientConnection::new(client.clone(), "localhost".try_into().unwrap());
            (conn.unwrap(), tcp(addr))
        })
        .collect();
    // Accepted before the loop stalls, so that only their hellos are left to read.
    assert_echoes(&mut ws, "all connected");

    ws.send(TMessage::text("stall")).unwrap();
    thread::sleep(Duration::from_millis(100));
    for (conn, sock) in &mut burst {
        conn.write_tls(sock).unwrap();
    }
    assert_eq!(wss_read_data(&mut ws), TMessage::text("stall"));
    for (conn, sock) in &mut burst {
        while conn.is_handshaking() {
            conn.complete_io(sock)
                .expect("every handshake of the burst completes");
        }
    }
    ws.send(TMessage::text("deferred")).unwrap();
    let TMessage::Text(deferred) = wss_read_data(&mut ws) else {
        panic!("a text answer")
    };
    let deferred: usize = deferred.parse().unwrap();
    eprintln!("{deferred} handshake reads deferred for a burst of {BURST}");
    assert!(
        deferred >= BURST - 32,
        "at most 32 of {BURST} waiting hellos are read in one turn; deferred {deferred}"
    );
    stop(handle, join);
}

/// Writes a large message to a client that does not read: the server's buffered amount
/// includes what rustls holds, reading pauses over the limit, and all of it arrives intact
/// once the client reads.
struct Flood {
    report: mpsc::Sender<usize>,
}

/// 256 KiB each: 8 MiB in all.
const FLOOD_MESSAGES: u8 = 32;

impl Handler for Flood {
    type Data = ();

    fn on_message(&mut self, ctx: &mut Context<'_>, id: wsloop::ConnId, _msg: Message<'_>) {
        for i in 0..FLOOD_MESSAGES {
            let _ = ctx.send_binary(id, &[i; 256 << 10]);
        }
        let _ = self.report.send(ctx.buffered_amount(id));
    }
}

#[test]
fn buffered_amount_counts_what_tls_holds_and_everything_arrives() {
    let pki = Pki::new("buffered");
    pki.issue("buffered");
    let (_cert, config) = pki.server();
    let (report, reports) = mpsc::channel();
    let (addr, handle, join) = start(config, Flood { report });
    let sock = tcp(addr);
    // A small receive window, so the kernel holds little of what the server sends.
    set_recv_buffer(&sock, 64 << 10);
    let conn = ClientConnection::new(pki.client(), "localhost".try_into().unwrap()).unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    let (mut ws, _) = tungstenite::client(url, StreamOwned::new(conn, sock)).unwrap();
    ws.send(TMessage::text("go")).unwrap();
    let buffered = reports.recv_timeout(IO_TIMEOUT).unwrap();
    // 8 MiB sent to a client that is not reading: the kernel's buffers take a few MiB at
    // most, the rest is counted (queued plaintext, or plaintext rustls took and has not
    // written), and never more than was sent.
    let total = usize::from(FLOOD_MESSAGES) * ((256 << 10) + 10);
    assert!(
        buffered > 2 << 20 && buffered <= total,
        "buffered amount {buffered} of {total}"
    );
    for i in 0..FLOOD_MESSAGES {
        assert_eq!(wss_read_data(&mut ws), TMessage::binary(vec![i; 256 << 10]));
    }
    // Reading resumed once the queue drained: the next message is read and answered.
    ws.send(TMessage::text("again")).unwrap();
    assert_eq!(wss_read_data(&mut ws), TMessage::binary(vec![0; 256 << 10]));
    stop(handle, join);
}

#[test]
fn python_websockets_over_wss_with_the_test_ca() {
    if !common::python_websockets_available() {
        return;
    }
    let pki = Pki::new("python");
    pki.issue("python");
    let (_cert, config) = pki.server();
    let (addr, handle, join) = start(config, Echo);
    let script: &Path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/wss_client.py"
    ));
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("wss://localhost:{}/", addr.port()))
        .arg(pki.ca_path())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stop(handle, join);
    assert!(
        output.status.success() && stdout.contains("wss interop: 4 passed, 0 failed"),
        "wss interop client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
