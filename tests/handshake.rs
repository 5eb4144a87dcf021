//! The opening handshake over real sockets: the HTTP answers to bad requests, plain HTTP,
//! split and pipelined requests, and the handler's upgrade hook.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message as TMessage;
use wsloop::{ConnId, Context, Echo, Handler, Message, Request, Upgrade};

/// Sends `request` on a new connection; returns the answer after checking that the server
/// then closed the connection.
fn http(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut raw = Raw::connect(addr);
    raw.write(request);
    let response = raw.read_response();
    raw.expect_closed();
    response
}

/// An upgrade request whose header lines are all given (no defaults).
fn request_with(first_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut req = format!("{first_line}\r\n");
    for line in headers {
        req.push_str(line);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.into_bytes()
}

const HOST: &str = "Host: localhost";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";
const GOOD_KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";

#[test]
fn valid_request_gets_101_with_the_rfc_accept() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::connect(addr);
    let response = raw.handshake(&request_with(
        "GET /chat HTTP/1.1",
        &[HOST, UPGRADE, CONNECTION, GOOD_KEY, VERSION],
    ));
    assert_eq!(response.status_line, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(response.header("sec-websocket-protocol"), None);
    // Header values are case-insensitive tokens; "keep-alive, Upgrade" is what Firefox sends.
    let mut raw2 = Raw::connect(addr);
    raw2.handshake(&request_with(
        "GET / HTTP/1.1",
        &[
            HOST,
            "upgrade: WebSocket",
            "connection: keep-alive, Upgrade",
            GOOD_KEY,
            VERSION,
        ],
    ));
    raw.close_normally();
    raw2.close_normally();
    stop(handle, join);
}

#[test]
fn missing_or_other_version_is_426_with_version_13() {
    let (addr, handle, join) = start(config(), Echo);
    for version in [
        None,
        Some("Sec-WebSocket-Version: 8"),
        Some("Sec-WebSocket-Version: 14"),
    ] {
        let mut headers = vec![HOST, UPGRADE, CONNECTION, GOOD_KEY];
        headers.extend(version);
        let response = http(addr, &request_with("GET / HTTP/1.1", &headers));
        assert_eq!(response.status, 426, "version header {version:?}");
        assert_eq!(
            response.header("sec-websocket-version"),
            Some("13"),
            "version header {version:?}"
        );
    }
    stop(handle, join);
}

#[test]
fn bad_key_is_400() {
    let (addr, handle, join) = start(config(), Echo);
    let keys = [
        None,
        Some("Sec-WebSocket-Key: abc"),
        // 15 bytes in base64.
        Some("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"),
        // 17 bytes in base64.
        Some("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="),
        // 24 characters, but not base64.
        Some("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="),
    ];
    for key in keys {
        let mut headers = vec![HOST, UPGRADE, CONNECTION, VERSION];
        headers.extend(key);
        let response = http(addr, &request_with("GET / HTTP/1.1", &headers));
        assert_eq!(response.status, 400, "key header {key:?}");
    }
    stop(handle, join);
}

#[test]
fn post_is_405() {
    let (addr, handle, join) = start(config(), Echo);
    let response = http(
        addr,
        &request_with(
            "POST / HTTP/1.1",
            &[HOST, UPGRADE, CONNECTION, GOOD_KEY, VERSION],
        ),
    );
    assert_eq!(response.status, 405);
    stop(handle, join);
}

#[test]
fn http_1_0_upgrade_is_400() {
    let (addr, handle, join) = start(config(), Echo);
    let response = http(
        addr,
        &request_with(
            "GET / HTTP/1.0",
            &[HOST, UPGRADE, CONNECTION, GOOD_KEY, VERSION],
        ),
    );
    assert_eq!(response.status, 400);
    stop(handle, join);
}

#[test]
fn headers_past_max_handshake_bytes_are_431() {
    let mut cfg = config();
    cfg.max_handshake_bytes = 1024;
    let (addr, handle, join) = start(cfg, Echo);
    let pad = format!("X-Pad: {}", "p".repeat(1100));
    // A complete request over the limit.
    let response = http(
        addr,
        &request_with(
            "GET / HTTP/1.1",
            &[HOST, UPGRADE, CONNECTION, GOOD_KEY, VERSION, &pad],
        ),
    );
    assert_eq!(response.status, 431);
    // A request that never ends: the server must not wait for the end past the limit.
    let mut raw = Raw::connect(addr);
    let mut endless = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..40 {
        endless.extend_from_slice(format!("X-Header-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    assert!(endless.len() > 1024);
    raw.write(&endless);
    let response = raw.read_response();
    assert_eq!(response.status, 431);
    raw.expect_closed();
    drop(raw);
    // Under the limit is fine.
    let mut ok = Raw::connect(addr);
    ok.handshake(&upgrade_request("/", &[("X-Pad", &"p".repeat(500))]));
    ok.close_normally();
    stop(handle, join);
}

#[test]
fn plain_get_healthz_is_200_ok_from_the_binarys_handler() {
    let (addr, handle, join) = start(config(), wsloop::rooms::EchoRooms::default());
    let response = http(
        addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: probe\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text().trim_end(), "ok");
    stop(handle, join);
}

#[test]
fn plain_get_root_is_426() {
    let (addr, handle, join) = start(config(), Echo);
    let response = http(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 426);
    stop(handle, join);
}

#[test]
fn request_in_one_byte_writes_still_upgrades() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::connect(addr);
    for byte in upgrade_request("/slow", &[]) {
        raw.write(&[byte]);
        thread::sleep(Duration::from_millis(1));
    }
    let response = raw.read_response();
    assert_upgraded(&response);
    raw.send(OP_TEXT, b"after a slow start");
    assert_eq!(
        raw.read_message(),
        (OP_TEXT, b"after a slow start".to_vec())
    );
    raw.close_normally();
    stop(handle, join);
}

#[test]
fn first_frames_in_the_same_write_as_the_request_are_handled() {
    let (addr, handle, join) = start(config(), Echo);
    let mut raw = Raw::connect(addr);
    let mut bytes = upgrade_request("/", &[]);
    bytes.extend(client_frame(OP_TEXT, b"eager"));
    bytes.extend(client_frame(OP_BINARY, &[1, 2, 3]));
    raw.write(&bytes);
    assert_upgraded(&raw.read_response());
    assert_eq!(raw.read_message(), (OP_TEXT, b"eager".to_vec()));
    assert_eq!(raw.read_message(), (OP_BINARY, vec![1, 2, 3]));
    raw.close_normally();

    // The request split in two writes, the second carrying the end of the request and a
    // frame.
    let mut raw = Raw::connect(addr);
    let mut bytes = upgrade_request("/", &[]);
    bytes.extend(client_frame(OP_TEXT, b"split"));
    raw.write(&bytes[..20]);
    thread::sleep(Duration::from_millis(20));
    raw.write(&bytes[20..]);
    assert_upgraded(&raw.read_response());
    assert_eq!(raw.read_message(), (OP_TEXT, b"split".to_vec()));
    raw.close_normally();
    stop(handle, join);
}

// ---------------------------------------------------------------------------------------
// The upgrade hook
// ---------------------------------------------------------------------------------------

/// The path and `Origin` of each upgrade request the hook saw.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Rejects `/forbidden`, picks `chat.v2` when offered, adds a header, records `Origin`.
struct Hook {
    seen: Seen,
}

impl Handler for Hook {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        self.seen
            .lock()
            .unwrap()
            .push((req.path().to_owned(), req.origin().map(str::to_owned)));
        if req.path().starts_with("/forbidden") {
            return Upgrade::reject(403, "origin not allowed");
        }
        let mut answer = Upgrade::accept().header("X-Served-By", "wsloop-test");
        if let Some(chosen) = req.protocols().find(|p| *p == "chat.v2") {
            answer = answer.protocol(chosen);
        }
        answer
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }
}

fn hook() -> (Hook, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    (Hook { seen: seen.clone() }, seen)
}

#[test]
fn upgrade_hook_rejects_with_403() {
    let (handler, seen) = hook();
    let (addr, handle, join) = start(config(), handler);
    let response = http(addr, &upgrade_request("/forbidden", &[]));
    assert_eq!(response.status, 403);
    assert_eq!(response.body_text(), "origin not allowed");
    // tungstenite sees the same refusal.
    match tungstenite::client(format!("ws://{addr}/forbidden/too"), tcp(addr)) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            assert_eq!(resp.status().as_u16(), 403)
        }
        Err(err) => panic!("expected an HTTP 403, got {err}"),
        Ok(_) => panic!("expected an HTTP 403, got an open connection"),
    }
    let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
    assert_eq!(paths, ["/forbidden", "/forbidden/too"]);
    stop(handle, join);
}

