//! Plain HTTP on the WebSocket port (`Handler::on_request`), `HEAD`, rejections with
//! headers, and the answers the server refuses to send on the handler's behalf.

mod common;

use common::*;
use wsloop::{ConnId, Context, Echo, Handler, Message, Request, Response, Upgrade};

/// A JSON endpoint, a page, and an upgrade hook that checks a token.
struct App;

impl Handler for App {
    type Data = ();

    fn on_request(&mut self, _ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/api/stats") => {
                Response::json(200, r#"{"connections":0}"#).header("Cache-Control", "no-store")
            }
            ("POST", "/api/stats") => Response::new(405).header("Allow", "GET, HEAD"),
            (_, "/teapot") => Response::text(418, "short and stout\n"),
            (_, "/informational") => Response::new(103),
            // A handler bug: headers the server owns, and one that would split the response.
            (_, "/sneaky") => Response::text(200, "body")
                .header("Content-Length", "999")
                .header("X-Evil", "a\r\nSet-Cookie: x=1"),
            _ => Response::text(404, "no such page\n"),
        }
    }

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match req.path() {
            "/private" => Upgrade::reject(401, "log in first")
                .header("WWW-Authenticate", "Bearer realm=\"chat\""),
            "/redirect" => Upgrade::reject(302, "not an error status"),
            "/pick-unoffered" => Upgrade::accept().protocol("never.offered"),
            "/pick-offered" => Upgrade::accept().protocol("chat.v2"),
            _ => Upgrade::accept(),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }
}

fn get(addr: std::net::SocketAddr, request: &str) -> HttpResponse {
    let mut raw = Raw::connect(addr);
    raw.write(request.as_bytes());
    let response = raw.read_response();
    raw.expect_closed();
    response
}

#[test]
fn a_handler_serves_json_next_to_its_websocket_paths() {
    let (addr, handle, join) = start(config(), App);
    let response = get(addr, "GET /api/stats HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.body_text(), r#"{"connections":0}"#);
    // Any method reaches the hook; the handler decides.
    let response = get(
        addr,
        "POST /api/stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        get(addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").status,
        404
    );
    assert_eq!(
        get(addr, "GET /teapot HTTP/1.1\r\nHost: x\r\n\r\n").status,
        418
    );
    // The WebSocket paths still upgrade on the same port.
    let mut ws = ws_connect_path(addr, "/chat");
    ws.send(tungstenite::Message::text("hi")).unwrap();
    assert_eq!(ws_read_data(&mut ws), tungstenite::Message::text("hi"));
    stop(handle, join);
}

#[test]
fn head_gets_the_length_without_the_body() {
    let (addr, handle, join) = start(config(), App);
    let mut raw = Raw::connect(addr);
    raw.write(b"HEAD /api/stats HTTP/1.1\r\nHost: x\r\n\r\n");
    // The response ends at the blank line: Content-Length tells the size of what GET sends.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut raw.stream, &mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("Content-Length: 17\r\n"), "{text:?}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after the headers: {text:?}"
    );
    stop(handle, join);
}

#[test]
fn headers_the_server_owns_or_that_would_split_the_response_are_left_out() {
    let (addr, handle, join) = start(config(), App);
    let response = get(addr, "GET /sneaky HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("4"));
    assert_eq!(response.header("x-evil"), None);
    assert_eq!(response.header("set-cookie"), None);
    assert_eq!(response.body_text(), "body");
    stop(handle, join);
}

#[test]
fn a_non_final_status_from_on_request_becomes_500() {
    let (addr, handle, join) = start(config(), App);
    assert_eq!(
        get(addr, "GET /informational HTTP/1.1\r\nHost: x\r\n\r\n").status,
        500
    );
    stop(handle, join);
}

#[test]
fn the_default_hook_answers_426_even_for_healthz() {
    let (addr, handle, join) = start(config(), Echo);
    for path in ["/", "/healthz"] {
        let response = get(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(response.status, 426, "{path}");
        assert_eq!(response.header("upgrade"), Some("websocket"));
    }
    stop(handle, join);
}

#[test]
fn a_rejection_carries_its_headers() {
    let (addr, handle, join) = start(config(), App);
    let mut raw = Raw::connect(addr);
    raw.write(&upgrade_request("/private", &[]));
    let response = raw.read_response();
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("www-authenticate"),
        Some("Bearer realm=\"chat\"")
    );
    assert_eq!(response.body_text(), "log in first");
    raw.expect_closed();
    stop(handle, join);
}

#[test]
fn a_rejection_outside_4xx_5xx_is_refused_with_500() {
    let (addr, handle, join) = start(config(), App);
    let mut raw = Raw::connect(addr);
    raw.write(&upgrade_request("/redirect", &[]));
    assert_eq!(raw.read_response().status, 500);
    raw.expect_closed();
    stop(handle, join);
}

#[test]
fn a_subprotocol_the_client_did_not_offer_is_refused_with_500() {
    let (addr, handle, join) = start(config(), App);
    let offered = [("Sec-WebSocket-Protocol", "chat.v1, chat.v2")];
    let mut raw = Raw::connect(addr);
    raw.write(&upgrade_request("/pick-unoffered", &offered));
    assert_eq!(raw.read_response().status, 500);
    raw.expect_closed();
    // Choosing one that was offered upgrades.
    let mut raw = Raw::connect(addr);
    let response = raw.handshake(&upgrade_request("/pick-offered", &offered));
    assert_eq!(response.header("sec-websocket-protocol"), Some("chat.v2"));
    raw.close_normally();
    stop(handle, join);
}
