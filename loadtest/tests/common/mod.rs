//! What the integration tests share: an in-process wsloop server on a loopback port (behind
//! TLS with a test CA's certificate, for wss://), `wsloop-load agent` processes, and running
//! `wsloop-load` with a JSON report to read back.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use wsloop::tls::ReloadableCert;
use wsloop::{Handler, Server, ShutdownHandle};

/// A wsloop server on an ephemeral loopback port, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: ShutdownHandle,
    join: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Binds and runs the server on its own thread (built there, so only the handler needs
    /// to be `Send`).
    pub fn start<H: Handler + Send + 'static>(handler: H) -> TestServer {
        TestServer::start_with(wsloop::Config::default(), handler)
    }

    /// The same with a given config (its listen address is replaced).
    pub fn start_with<H: Handler + Send + 'static>(
        config: wsloop::Config,
        handler: H,
    ) -> TestServer {
        let (ready, bound) = std::sync::mpsc::channel();
        let join = std::thread::spawn(move || {
            let config = wsloop::Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                ..config
            };
            let server = Server::bind(config, handler)?;
            ready
                .send((server.local_addr(), server.shutdown_handle()))
                .expect("test waits for the address");
            server.run()
        });
        let (addr, stop) = bound.recv().expect("server bound");
        TestServer {
            addr,
            stop,
            join: Some(join),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The same for a server started with TLS settings ([`Pki::config`]).
    pub fn wss_url(&self, path: &str) -> String {
        format!("wss://{}{path}", self.addr)
    }
}

/// A test CA made at test time (no key material is checked in), in a temporary directory
/// that goes with it: `ca.pem` for --ca, and a server certificate for 127.0.0.1 and
/// `localhost` it issued, with its key.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("wsloop-load-pki-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wsloop-load test CA {name}"));
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "wsloop-load test server");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join("cert.pem"), format!("{}{}", cert.pem(), ca.pem())).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    /// The CA certificate (PEM), for --ca.
    pub fn ca_path(&self) -> String {
        self.dir.join("ca.pem").to_str().unwrap().to_string()
    }

    /// A server config serving the issued certificate (wss:// only).
    pub fn config(&self) -> wsloop::Config {
        let cert = ReloadableCert::load(self.dir.join("cert.pem"), self.dir.join("key.pem"))
            .expect("the test certificate loads");
        wsloop::Config {
            tls: Some(cert.server_config()),
            ..wsloop::Config::default()
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `wsloop-load agent` on a free loopback port, killed by its PID when dropped (a failing
/// test included).
pub struct Agent {
    pub child: Child,
    pub addr: String,
}

impl Agent {
    pub fn start(extra: &[&str]) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
            .args(["agent", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start an agent");
        let mut agent = Agent {
            child,
            addr: String::new(),
        };
        // "wsloop-load agent listening on ADDR (...)"
        let stdout = agent.child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        agent.addr = line
            .strip_prefix("wsloop-load agent listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--agents` for these agents.
pub fn agents_flag(agents: &[Agent]) -> String {
    let addrs: Vec<&str> = agents.iter().map(|a| a.addr.as_str()).collect();
    addrs.join(",")
}

/// The report's agent rows.
pub fn rows(report: &Value) -> &Vec<Value> {
    report["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("no agent rows in {report}"))
}

/// The sum of `key` over the rows.
pub fn sum(rows: &[Value], key: &str) -> u64 {
    rows.iter()
        .map(|row| {
            row[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} in {row}"))
        })
        .sum()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.shutdown();
        if let Some(join) = self.join.take() {
            let result = join.join().expect("server thread panicked");
            if !std::thread::panicking() {
                result.expect("server failed");
            }
        }
    }
}

/// The report of one run, with the exit status and output.
pub struct Run {
    pub report: Value,
    pub output: Output,
    pub dir: PathBuf,
}

impl Run {
    pub fn u64(&self, key: &str) -> u64 {
        self.report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {}", self.report))
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {}", self.report))
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        serde_json::from_value(self.report["errors"].clone()).expect("errors by kind")
    }

    pub fn percentiles(&self, key: &str) -> [u64; 7] {
        let p = &self.report[key];
        let get = |name: &str| {
            p[name]
                .as_u64()
                .unwrap_or_else(|| panic!("{key}.{name} missing in {}", self.report))
        };
        let values = [
            get("min"),
            get("p50"),
            get("p90"),
            get("p99"),
            get("p99_9"),
            get("p99_99"),
            get("max"),
        ];
        assert!(
            values.windows(2).all(|w| w[0] <= w[1]),
            "{key} not ordered: {values:?}"
        );
        assert!(
            values[0] >= 1 && values[6] < 5_000_000,
            "{key} not sane: {values:?}"
        );
        values
    }
}

/// Runs the generator quietly with `args` (plus --json into a fresh directory) and reads the
/// report.
pub fn run(name: &str, args: &[&str]) -> Run {
    run_with(name, args, true)
}

/// Like [`run`], with the live line on stderr unless `quiet`.
pub fn run_with(name: &str, args: &[&str], quiet: bool) -> Run {
    let dir = std::env::temp_dir().join(format!("wsloop-load-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args(args)
        .args(quiet.then_some("--quiet"))
        .arg("--json")
        .arg(&json)
        .current_dir(&dir)
        .output()
        .expect("run wsloop-load");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| {
        panic!(
            "no report from {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let report = serde_json::from_str(&text).expect("report is JSON");
    Run {
        report,
        output,
        dir,
    }
}

pub fn assert_clean(run: &Run) {
    assert!(run.output.status.success(), "exit {:?}", run.output.status);
    assert_eq!(run.errors(), BTreeMap::new(), "{}", run.report);
    assert_eq!(run.u64("payload_mismatches"), 0);
}

/// Broadcast arguments for `url`: 6 connections, 2 of them publishing, about a second.
pub fn broadcast_args(url: &str) -> Vec<&str> {
    vec![
        "broadcast",
        "--url",
        url,
        "-c",
        "6",
        "--publishers",
        "2",
        "--rate",
        "200",
        "-d",
        "1200ms",
        "--warmup",
        "200ms",
    ]
}
