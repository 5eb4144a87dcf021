//! The binary's handler: echo, plus chat rooms for fan-out.
//!
//! A connection to `/chat/ROOM` joins topic `ROOM`; every message it sends is published to
//! everyone else in the room. Any other path echoes, like [`Echo`](crate::Echo). This is what
//! `wsloop-load broadcast` drives.

use crate::handler::{Handler, Message, Response, Upgrade};
use crate::proto::Request;
use crate::server::{ConnId, Context};

/// The path prefix of the chat rooms.
pub const ROOM_PREFIX: &str = "/chat/";

/// Echo on every path, chat rooms under [`ROOM_PREFIX`].
///
/// Subprotocols are answered as Node's `ws` does by default: the first one the client
/// offers, so a browser that offers one (`new WebSocket(url, "chat")`) connects. A server
/// told which it speaks ([`EchoRooms::speaking`]) picks the first offered of those, and
/// answers none when the client offers none of them (the client then decides whether to go
/// on, as RFC 6455 section 4.1 leaves to it).
#[derive(Debug, Default, Clone)]
pub struct EchoRooms {
    protocols: Vec<String>,
}

impl EchoRooms {
    /// Speaks only these subprotocols (the binary's `--protocol`).
    pub fn speaking(protocols: Vec<String>) -> EchoRooms {
        EchoRooms { protocols }
    }

    /// An accepting answer with the subprotocol, if any.
    fn answer(&self, req: &Request<'_, '_>) -> Upgrade {
        match self.protocol(req) {
            Some(protocol) => Upgrade::accept().protocol(protocol),
            None => Upgrade::accept(),
        }
    }

    /// The subprotocol to answer: the first offered that this server speaks.
    fn protocol<'b>(&self, req: &Request<'_, 'b>) -> Option<&'b str> {
        let mut offered = req.protocols();
        if self.protocols.is_empty() {
            return offered.next();
        }
        offered.find(|p| self.protocols.iter().any(|ours| ours == p))
    }
}

impl Handler for EchoRooms {
    type Data = ();

    /// `GET /healthz` answers `200 ok` for load balancers and probes; other plain requests
    /// get the default `426 Upgrade Required`.
    fn on_request(&mut self, _ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/healthz") => Response::text(200, "ok\n"),
            (_, "/healthz") => Response::text(405, "GET or HEAD\n").header("Allow", "GET, HEAD"),
            _ => {
                Response::text(426, "this is a WebSocket endpoint\n").header("Upgrade", "websocket")
            }
        }
    }

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match room_of(req) {
            Some("") => Upgrade::reject(404, "a room needs a name: /chat/NAME"),
            Some(room) => self.answer(req).subscribe(room),
            None => self.answer(req),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        // A room member is subscribed to exactly its room.
        let room = ctx.topics(id).next().map(str::to_owned);
        match room {
            Some(room) => {
                ctx.publish(&room, msg, Some(id));
            }
            None => {
                let _ = ctx.send(id, msg);
            }
        }
    }
}

/// The room the request's path names; a query string is not part of it.
fn room_of<'b>(req: &Request<'_, 'b>) -> Option<&'b str> {
    req.path().strip_prefix(ROOM_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::proto::{parse_request, Parsed, Status, MAX_HEADERS};

    /// The room of a GET of `target`.
    fn room_of_target(target: &str) -> Option<String> {
        let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(text.as_bytes(), &mut headers) {
            Ok(Status::Complete((Parsed::Plain(req), _))) => room_of(&req).map(str::to_owned),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rooms_come_from_the_path() {
        assert_eq!(room_of_target("/chat/lobby").as_deref(), Some("lobby"));
        assert_eq!(
            room_of_target("/chat/lobby?token=1").as_deref(),
            Some("lobby")
        );
        assert_eq!(room_of_target("/chat/").as_deref(), Some(""));
        assert_eq!(room_of_target("/chat/?x").as_deref(), Some(""));
        assert_eq!(room_of_target("/"), None);
        assert_eq!(room_of_target("/chatroom"), None);
    }
}
