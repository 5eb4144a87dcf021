//! A chat server on every core: `ws://127.0.0.1:9003/chat/ROOM?name=YOU`.
//!
//! Connections without a name are refused; each message goes to the rest of the room tagged
//! with its sender's name; joins and leaves are announced; every member hears a tick every
//! 10 s; `GET /healthz` answers for a load balancer. The name and room travel with the
//! connection (`Handler::Data`), the tick is a loop timer: no map of connections, no thread.
//!
//! ```sh
//! cargo run --example chat
//! # then, e.g.: websocat 'ws://127.0.0.1:9003/chat/lobby?name=ada'
//! ```

use std::time::Duration;

use wsloop::{
    CloseCode, Cluster, Config, ConnId, Context, Handler, Message, Request, Response, Timer,
    Upgrade,
};

/// The topic every member hears the tick on.
const TICKS: &str = "ticks";

struct Chat {
    tick: Duration,
}

/// What a connection carries from its upgrade request.
struct Member {
    name: String,
    room: String,
}

impl Chat {
    /// Sends `line` to everyone in `id`'s room but `id`.
    fn tell_room(ctx: &mut Context<'_, Member>, id: ConnId, line: &str) {
        if let Some(room) = ctx.data(id).map(|m| m.room.clone()) {
            ctx.publish(&room, Message::Text(line), Some(id));
        }
    }

    fn name(ctx: &Context<'_, Member>, id: ConnId) -> String {
        ctx.data(id).map_or_else(String::new, |m| m.name.clone())
    }
}

impl Handler for Chat {
    type Data = Member;

    fn on_start(&mut self, ctx: &mut Context<'_, Member>) {
        // One loop ticks for all: a publish reaches the subscribers of every loop.
        if ctx.loop_index() == 0 {
            let _ = ctx.set_interval(self.tick, None, 0);
        }
    }

    fn on_request(&mut self, _ctx: &mut Context<'_, Member>, req: &Request<'_, '_>) -> Response {
        match req.path() {
            "/healthz" => Response::text(200, "ok\n"),
            _ => Response::text(404, "chat at /chat/ROOM?name=YOU\n"),
        }
    }

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade<Member> {
        let room = req.path().strip_prefix("/chat/").filter(|r| !r.is_empty());
        let name = req
            .query_param("name")
            .filter(|n| (1..=32).contains(&n.len()));
        match (room, name) {
            (None, _) => Upgrade::reject(404, "try /chat/ROOM?name=YOU"),
            (_, None) => Upgrade::reject(400, "add ?name=YOU (1 to 32 bytes)"),
            (Some(room), Some(name)) => {
                Upgrade::accept()
                    .subscribe(room)
                    .subscribe(TICKS)
                    .data(Member {
                        name: name.into_owned(),
                        room: room.to_owned(),
                    })
            }
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_, Member>, id: ConnId) {
        let line = format!("* {} joined", Chat::name(ctx, id));
        Chat::tell_room(ctx, id, &line);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Member>, id: ConnId, msg: Message<'_>) {
        if let Message::Text(text) = msg {
            let line = format!("{}: {text}", Chat::name(ctx, id));
            Chat::tell_room(ctx, id, &line);
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Member>, id: ConnId, _: CloseCode, _: &str) {
        let line = format!("* {} left", Chat::name(ctx, id));
        Chat::tell_room(ctx, id, &line);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Member>, _timer: Timer) {
        ctx.publish(TICKS, Message::Text("* tick"), None);
    }
}

fn main() -> std::io::Result<()> {
    let config = Config {
        listen: "127.0.0.1:9003".parse().expect("a valid address"),
        ..Config::default()
    };
    let tick = Duration::from_secs(10);
    let cluster = Cluster::bind(config, wsloop::available_cores(), |_| Chat { tick })?;
    println!("chat on ws://{}/chat/ROOM?name=YOU", cluster.local_addr());
    cluster.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use tungstenite::{Message as WsMessage, WebSocket};

    type Client = WebSocket<TcpStream>;

    fn join(addr: std::net::SocketAddr, path: &str) -> Result<Client, u16> {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        match tungstenite::client(format!("ws://{addr}{path}"), stream) {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                Err(response.status().as_u16())
            }
            Err(err) => panic!("{err}"),
        }
    }

    /// The next chat line, skipping ticks.
    fn line(ws: &mut Client) -> String {
        loop {
            match ws.read().unwrap() {
                WsMessage::Text(text) if text.as_str() != "* tick" => return text.to_string(),
                _ => {}
            }
        }
    }

    #[test]
    fn members_on_two_loops_chat_by_name_and_hear_the_tick() {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let tick = Duration::from_millis(50);
        let cluster = Cluster::bind(config, 2, |_| Chat { tick }).unwrap();
        let addr = cluster.local_addr();
        let stop = cluster.shutdown_handle();
        let server = std::thread::spawn(move || cluster.run());

        assert_eq!(join(addr, "/chat/lobby").err(), Some(400), "no name");
        assert_eq!(join(addr, "/elsewhere?name=x").err(), Some(404));
        let mut ada = join(addr, "/chat/lobby?name=ada").unwrap();
        let mut bob = join(addr, "/chat/lobby?name=bob").unwrap();
        let mut cy = join(addr, "/chat/other?name=cy").unwrap();
        assert_eq!(line(&mut ada), "* bob joined");
        ada.send(WsMessage::text("hello")).unwrap();
        assert_eq!(line(&mut bob), "ada: hello");
        // Everyone hears the tick, whichever loop holds them.
        for ws in [&mut ada, &mut bob, &mut cy] {
            while ws.read().unwrap() != WsMessage::text("* tick") {}
        }
        drop(bob);
        assert_eq!(line(&mut ada), "* bob left");
        cy.send(WsMessage::text("anyone?")).unwrap();
        drop((ada, cy));
        stop.shutdown();
        server.join().unwrap().unwrap();
    }
}
