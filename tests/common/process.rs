//! The `wsloop` binary as a child process: started, read, signalled and always killed by
//! its PID when the test ends, even on failure.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test. Cargo sets it for integration tests when the `bin` feature builds
/// the binary; the tests that start it declare `required-features = ["bin"]` in Cargo.toml.
pub const BIN: &str = match option_env!("CARGO_BIN_EXE_wsloop") {
    Some(path) => path,
    None => "wsloop (not built: the `bin` feature is off)",
};

/// The child process; dropping it kills it (by its PID) and reaps it, so a failing test
/// leaves no server behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        let mut command = Command::new(BIN);
        command.args(args);
        Proc::spawn_command(command)
    }

    /// Spawns `command` (the binary itself, or a wrapper that `exec`s it and so keeps the PID)
    /// with piped stdout and stderr.
    pub fn spawn_command(mut command: Command) -> Proc {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {command:?}: {err}"));
        Proc(child)
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "wsloop did not exit within {limit:?}"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        self.0
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    pub fn stdout_rest(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            out.read_to_string(&mut text).unwrap();
        }
        text
    }

    /// Reads the first stdout line, `listening on ws://ADDR` (or `wss://ADDR`), within 10 s.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let stdout = self.0.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no startup line within 10 s");
        let line = line.trim_end();
        let addr = line
            .strip_prefix("listening on ws://")
            .or_else(|| line.strip_prefix("listening on wss://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        addr.parse().expect("listening address")
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then the exit status (which must be success) and everything on stderr.
    pub fn stop(mut self) -> String {
        self.sigterm();
        let status = self.wait_within(Duration::from_secs(10));
        let stderr = self.stderr();
        assert!(
            status.success(),
            "exit status {status:?}, stderr {stderr:?}"
        );
        stderr
    }
}

/// A size from the process's `/proc/PID/status`, in KiB: `VmRSS` (resident) or `VmSize`
/// (virtual).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