#[test]
fn upgrade_hook_picks_a_subprotocol_and_adds_a_header() {
    let (handler, _seen) = hook();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::connect(addr);
    let response = raw.handshake(&upgrade_request(
        "/chat",
        &[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")],
    ));
    assert_eq!(response.header("sec-websocket-protocol"), Some("chat.v2"));
    assert_eq!(response.header("x-served-by"), Some("wsloop-test"));
    raw.close_normally();

    // Nothing offered that the hook wants: no protocol in the answer, the header still.
    let mut raw = Raw::connect(addr);
    let response = raw.handshake(&upgrade_request(
        "/chat",
        &[("Sec-WebSocket-Protocol", "chat.v1")],
    ));
    assert_eq!(response.header("sec-websocket-protocol"), None);
    assert_eq!(response.header("x-served-by"), Some("wsloop-test"));
    raw.close_normally();

    // tungstenite checks the answer against its offer.
    let mut request = format!("ws://{addr}/chat").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "chat.v2".parse().unwrap());
    let (mut ws, response) = tungstenite::client(request, tcp(addr)).expect("handshake");
    assert_eq!(
        response.headers()["sec-websocket-protocol"]
            .to_str()
            .unwrap(),
        "chat.v2"
    );
    ws.send(TMessage::text("with protocol")).unwrap();
    assert_eq!(ws_read_data(&mut ws), TMessage::text("with protocol"));
    ws_close(ws);
    stop(handle, join);
}

