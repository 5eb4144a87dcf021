//! A periodic timer per connection: every connection hears how long it has been connected,
//! once a second, from a timer that belongs to it and goes away with it.
//!
//! ```sh
//! cargo run --example clock
//! # then, e.g.: websocat ws://127.0.0.1:9004/
//! ```

use std::time::Duration;

use wsloop::{Config, ConnId, Context, Handler, Message, Server, Timer};

struct Clock {
    every: Duration,
}

impl Handler for Clock {
    /// Seconds (beats) this connection has been told about.
    type Data = u64;

    fn on_upgrade(&mut self, _req: &wsloop::Request<'_, '_>) -> wsloop::Upgrade<u64> {
        wsloop::Upgrade::accept().data(0)
    }

    fn on_open(&mut self, ctx: &mut Context<'_, u64>, id: ConnId) {
        let _ = ctx.set_interval(self.every, Some(id), 0);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64>, timer: Timer) {
        let Some(id) = timer.conn else { return };
        if let Some(beats) = ctx.data_mut(id) {
            *beats += 1;
            let line = format!("connected for {beats} beat(s)");
            let _ = ctx.send(id, Message::Text(&line));
        }
    }
}

fn main() -> std::io::Result<()> {
    let config = Config {
        listen: "127.0.0.1:9004".parse().expect("a valid address"),
        ..Config::default()
    };
    let server = Server::bind(
        config,
        Clock {
            every: Duration::from_secs(1),
        },
    )?;
    println!("clock on ws://{}/", server.local_addr());
    server.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_hears_its_own_beats() {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        let server = Server::bind(
            config,
            Clock {
                every: Duration::from_millis(20),
            },
        )
        .unwrap();
        let addr = server.local_addr();
        let stop = server.shutdown_handle();
        let running = std::thread::spawn(move || server.run());
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).unwrap();
        for beat in 1..=3 {
            let text = ws.read().unwrap().into_text().unwrap();
            assert_eq!(text.as_str(), format!("connected for {beat} beat(s)"));
        }
        drop(ws);
        stop.shutdown();
        running.join().unwrap().unwrap();
    }
}
