//! The binary's handler: echo, plus chat rooms for fan-out, and optionally the live page
//! and `/metrics`.
//!
//! A connection to `/chat/ROOM` joins the room; every message it sends is published to
//! everyone else in the room. Any other path echoes, like [`Echo`](crate::Echo). This is what
//! `wsloop-load broadcast` drives. With [`EchoRooms::with_page`], `GET /` serves the live
//! page and `/stats` streams the server's figures to it.

use std::time::Duration;

use crate::handler::{Handler, Message, Response, Upgrade};
use crate::metrics::Metrics;
use crate::page::{StatsFeed, HTML, STATS_TOPIC};
use crate::proto::Request;
use crate::server::{ConnId, Context, Timer};

/// The path prefix of the chat rooms.
pub const ROOM_PREFIX: &str = "/chat/";

/// The path the live page's figures stream from.
pub const STATS_PATH: &str = "/stats";

/// How often the figures are published.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Echo on every path, chat rooms under [`ROOM_PREFIX`].
///
/// Subprotocols are answered as Node's `ws` does by default: the first one the client
/// offers, so a browser that offers one (`new WebSocket(url, "chat")`) connects. A server
/// told which it speaks ([`EchoRooms::speaking`]) picks the first offered of those, and
/// answers none when the client offers none of them (the client then decides whether to go
/// on, as RFC 6455 section 4.1 leaves to it).
#[derive(Debug, Default)]
pub struct EchoRooms {
    protocols: Vec<String>,
    page: bool,
    metrics_route: bool,
    /// Loop 0's feed of figures, once the loop has started (with the page only).
    feed: Option<StatsFeed>,
}

/// A copy for another loop: the feed is loop 0's own and starts there.
impl Clone for EchoRooms {
    fn clone(&self) -> EchoRooms {
        EchoRooms {
            protocols: self.protocols.clone(),
            page: self.page,
            metrics_route: self.metrics_route,
            feed: None,
        }
    }
}

impl EchoRooms {
    /// Speaks only these subprotocols (the binary's `--protocol`).
    pub fn speaking(protocols: Vec<String>) -> EchoRooms {
        EchoRooms {
            protocols,
            ..EchoRooms::default()
        }
    }

    /// Also serves the live page at `GET /` ([`HTML`]) and streams the server's figures to
    /// WebSockets at [`STATS_PATH`], once a second.
    pub fn with_page(mut self) -> EchoRooms {
        self.page = true;
        self
    }

    /// Also answers `GET /metrics` with every metric in the Prometheus text format
    /// ([`Metrics::encode`]).
    pub fn with_metrics_route(mut self) -> EchoRooms {
        self.metrics_route = true;
        self
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

    /// Loop 0 publishes the figures once a second, for every loop's `/stats` subscribers.
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if self.page && ctx.loop_index() == 0 {
            let mut feed = StatsFeed::new(ctx.metrics());
            // The first tick only sets the baseline of the rates.
            let _ = feed.tick();
            self.feed = Some(feed);
            if let Err(err) = ctx.set_interval(STATS_EVERY, None, 0) {
                log::error!("the live page's figures will not update: {err}");
            }
        }
    }

    /// `GET /healthz` answers `200 ok` for load balancers and probes; `/` the page and
    /// `/metrics` the metrics when asked for; other plain requests get `426 Upgrade
    /// Required`.
    fn on_request(&mut self, ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
        let get = matches!(req.method(), "GET" | "HEAD");
        match req.path() {
            "/healthz" if get => Response::text(200, "ok\n"),
            "/" if get && self.page => Response::new(200)
                .header("Content-Type", "text/html; charset=utf-8")
                // The page talks only to this server: nothing from elsewhere may run in it.
                .header(
                    "Content-Security-Policy",
                    "default-src 'self'; connect-src 'self' ws: wss:; \
                     style-src 'unsafe-inline'; script-src 'unsafe-inline'",
                )
                .body(HTML),
            "/metrics" if get && self.metrics_route => Response::new(200)
                .header("Content-Type", Metrics::CONTENT_TYPE)
                .body(ctx.metrics().encode()),
            path if self.serves(path) => {
                Response::text(405, "GET or HEAD\n").header("Allow", "GET, HEAD")
            }
            _ => {
                Response::text(426, "this is a WebSocket endpoint\n").header("Upgrade", "websocket")
            }
        }
    }

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        if self.page && req.path() == STATS_PATH {
            return self.answer(req).subscribe(STATS_TOPIC);
        }
        match room_of(req) {
            Some("") => Upgrade::reject(404, "a room needs a name: /chat/NAME"),
            Some(room) => self.answer(req).subscribe(room),
            None => self.answer(req),
        }
    }

    /// A new `/stats` subscriber gets the figures at once rather than within a second.
    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        if self.page && ctx.topics(id).any(|topic| topic == STATS_TOPIC) {
            let figures = StatsFeed::new(ctx.metrics()).current();
            let _ = ctx.send(id, Message::Text(&figures));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        // A room member is subscribed to exactly its room; a stats subscriber only listens.
        let topic = ctx.topics(id).next().map(str::to_owned);
        match topic {
            Some(topic) if topic == STATS_TOPIC => {}
            Some(room) => {
                ctx.publish(&room, msg, Some(id));
            }
            None => {
                let _ = ctx.send(id, msg);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _timer: Timer) {
        if let Some(feed) = &mut self.feed {
            let figures = feed.tick();
            ctx.publish(STATS_TOPIC, Message::Text(&figures), None);
        }
    }
}

impl EchoRooms {
    /// Whether `path` is one of this handler's plain-HTTP routes.
    fn serves(&self, path: &str) -> bool {
        match path {
            "/healthz" => true,
            "/" => self.page,
            "/metrics" => self.metrics_route,
            _ => false,
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