#[test]
fn upgrade_hook_sees_origin() {
    let (handler, seen) = hook();
    let (addr, handle, join) = start(config(), handler);
    let mut raw = Raw::connect(addr);
    raw.handshake(&upgrade_request(
        "/o",
        &[("Origin", "https://app.example.com")],
    ));
    let mut raw2 = Raw::connect(addr);
    raw2.handshake(&upgrade_request("/no-origin", &[]));
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("/o".to_owned(), Some("https://app.example.com".to_owned())),
            ("/no-origin".to_owned(), None),
        ]
    );
    raw.close_normally();
    raw2.close_normally();
    stop(handle, join);
}

#[test]
fn missing_host_or_connection_upgrade_is_400() {
    let (addr, handle, join) = start(config(), Echo);
    let response = http(
        addr,
        &request_with("GET / HTTP/1.1", &[UPGRADE, CONNECTION, GOOD_KEY, VERSION]),
    );
    assert_eq!(response.status, 400, "missing Host");
    let response = http(
        addr,
        &request_with("GET / HTTP/1.1", &[HOST, UPGRADE, GOOD_KEY, VERSION]),
    );
    assert_eq!(response.status, 400, "missing Connection");
    let response = http(
        addr,
        &request_with(
            "GET / HTTP/1.1",
            &[HOST, UPGRADE, "Connection: keep-alive", GOOD_KEY, VERSION],
        ),
    );
    assert_eq!(response.status, 400, "Connection without upgrade");
    stop(handle, join);
}

#[test]
fn garbage_instead_of_http_is_400() {
    let (addr, handle, join) = start(config(), Echo);
    let response = http(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    stop(handle, join);
}
