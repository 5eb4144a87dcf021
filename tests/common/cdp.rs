//! A small Chrome DevTools Protocol client for the browser tests: starts headless Chromium
//! with a throwaway profile and drives its tabs (navigate, evaluate JavaScript, screenshot)
//! over one WebSocket to the browser, a flattened session per tab.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, thread};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Debian's name for the browser, looked up on PATH.
const PROGRAM: &str = "chromium";

/// How long Chromium may take to start listening for DevTools.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one command may take; a browser that stops answering fails the test instead of
/// hanging it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long Chromium may take to close when asked, before it is killed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`Browser::wait_until`] re-evaluates its condition.
const POLL: Duration = Duration::from_millis(20);

/// The viewport every tab gets, so layouts and screenshots do not depend on the host.
pub const VIEWPORT: (u32, u32) = (1280, 800);

/// Whether Chromium is on PATH. `.ci/run` sets `WSLOOP_REQUIRE_INTEROP=1`, which turns a
/// missing browser into a failure; without that variable the caller skips, loudly.
pub fn chromium_available() -> bool {
    let found = env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(PROGRAM).is_file()));
    if !found {
        assert!(
            env::var_os("WSLOOP_REQUIRE_INTEROP").is_none(),
            "WSLOOP_REQUIRE_INTEROP is set but `{PROGRAM}` is not on PATH \
             (apt-get install chromium)"
        );
        eprintln!("!!! SKIPPED: `{PROGRAM}` not found; the page was not checked in a browser");
    }
    found
}

/// A tab: its DevTools session on the browser's connection.
pub struct Tab {
    session: String,
}

/// Headless Chromium and a DevTools connection to it. Dropping it ends the browser and every
/// process it started, and deletes its profile.
pub struct Browser {
    devtools: WebSocket<TcpStream>,
    next_id: u64,
    process: Process,
}

impl Browser {
    /// Starts Chromium on a fresh profile and connects to it.
    pub fn launch() -> Browser {
        Browser::launch_with(&[])
    }

    /// [`Browser::launch`] with `extra` command-line switches after the usual ones (e.g.
    /// `--ignore-certificate-errors-spki-list=...` to trust one test key).
    pub fn launch_with(extra: &[String]) -> Browser {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = env::temp_dir().join(format!("wsloop-chromium-{}-{nanos}", std::process::id()));
        let profile = dir.join("profile");
        fs::create_dir_all(&profile).expect("create the Chromium profile directory");
        let log = File::create(dir.join("stderr.log")).expect("create Chromium's log");
        let child = Command::new(PROGRAM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                // Nothing but the pages under test: a machine without network refuses
                // Chromium's own connections, and a test should not make them anyway.
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // A free port, written to DevToolsActivePort in the profile.
                "--remote-debugging-port=0",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so that dropping it can end its helpers too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|err| panic!("start {PROGRAM}: {err}"));
        let mut process = Process {
            child,
            exited: None,
            dir,
        };
        let (addr, path) = process.devtools_endpoint();
        let stream = TcpStream::connect(addr).expect("connect to DevTools");
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        let url = format!("ws://{addr}{path}");
        let (devtools, _) = tungstenite::client(url.as_str(), stream)
            .unwrap_or_else(|err| panic!("DevTools handshake at {url}: {err}"));
        Browser {
            devtools,
            next_id: 0,
            process,
        }
    }

    /// Opens a tab with a [`VIEWPORT`]-sized page and loads `url` in it.
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        let tab = Tab {
            session: attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_owned(),
        };
        let (width, height) = VIEWPORT;
        self.call(
            Some(&tab),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        // Answered once the navigation has committed (or failed), so what is evaluated next
        // runs in the new document.
        let navigated = self.call(Some(&tab), "Page.navigate", json!({"url": url}));
        if let Some(error) = navigated.get("errorText") {
            panic!("loading {url}: {error}");
        }
        self.wait_until(
            &tab,
            "document.readyState === 'complete'",
            "the page to load",
        );
        tab
    }

