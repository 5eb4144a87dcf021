//! wss:// with two real clients that share no code with wsloop, against the binary serving a
//! certificate minted for each test by a test CA (rcgen):
//!
//! - Node's `ws` (over Node's OpenSSL), trusting the test CA through its `ca` option with
//!   verification on: echoes of a text and a 100 KiB binary message byte for byte, ALPN, SNI,
//!   a clean close 1000; and without the CA it must fail on the certificate.
//! - Headless Chromium, trusting exactly the server's key (`--ignore-certificate-errors-spki-list`
//!   with the SHA-256 of its SubjectPublicKeyInfo): the live page over https:// opens its
//!   sockets over wss://, echoes, and closes 1000; a server with another key is refused.
//!
//! Node needs `WSLOOP_NODE_MODULES` (a node_modules directory holding `ws`, e.g. from
//! `npm install --prefix DIR ws@8.23.0`). A missing program or module skips its test, loudly,
//! unless `WSLOOP_REQUIRE_INTEROP` is set (as `.ci/run` does): then it fails.

mod common;

#[allow(dead_code)]
#[path = "common/cdp.rs"]
mod cdp;

use std::env;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use cdp::{Browser, Tab};
use common::pki::{Pki, CA_NAME};
use common::process::Proc;
use serde_json::Value;

/// How long a Node client may run; its script gives up after 10 s by itself.
const NODE_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// Certificates and the server
// ---------------------------------------------------------------------------------------

/// BASE64(SHA-256(SubjectPublicKeyInfo)) of a server key: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes. SHA-256 from rustls's own provider (a
/// dependency already), checked to be SHA-256.
fn spki_sha256_base64(spki: &[u8]) -> String {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    let sha256 = suite.common.hash_provider;
    assert_eq!(
        sha256.algorithm(),
        rustls::crypto::hash::HashAlgorithm::SHA256
    );
    let digest = sha256.hash(spki);
    assert_eq!(digest.as_ref().len(), 32);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The binary serving wss:// (and its page over https://) with `pki`'s certificate, logging a
/// JSON access-log line per connection; returns it and its address.
fn serve(pki: &Pki) -> (Proc, SocketAddr) {
    let cert = pki.cert_path();
    let key = pki.key_path();
    let mut proc = Proc::spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--access-log",
        "--log-format",
        "json",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let addr = proc.listening_addr();
    (proc, addr)
}

/// Stops the server (which must exit 0) and returns its access-log lines.
fn stop_and_access_log(proc: Proc) -> Vec<Value> {
    let stderr = proc.stop();
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "wsloop::access")
        .collect()
}

// ---------------------------------------------------------------------------------------
// Node `ws`
// ---------------------------------------------------------------------------------------

fn node_script() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/wss_node.js"
    ))
}

/// Runs `node ARGS` with `NODE_PATH=modules` and no environment that would change what it
/// trusts; at most [`NODE_TIMEOUT`], killed by its PID otherwise (and on any failure).
/// Returns its exit status, stdout and stderr.
fn run_node(modules: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let mut command = Command::new("node");
    command
        .args(args)
        .env("NODE_PATH", modules)
        .env_remove("NODE_OPTIONS")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    let mut proc = Proc::spawn_command(command);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = proc.0.try_wait().expect("try_wait on node") {
            break status;
        }
        assert!(
            start.elapsed() < NODE_TIMEOUT,
            "node {args:?} did not exit within {NODE_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    };
    let stdout = proc.stdout_rest();
    let stderr = proc.stderr();
    (status, stdout, stderr)
}

/// The node_modules directory holding `ws`, from `WSLOOP_NODE_MODULES`, if `node` can load
/// `ws` from it. Otherwise the test skips, loudly; with `WSLOOP_REQUIRE_INTEROP` set it fails.
fn node_ws_modules() -> Option<PathBuf> {
    let problem = match env::var_os("WSLOOP_NODE_MODULES") {
        None => "WSLOOP_NODE_MODULES (a node_modules directory holding `ws`) is not set".to_owned(),
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let on_path = env::var_os("PATH")
                .is_some_and(|path| env::split_paths(&path).any(|d| d.join("node").is_file()));
            if !on_path {
                "`node` is not on PATH".to_owned()
            } else {
                match run_node(&dir, &["-e", "require('ws')"]) {
                    (status, _, _) if status.success() => return Some(dir),
                    (status, _, stderr) => format!(
                        "node cannot load `ws` from {} ({status}): {}",
                        dir.display(),
                        stderr.lines().find(|l| l.contains("Error")).unwrap_or("")
                    ),
                }
            }
        }
    };
    assert!(
        env::var_os("WSLOOP_REQUIRE_INTEROP").is_none(),
        "WSLOOP_REQUIRE_INTEROP is set but {problem} \
         (npm install --prefix DIR ws@8.23.0; WSLOOP_NODE_MODULES=DIR/node_modules)"
    );
    eprintln!("!!! SKIPPED: {problem}; wss:// with Node `ws` not checked");
    None
}

