//! An echo server that checks each upgrade request: only `/echo` is served, the `Origin`
//! (when a browser sends one) must be local, `echo.v1` is chosen when offered, and every
//! accepted connection gets an `X-Served-By` header. It also reports open and close events.
//!
//! ```sh
//! cargo run --example upgrade_hook
//! # then, e.g. with websocat: websocat --protocol echo.v1 ws://127.0.0.1:9002/echo
//! ```

use wsloop::{CloseCode, Config, ConnId, Context, Handler, Message, Request, Server, Upgrade};

struct CheckedEcho;

impl Handler for CheckedEcho {
    type Data = ();

    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        if req.path() != "/echo" {
            return Upgrade::reject(404, "try /echo");
        }
        if let Some(origin) = req.origin() {
            if !origin.starts_with("http://localhost") && !origin.starts_with("http://127.0.0.1") {
                return Upgrade::reject(403, "origin not allowed");
            }
        }
        let accept = Upgrade::accept().header("X-Served-By", "wsloop");
        match req.protocols().find(|p| *p == "echo.v1") {
            Some(protocol) => accept.protocol(protocol),
            None => accept,
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        println!("{id} open from {:?}", ctx.peer_addr(id));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        let _ = ctx.send(id, msg);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, id: ConnId, code: CloseCode, reason: &str) {
        println!("{id} closed: {code} {reason:?}");
    }
}

fn main() -> std::io::Result<()> {
    let config = Config {
        listen: "127.0.0.1:9002".parse().expect("a valid address"),
        ..Config::default()
    };
    let server = Server::bind(config, CheckedEcho)?;
    println!("listening on ws://{}/echo", server.local_addr());
    server.run()
}