    /// The value of the JavaScript `expression` in `tab` (awaited if it is a promise); an
    /// exception fails the test.
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let mut reply = self.call(
            Some(tab),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = reply.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("(no description)");
            panic!("JavaScript `{expression}` threw: {text}");
        }
        reply["result"]["value"].take()
    }

    /// Evaluates `condition` in `tab` until it is `true`; fails after [`COMMAND_TIMEOUT`],
    /// naming `what` was awaited.
    pub fn wait_until(&mut self, tab: &Tab, condition: &str, what: &str) {
        let start = Instant::now();
        while self.eval(tab, condition) != Value::Bool(true) {
            assert!(
                start.elapsed() < COMMAND_TIMEOUT,
                "timed out after {COMMAND_TIMEOUT:?} waiting for {what} ({condition})"
            );
            thread::sleep(POLL);
        }
    }

    /// A PNG of what `tab` shows.
    pub fn screenshot(&mut self, tab: &Tab) -> Vec<u8> {
        let shot = self.call(
            Some(tab),
            "Page.captureScreenshot",
            json!({"format": "png"}),
        );
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64")
    }

    /// Sends a command, to `tab` or else to the browser, and returns its result. Events in
    /// between are skipped (no domain is enabled, so few come); an error answer or none
    /// within [`COMMAND_TIMEOUT`] fails the test.
    fn call(&mut self, tab: Option<&Tab>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(tab) = tab {
            command["sessionId"] = json!(tab.session);
        }
        self.devtools
            .send(Message::Text(command.to_string()))
            .unwrap_or_else(|err| panic!("sending {method}: {err}"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no answer to {method} within {COMMAND_TIMEOUT:?}"
            );
            self.devtools
                .get_ref()
                .set_read_timeout(Some(left))
                .unwrap();
            let text = match self.devtools.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(err) => panic!(
                    "awaiting the answer to {method}: {err}; Chromium's stderr:\n{}",
                    self.process.log()
                ),
            };
            let mut reply: Value = serde_json::from_str(&text).expect("DevTools sent bad JSON");
            if reply["id"] != id {
                continue;
            }
            if let Some(error) = reply.get("error") {
                panic!("{method} failed: {error}");
            }
            return reply["result"].take();
        }
    }
}

impl Drop for Browser {
    /// Asks the browser to close, which ends and reaps its helpers; [`Process`] then kills
    /// whatever is left.
    fn drop(&mut self) {
        // Not awaited: the answer races the connection's end.
        let close = json!({"id": 0, "method": "Browser.close"});
        if self.devtools.send(Message::Text(close.to_string())).is_ok() {
            self.process.wait_within(CLOSE_TIMEOUT);
        }
    }
}

/// The Chromium process: the leader of its own process group, with its directory.
struct Process {
    child: Child,
    /// Set once the browser has been reaped: its group ID may then belong to someone else.
    exited: Option<ExitStatus>,
    /// The profile and the browser's stderr, deleted on drop.
    dir: PathBuf,
}

impl Process {
    /// Waits for Chromium to write `DevToolsActivePort` (its port on the first line, the
    /// browser's WebSocket path on the second) and returns the two.
    fn devtools_endpoint(&mut self) -> (SocketAddr, String) {
        let file = self.dir.join("profile/DevToolsActivePort");
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(Ok(port)), Some(path)) = (lines.next().map(str::parse), lines.next()) {
                if path.starts_with("/devtools/browser/") {
                    return (SocketAddr::from(([127, 0, 0, 1], port)), path.to_owned());
                }
            }
            self.exited = self.child.try_wait().expect("try_wait on Chromium");
            if let Some(status) = self.exited {
                panic!(
                    "{PROGRAM} exited at start ({status}); stderr:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "{PROGRAM} did not open DevTools within {START_TIMEOUT:?}; stderr:\n{}",
                self.log()
            );
            thread::sleep(POLL);
        }
    }

    /// Waits up to `limit` for the browser to exit, reaping it.
    fn wait_within(&mut self, limit: Duration) {
        let start = Instant::now();
        while self.exited.is_none() && start.elapsed() < limit {
            thread::sleep(POLL);
            self.exited = self.child.try_wait().ok().flatten();
        }
    }

    /// What Chromium wrote to stderr so far.
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // The whole group: the browser and the renderer and utility processes it started.
            // The browser is not reaped yet, so the group's ID is still its own.
            let group = -(self.child.id() as libc::pid_t);
            // SAFETY: kill(2) takes no pointers; a negative PID names a process group.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
