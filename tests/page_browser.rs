//! The page the binary serves at `/`, driven in headless Chromium: two tabs chat in a room,
//! one measures an echo round trip, the live figures count the tabs' sockets, a screenshot
//! shows a drawn page, and a restarted server is found again by the page on its own.

mod common;

#[path = "common/cdp.rs"]
mod cdp;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use cdp::{Browser, Tab, VIEWPORT};
use common::process::Proc;

/// The WebSockets a tab holds once it has joined a room: echo, chat and stats.
const SOCKETS_PER_TAB: u64 = 3;

const ROOM: &str = "browser-test";

/// A JavaScript string literal holding `text`.
fn js(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// Waits until the sockets of `panels` (e.g. `echo`) in `tab` show the state `open`.
fn wait_open(browser: &mut Browser, tab: &Tab, panels: &[&str]) {
    for panel in panels {
        browser.wait_until(
            tab,
            &format!("document.getElementById('{panel}-state').dataset.state === 'open'"),
            &format!("the {panel} socket to open"),
        );
    }
}

/// Puts `text` in the input `input` and clicks the button `button`.
fn submit(browser: &mut Browser, tab: &Tab, input: &str, button: &str, text: &str) {
    browser.eval(
        tab,
        &format!(
            "document.getElementById('{input}').value = {}; \
             document.getElementById('{button}').click()",
            js(text)
        ),
    );
}

/// Waits until `tab` has heard from `/stats` that the server holds at least `at_least`
/// WebSockets, and returns the figure.
fn wait_connections(browser: &mut Browser, tab: &Tab, at_least: u64) -> u64 {
    browser.wait_until(
        tab,
        &format!("window.wsloopPage.stats?.connections >= {at_least}"),
        &format!("/stats to count {at_least} connections"),
    );
    browser
        .eval(tab, "window.wsloopPage.stats.connections")
        .as_u64()
        .expect("stats.connections is a count")
}

#[test]
fn page_chats_echoes_and_shows_live_figures() {
    if !cdp::chromium_available() {
        return;
    }
    let started = Instant::now();
    let mut server = Proc::spawn(&["--listen", "127.0.0.1:0", "--threads", "2"]);
    let addr = server.listening_addr();
    let url = format!("http://{addr}/");
    let mut browser = Browser::launch();

    // The figures count each tab's sockets: first A's, then A's and B's.
    let a = browser.open(&url);
    submit(&mut browser, &a, "chat-room", "chat-join", ROOM);
    wait_open(&mut browser, &a, &["echo", "chat", "stats"]);
    let alone = wait_connections(&mut browser, &a, SOCKETS_PER_TAB);
    assert_eq!(alone, SOCKETS_PER_TAB, "connections with one tab");

    let b = browser.open(&url);
    submit(&mut browser, &b, "chat-room", "chat-join", ROOM);
    wait_open(&mut browser, &b, &["echo", "chat", "stats"]);
    let together = wait_connections(&mut browser, &a, alone + SOCKETS_PER_TAB);
    assert_eq!(together, 2 * SOCKETS_PER_TAB, "connections with two tabs");
    assert_eq!(
        browser.eval(
            &a,
            "document.getElementById('stat-connections').textContent"
        ),
        together.to_string().as_str(),
        "the connections figure"
    );
    assert_eq!(
        browser.eval(
            &a,
            "document.querySelectorAll('#stat-loops tbody tr').length"
        ),
        2,
        "a table row per loop (--threads 2)"
    );

    // The server passes a message to the rest of the room, not back to its sender: B
    // receives it, and A shows it only because the page adds its own messages itself.
    let said = "hello from tab A";
    submit(&mut browser, &a, "chat-input", "chat-send", said);
    browser.wait_until(
        &b,
        &format!(
            "window.wsloopPage.chatMessages.includes({said}) && \
             document.getElementById('chat-log').textContent.includes({said})",
            said = js(said)
        ),
        "B to receive A's chat message",
    );
    let a_log = browser.eval(&a, "document.getElementById('chat-log').textContent");
    assert!(a_log.as_str().unwrap().contains(said), "A's log: {a_log}");
    assert_eq!(
        browser.eval(&a, "window.wsloopPage.chatMessages.length"),
        0,
        "messages A received"
    );

    submit(&mut browser, &a, "echo-input", "echo-send", "ping");
    browser.wait_until(
        &a,
        "window.wsloopPage.echoRtts.length === 1 && \
         /^\\d+(\\.\\d+)? ms$/.test(document.getElementById('echo-rtt').textContent)",
        "the echo's round-trip time",
    );
    let rtt = browser.eval(&a, "window.wsloopPage.echoRtts[0]");
    assert!(
        (0.0..5000.0).contains(&rtt.as_f64().unwrap()),
        "round trip {rtt} ms"
    );

    // A has had two figures at least (on subscribing, and the one counting B's sockets), so
    // the chart has its lines.
    let png = browser.screenshot(&a);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-screenshot.png");
    fs::write(&path, &png).expect("write the screenshot");
    eprintln!("screenshot of the page: {}", path.display());
    assert_drawn(&png);

    // A server restarted on the same address: the page finds it again by itself.
    browser.eval(&a, "window.wsloopPage.stats = null");
    server.stop();
    wait_closed(&mut browser, &a);
    let mut server = Proc::spawn(&["--listen", &addr.to_string(), "--threads", "2"]);
    assert_eq!(server.listening_addr(), addr);
    wait_open(&mut browser, &a, &["echo", "chat", "stats"]);
    browser.wait_until(
        &a,
        "window.wsloopPage.stats !== null",
        "figures from the restarted server",
    );
    submit(&mut browser, &a, "echo-input", "echo-send", "ping again");
    browser.wait_until(
        &a,
        "window.wsloopPage.echoRtts.length === 2",
        "an echo from the restarted server",
    );

    server.stop();
    drop(browser);
    eprintln!("page test took {:?}", started.elapsed());
}

/// Waits until every socket of `tab` has seen the server go.
fn wait_closed(browser: &mut Browser, tab: &Tab) {
    browser.wait_until(
        tab,
        "['echo', 'chat', 'stats'].every((panel) => \
           document.getElementById(panel + '-state').dataset.state !== 'open')",
        "the sockets to see the server stop",
    );
}

/// Checks that a PNG screenshot of the page is the whole viewport and has something drawn
/// on it: many colours (text, chart, panels), and not one colour almost everywhere.
fn assert_drawn(png: &[u8]) {
    let mut reader = png::Decoder::new(png)
        .read_info()
        .expect("screenshot is a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut pixels)
        .expect("decode the screenshot");
    assert_eq!((frame.width, frame.height), VIEWPORT, "screenshot size");
    let channels = frame.color_type.samples();
    assert!(
        channels >= 3,
        "screenshot colour type {:?}",
        frame.color_type
    );

    let mut counts = HashMap::new();
    for pixel in pixels[..frame.buffer_size()].chunks_exact(channels) {
        *counts.entry([pixel[0], pixel[1], pixel[2]]).or_insert(0u32) += 1;
    }
    let total = frame.width * frame.height;
    let commonest = counts.values().copied().max().unwrap();
    let others = f64::from(total - commonest) / f64::from(total);
    // The page's background alone gives about 150 colours and 15%.
    assert!(counts.len() >= 500, "only {} colours", counts.len());
    assert!(
        others >= 0.3,
        "{:.1}% of the pixels differ from the commonest colour",
        others * 100.0
    );
}
