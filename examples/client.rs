//! The client role: connect, send, print what comes back, close. The browser's
//! `new WebSocket(url)` in wsloop's event loop.
//!
//! ```sh
//! cargo run --example client -- ws://127.0.0.1:9001/ "hello"
//! cargo run --example client -- wss://localhost:9443/ "hello" ca.pem   # trusting ca.pem
//! ```
//!
//! With no server at hand, run wsloop's echo server first: `cargo run --release`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use wsloop::client::{ConnectOptions, Opened, Refused};
use wsloop::{CloseCode, Config, ConnId, Context, Error, Handler, Message, Server, ShutdownHandle};

/// Sends one message, prints the first answer, and closes.
struct Client {
    message: String,
    stop: Option<ShutdownHandle>,
    failed: Arc<AtomicBool>,
}

impl Handler for Client {
    type Data = ();

    fn on_upgrade_response(&mut self, _ctx: &mut Context<'_>, _id: ConnId, response: &Opened) {
        let protocol = response.protocol.as_deref().unwrap_or("none");
        println!("upgraded (subprotocol: {protocol})");
    }

    fn on_open(&mut self, ctx: &mut Context<'_>, id: ConnId) {
        println!("open; sending {:?}", self.message);
        let _ = ctx.send_text(id, &self.message);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        match msg {
            Message::Text(text) => println!("received: {text}"),
            Message::Binary(bytes) => println!("received {} bytes", bytes.len()),
        }
        let _ = ctx.close(id, CloseCode::NORMAL, "done");
    }

    fn on_unexpected_response(&mut self, _ctx: &mut Context<'_>, _id: ConnId, response: &Refused) {
        let body = String::from_utf8_lossy(&response.body);
        println!("refused: {} {}: {body}", response.status, response.reason);
    }

    fn on_error(&mut self, _ctx: &mut Context<'_>, _id: ConnId, err: &Error) {
        eprintln!("error: {err}");
        self.failed.store(true, Ordering::Relaxed);
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, _id: ConnId, code: CloseCode, reason: &str) {
        println!("closed: {code} {reason:?}");
        if let Some(stop) = &self.stop {
            stop.shutdown();
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let message = args.next().unwrap_or_else(|| "hello".into());
    let ca = args.next();
    let failed = Arc::new(AtomicBool::new(false));
    let client = Client {
        message,
        stop: None,
        failed: failed.clone(),
    };
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut server = Server::without_listener(Config::default(), client)?;
        let stop = server.shutdown_handle();
        server.handler_mut().stop = Some(stop);
        let mut options = ConnectOptions::new();
        if let Some(ca) = &ca {
            options = options.tls(wsloop::tls::client_config_with_ca_file(ca)?);
        }
        server.connect(&url, &options)?;
        server.run()?;
        Ok(())
    };
    match run() {
        Ok(()) if !failed.load(Ordering::Relaxed) => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
