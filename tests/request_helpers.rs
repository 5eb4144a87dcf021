//! The request helpers (path, query, cookies) as a handler sees them over real sockets, and the
//! chat rooms, whose name is the path without its query.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tungstenite::Message as TMessage;
use wsloop::rooms::EchoRooms;
use wsloop::{ConnId, Context, Handler, Message, Request, Upgrade};

/// What the hook read from one upgrade request, copied out of the request bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: String,
    target: String,
    query: Option<String>,
    params: Vec<(String, String)>,
    session: Option<String>,
    cookies: Vec<(String, String)>,
}

/// Accepts a request only with a `token` query parameter, like a token-in-the-URL login.
struct TokenGate {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Handler for TokenGate {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        let owned = |(a, b): (&str, &str)| (a.to_owned(), b.to_owned());
        self.seen.lock().unwrap().push(Seen {
            path: req.path().to_owned(),
            target: req.target().to_owned(),
            query: req.query().map(str::to_owned),
            params: req
                .query_params()
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
            session: req.cookie("session").map(str::to_owned),
            cookies: req.cookies().map(owned).collect(),
        });
        match req.query_param("token") {
            Some(token) if !token.is_empty() => Upgrade::accept(),
            _ => Upgrade::reject(401, "a token is needed: ?token=..."),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_handler_reads_query_and_cookies() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = TokenGate { seen: seen.clone() };
    let (addr, handle, join) = start(config(), handler);

    let mut raw = Raw::connect(addr);
    raw.handshake(&upgrade_request(
        "/chat/lobby?token=s%20cret&name=Ada+L&flag",
        &[
            ("Cookie", "session=abc; theme=\"dark\""),
            ("Cookie", "session=later"),
        ],
    ));
    raw.close_normally();

    let mut raw = Raw::connect(addr);
    raw.write(&upgrade_request("/chat/lobby?name=x", &[]));
    let response = raw.read_response();
    assert_eq!(response.status, 401);
    assert_eq!(response.body_text(), "a token is needed: ?token=...");

    assert_eq!(
        *seen.lock().unwrap(),
        [
            Seen {
                path: "/chat/lobby".into(),
                target: "/chat/lobby?token=s%20cret&name=Ada+L&flag".into(),
                query: Some("token=s%20cret&name=Ada+L&flag".into()),
                params: pairs(&[("token", "s cret"), ("name", "Ada L"), ("flag", "")]),
                session: Some("abc".into()),
                cookies: pairs(&[("session", "abc"), ("theme", "dark"), ("session", "later")]),
            },
            Seen {
                path: "/chat/lobby".into(),
                target: "/chat/lobby?name=x".into(),
                query: Some("name=x".into()),
                params: pairs(&[("name", "x")]),
                session: None,
                cookies: Vec::new(),
            },
        ]
    );
    stop(handle, join);
}

#[test]
fn a_query_string_does_not_change_the_room() {
    let (addr, handle, join) = start(config(), EchoRooms::default());
    let mut a = ws_connect_path(addr, "/chat/lobby?token=1");
    // The server subscribes a connection before it answers 101, so both are in the room now.
    let mut b = ws_connect_path(addr, "/chat/lobby");
    a.send(TMessage::text("hello")).unwrap();
    assert_eq!(ws_read_data(&mut b), TMessage::text("hello"));
    ws_close(a);
    ws_close(b);
    stop(handle, join);
}