/// Runs tests/interop/wss_node.js with `args` and returns the JSON it printed; it must have
/// exited 0 with no failures listed.
fn node_client(modules: &Path, args: &[&str]) -> Value {
    let script = node_script().to_str().unwrap();
    let mut all = vec![script];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run_node(modules, &all);
    let result: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!("wss_node.js printed no JSON ({status}):\n{stdout}\nstderr:\n{stderr}")
        });
    assert!(
        status.success() && result["failures"] == serde_json::json!([]),
        "wss_node.js failed ({status}): {result:#}\nstderr:\n{stderr}"
    );
    eprintln!("Node ws: {result}");
    result
}

#[test]
fn node_ws_echoes_text_and_100_kib_binary_over_wss_trusting_the_test_ca() {
    let Some(modules) = node_ws_modules() else {
        return;
    };
    let pki = Pki::new("node-echo");
    pki.issue("wsloop node server");
    let (server, addr) = serve(&pki);
    let url = format!("wss://127.0.0.1:{}/echo", addr.port());
    let ca = pki.ca_path();
    let result = node_client(&modules, &["echo", &url, "localhost", ca.to_str().unwrap()]);

    let version = result["ws_version"].as_str().unwrap_or("");
    assert!(version.starts_with("8."), "ws version {version}");
    // Verified against the test CA (verification on), for the name sent as SNI.
    assert_eq!(result["authorized"], true, "{result}");
    assert_eq!(result["authorization_error"], Value::Null, "{result}");
    assert_eq!(result["peer_subject_cn"], "wsloop node server", "{result}");
    assert_eq!(result["peer_issuer_cn"], CA_NAME, "{result}");
    assert_eq!(result["alpn"], "http/1.1", "{result}");
    assert_eq!(result["servername"], "localhost", "{result}");
    assert_eq!(result["tls_version"], "TLSv1.3", "{result}");
    assert_eq!(result["url"], url.as_str());
    // The echoes, byte for byte, with their kinds.
    assert_eq!(result["text_echo_equal"], true, "{result}");
    assert_eq!(result["text_echo_binary_flag"], false, "{result}");
    assert_eq!(result["binary_echo_equal"], true, "{result}");
    assert_eq!(result["binary_echo_binary_flag"], true, "{result}");
    assert_eq!(result["binary_bytes_sent"], 100 * 1024, "{result}");
    assert_eq!(result["binary_bytes_echoed"], 100 * 1024, "{result}");
    assert_eq!(result["messages_echoed"], 2, "{result}");
    assert_eq!(result["close_code"], 1000, "{result}");

    // The server saw the same connection: closed 1000 by the client after the two messages.
    let log = stop_and_access_log(server);
    assert_eq!(log.len(), 1, "access log: {log:?}");
    let data = result["text_bytes"].as_u64().unwrap() + 100 * 1024;
    assert_echo_logged(&log[0], data, 6);
}

