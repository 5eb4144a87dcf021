//! What the peer echo servers share: the command line and the single-threaded runtime.

use std::net::SocketAddr;

/// `--listen ADDR` (default 127.0.0.1:9001), the only option, as in `wsloop`.
pub fn listen_addr() -> SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    let addr = match args.iter().position(|a| a == "--listen") {
        Some(i) => args.get(i + 1).map(String::as_str).unwrap_or(""),
        None => "127.0.0.1:9001",
    };
    addr.parse().unwrap_or_else(|_| {
        eprintln!("usage: {} [--listen 127.0.0.1:9001]", args[0]);
        std::process::exit(2)
    })
}

/// A current-thread tokio runtime: everything on the calling thread, one core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime")
}
