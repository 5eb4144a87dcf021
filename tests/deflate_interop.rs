//! permessage-deflate against an independent implementation: the Python `websockets` client
//! (tests/interop/deflate_client.py) talks to the server in several configurations.
//!
//! The client needs `python3` with `websockets`; `.ci/run` installs it and sets
//! `WSLOOP_REQUIRE_INTEROP=1`, which turns a missing client into a failure. Without that
//! variable the test says loudly that it skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use wsloop::proto::deflate::DeflateConfig;
use wsloop::{Config, Echo};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/deflate_client.py"
);

fn run_client_against(deflate: DeflateConfig) {
    let config = Config {
        deflate: Some(deflate),
        ..common::config()
    };
    let (addr, handle, join) = common::start(config, Echo);
    let output = Command::new("python3")
        .arg(SCRIPT)
        .arg(format!("ws://{addr}"))
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    common::stop_within(handle, join, Duration::from_secs(5));
    assert!(
        output.status.success() && stdout.contains("interop: 4 passed, 0 failed"),
        "interop client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn python_websockets_client_with_default_deflate() {
    if common::python_websockets_available() {
        run_client_against(DeflateConfig::default());
    }
}

#[test]
fn python_websockets_client_with_no_context_takeover_small_windows_and_no_threshold() {
    if common::python_websockets_available() {
        run_client_against(DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 10,
            threshold: 0,
            level: 6,
        });
    }
}