/// An access-log line of a wss:// echo connection that carried `data` bytes of messages each
/// way (a text and a binary message) and was closed 1000 by the client with a close payload
/// of `close_in` bytes. The log counts frames: the close is the third message each way, and
/// the server's answer carries the code and perhaps the reason.
fn assert_echo_logged(line: &Value, data: u64, close_in: u64) {
    assert_eq!(line["path"], "/echo", "{line}");
    assert_eq!(line["status"], 101, "{line}");
    assert_eq!(line["messages_in"], 3, "{line}");
    assert_eq!(line["messages_out"], 3, "{line}");
    assert_eq!(line["bytes_in"], data + close_in, "{line}");
    let out = line["bytes_out"].as_u64().unwrap();
    assert!(
        (data + 2..=data + close_in).contains(&out),
        "bytes out {out}: {line}"
    );
    assert_eq!(line["close_code"], 1000, "{line}");
    assert_eq!(line["closed_by"], "peer", "{line}");
}

/// An access-log line of a connection that never got past TLS: no request, no WebSocket.
fn assert_refused_logged(line: &Value) {
    assert_eq!(line["status"], 0, "{line}");
    assert_eq!(line["path"], "", "{line}");
    assert_eq!(line["messages_in"], 0, "{line}");
    assert_eq!(line["bytes_in"], 0, "{line}");
}

#[test]
fn node_ws_without_the_test_ca_fails_on_the_certificate() {
    let Some(modules) = node_ws_modules() else {
        return;
    };
    let pki = Pki::new("node-untrusted");
    pki.issue("wsloop untrusted server");
    let (server, addr) = serve(&pki);
    let url = format!("wss://127.0.0.1:{}/echo", addr.port());
    // The script lists a failure (and exits non-zero) if this connection opens.
    let result = node_client(&modules, &["untrusted", &url, "localhost"]);
    let code = result["error_code"].as_str().unwrap_or("");
    // OpenSSL's verdicts on a chain ending in a CA nobody trusts.
    assert!(
        [
            "SELF_SIGNED_CERT_IN_CHAIN",
            "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
            "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
        ]
        .contains(&code),
        "expected a certificate error, got {result}"
    );

    // The server is unharmed: the same client with the CA is served right after.
    let ca = pki.ca_path();
    let trusted = node_client(&modules, &["echo", &url, "localhost", ca.to_str().unwrap()]);
    assert_eq!(trusted["close_code"], 1000, "{trusted}");
    // The refused client's connection ended before any request; the trusted one echoed.
    let log = stop_and_access_log(server);
    assert_eq!(log.len(), 2, "access log: {log:?}");
    assert_refused_logged(&log[0]);
    let data = trusted["text_bytes"].as_u64().unwrap() + 100 * 1024;
    assert_echo_logged(&log[1], data, 6);
}

// ---------------------------------------------------------------------------------------
// Chromium
// ---------------------------------------------------------------------------------------

/// JavaScript that opens `url` as a WebSocket, sends a text and then a 100 KiB binary
/// message, compares the echoes, closes with 1000 and resolves to what it saw (or, if the
/// socket never opens, to its close code).
fn echo_script(url: &str) -> String {
    let url = Value::from(url);
    format!(
        r#"new Promise((resolve) => {{
  const out = {{ opened: false, url: null, echoed_text: null, binary_equal: null,
                 binary_length: null, close_code: null, was_clean: null, timed_out: false }};
  const text = "hello over wss from Chromium · é ✓";
  const binary = new Uint8Array(100 * 1024);
  crypto.getRandomValues(binary.subarray(0, 65536));
  crypto.getRandomValues(binary.subarray(65536));
  const ws = new WebSocket({url});
  ws.binaryType = "arraybuffer";
  out.url = ws.url;
  const timer = setTimeout(() => {{ out.timed_out = true; resolve(out); }}, 8000);
  ws.onopen = () => {{ out.opened = true; ws.send(text); }};
  ws.onmessage = (event) => {{
    if (typeof event.data === "string") {{
      out.echoed_text = event.data;
      ws.send(binary);
    }} else {{
      const got = new Uint8Array(event.data);
      out.binary_length = got.length;
      out.binary_equal = got.length === binary.length && got.every((b, i) => b === binary[i]);
      ws.close(1000, "done");
    }}
  }};
  ws.onclose = (event) => {{
    clearTimeout(timer);
    out.close_code = event.code;
    out.was_clean = event.wasClean;
    resolve(out);
  }};
}})"#
    )
}

