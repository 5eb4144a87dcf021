//! A JSON endpoint and a WebSocket path on one port: `GET /api/stats` reports the loop's
//! open connections and messages echoed; `ws://127.0.0.1:9005/ws` echoes.
//!
//! ```sh
//! cargo run --example json_api
//! curl http://127.0.0.1:9005/api/stats
//! ```

use wsloop::{Config, ConnId, Context, Handler, Message, Request, Response, Server, Upgrade};

#[derive(Default)]
struct Api {
    echoed: u64,
}

impl Handler for Api {
    type Data = ();

    fn on_request(&mut self, ctx: &mut Context<'_>, req: &Request<'_, '_>) -> Response {
        match (req.method(), req.path()) {
            ("GET" | "HEAD", "/api/stats") => {
                let open = ctx.connections().count();
                let body = format!(r#"{{"open":{open},"echoed":{}}}"#, self.echoed);
                Response::json(200, &body).header("Cache-Control", "no-store")
            }
            (_, "/api/stats") => Response::new(405).header("Allow", "GET, HEAD"),
            _ => Response::text(404, "try /api/stats or ws://.../ws\n"),
        }
    }

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match req.path() {
            "/ws" => Upgrade::accept(),
            _ => Upgrade::reject(404, "the WebSocket is at /ws"),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        self.echoed += 1;
        let _ = ctx.send(id, msg);
    }
}

fn main() -> std::io::Result<()> {
    let config = Config {
        listen: "127.0.0.1:9005".parse().expect("a valid address"),
        ..Config::default()
    };
    let server = Server::bind(config, Api::default())?;
    println!("http://{0}/api/stats and ws://{0}/ws", server.local_addr());
    server.run()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn stats_and_echo_share_the_port() {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let server = Server::bind(config, Api::default()).unwrap();
        let addr = server.local_addr();
        let stop = server.shutdown_handle();
        let running = std::thread::spawn(move || server.run());
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
        ws.send(tungstenite::Message::text("ping")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("ping"));
        let response = get(addr, "/api/stats");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("Content-Type: application/json\r\n"));
        assert!(response.ends_with(r#"{"open":1,"echoed":1}"#), "{response}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        drop(ws);
        stop.shutdown();
        running.join().unwrap().unwrap();
    }
}