/// Waits until the page's socket for `panel` (e.g. `echo`) shows `open`.
fn wait_open(browser: &mut Browser, tab: &Tab, panel: &str) {
    browser.wait_until(
        tab,
        &format!("document.getElementById('{panel}-state').dataset.state === 'open'"),
        &format!("the page's {panel} socket to open"),
    );
}

#[test]
fn chromium_loads_the_page_over_https_and_echoes_over_wss_trusting_only_the_server_key() {
    if !cdp::chromium_available() {
        eprintln!("!!! SKIPPED: wss:// with Chromium not checked");
        return;
    }
    let pki = Pki::new("chromium");
    let issued = pki.issue("wsloop chromium server");
    let (server, addr) = serve(&pki);
    // A second server, its certificate from another CA and for another key: not trusted.
    let other_pki = Pki::new("chromium-other");
    other_pki.issue("wsloop other server");
    let (other, other_addr) = serve(&other_pki);
    let spki = spki_sha256_base64(&issued.spki);
    let mut browser =
        Browser::launch_with(&[format!("--ignore-certificate-errors-spki-list={spki}")]);

    // The page loads over https:// (a certificate error would fail the navigation) and
    // points its sockets at wss:// on the same server.
    let origin = format!("https://127.0.0.1:{}", addr.port());
    let tab = browser.open(&format!("{origin}/"));
    assert_eq!(browser.eval(&tab, "location.origin"), origin.as_str());
    let wss = format!("wss://127.0.0.1:{}", addr.port());
    assert_eq!(
        browser.eval(&tab, "document.getElementById('endpoint').textContent"),
        wss.as_str(),
        "the page's WebSocket base"
    );
    // The page's own echo socket (a ws:// one would be blocked as mixed content) answers.
    wait_open(&mut browser, &tab, "echo");
    browser.eval(
        &tab,
        "document.getElementById('echo-input').value = 'ping over wss'; \
         document.getElementById('echo-send').click()",
    );
    browser.wait_until(
        &tab,
        "window.wsloopPage.echoRtts.length === 1",
        "the page's echo over wss",
    );

    // A socket of our own from the page: echoes and a clean close.
    let echo_url = format!("{wss}/echo");
    let seen = browser.eval(&tab, &echo_script(&echo_url));
    eprintln!("Chromium, trusted server: {seen}");
    assert_eq!(seen["url"], echo_url.as_str(), "{seen}");
    assert_eq!(seen["opened"], true, "{seen}");
    assert_eq!(seen["timed_out"], false, "{seen}");
    assert_eq!(seen["echoed_text"], "hello over wss from Chromium · é ✓");
    assert_eq!(seen["binary_length"], 100 * 1024, "{seen}");
    assert_eq!(seen["binary_equal"], true, "{seen}");
    assert_eq!(seen["close_code"], 1000, "{seen}");
    assert_eq!(seen["was_clean"], true, "{seen}");

    // The trust is that key's alone: the other server's certificate is refused.
    let other_url = format!("wss://127.0.0.1:{}/echo", other_addr.port());
    let refused = browser.eval(&tab, &echo_script(&other_url));
    eprintln!("Chromium, other server: {refused}");
    assert_eq!(refused["opened"], false, "{refused}");
    assert_eq!(refused["timed_out"], false, "{refused}");
    assert_eq!(refused["close_code"], 1006, "{refused}");

    drop(browser);
    // The server saw the script's socket: a text and 100 KiB each way, closed 1000 "done"
    // by the browser (the page's own sockets have lines of their own).
    let log = stop_and_access_log(server);
    let ours = log
        .iter()
        .find(|line| line["path"] == "/echo" && line["close_code"] == 1000)
        .unwrap_or_else(|| panic!("no access-log line for the script's socket: {log:?}"));
    let text_bytes = "hello over wss from Chromium · é ✓".len() as u64;
    assert_echo_logged(ours, text_bytes + 100 * 1024, 6);
    // Nothing reached the other server past TLS.
    let other_log = stop_and_access_log(other);
    assert!(!other_log.is_empty(), "the other server saw no connection");
    for line in &other_log {
        assert_refused_logged(line);
    }
}
