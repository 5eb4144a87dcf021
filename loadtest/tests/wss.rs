//! wss://: `wsloop-load` in every mode against an in-process wsloop server behind TLS, with
//! a certificate issued by a test CA made for each test (--ca), once with --insecure, once
//! split over agents; and the failures: an untrusted certificate, a ws:// server behind a
//! wss:// URL, and the usage errors.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use common::{
    agents_flag, assert_clean, broadcast_args, rows, run, run_with, sum, Agent, Pki, Run,
    TestServer,
};

/// A wsloop server behind TLS with `pki`'s certificate, running `handler`.
fn tls_server<H: wsloop::Handler + Send + 'static>(pki: &Pki, handler: H) -> TestServer {
    TestServer::start_with(pki.config(), handler)
}

/// `args` with `--ca` for `pki`'s CA after them.
fn with_ca<'a>(args: &[&'a str], ca: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--ca", ca]);
    all
}

/// Runs `wsloop-load` with `args` to its end, without a report.
fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args(args)
        .output()
        .expect("run wsloop-load")
}

/// The run's error reasons, as `(kind, reason, count)`.
fn reasons(run: &Run) -> Vec<(String, String, u64)> {
    run.report["error_reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no error_reasons in {}", run.report))
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn echo_over_wss_counts_every_message() {
    let pki = Pki::new("echo");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "8",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "2000",
        "--threads",
        "2",
        "--size",
        "1KiB",
    ];
    let run = run("wss-echo", &with_ca(&args, &ca));
    assert_clean(&run);
    assert_eq!(run.report["url"], url.as_str());
    assert_eq!(run.report["label"], format!("echo {url}"));
    assert_eq!(run.u64("connections_opened"), 8);
    assert_eq!(run.u64("messages_sent"), 2000);
    assert_eq!(run.u64("messages_received"), 2000);
    assert_eq!(run.report["latency_us"]["count"], 2000);
    assert_eq!(run.report["handshake_us"]["count"], 8);
    assert_eq!(run.report["error_reasons"], Value::Array(vec![]));
    // The TLS handshake is in the handshake time: at least a few round trips and a
    // signature, never the microsecond a loopback TCP connect alone can take.
    run.percentiles("handshake_us");
    assert!(run.f64("window_s") < 20.0, "stopped at the count");
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(!stderr.contains("--insecure"), "{stderr}");
}

#[test]
fn large_messages_over_wss_cross_many_records() {
    // 1 MiB a message: many 16 KiB TLS records each way, rustls's buffers full and the
    // socket's too, so writes wait for room and reads span records.
    let pki = Pki::new("large");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "2",
        "-d",
        "60s",
        "--warmup",
        "0s",
        "--messages",
        "40",
        "--depth",
        "4",
        "--size",
        "1MiB",
    ];
    let run = run("wss-large", &with_ca(&args, &ca));
    assert_clean(&run);
    assert_eq!(run.u64("messages_sent"), 40);
    assert_eq!(run.u64("messages_received"), 40);
}

#[test]
fn echo_over_wss_with_permessage_deflate() {
    let pki = Pki::new("deflate");
    let config = wsloop::Config {
        deflate: Some(wsloop::proto::deflate::DeflateConfig {
            threshold: 1,
            ..Default::default()
        }),
        ..pki.config()
    };
    let server = TestServer::start_with(config, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "4",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "500",
        "--text",
        "--deflate",
    ];
    let run = run("wss-deflate", &with_ca(&args, &ca));
    assert_clean(&run);
    assert_eq!(run.u64("messages_sent"), 500);
    assert_eq!(run.u64("messages_received"), 500);
}

#[test]
fn latency_over_wss_closed_and_open_loop() {
    let pki = Pki::new("latency");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let closed = [
        "latency",
        "--url",
        &url,
        "-c",
        "10",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "1000",
    ];
    let closed = run("wss-closed", &with_ca(&closed, &ca));
    assert_clean(&closed);
    assert_eq!(closed.report["open_loop"], false);
    assert_eq!(closed.u64("messages_sent"), 1000);
    assert_eq!(closed.u64("messages_received"), 1000);
    assert_eq!(closed.report["latency_us"]["count"], 1000);

    let open = [
        "latency",
        "--url",
        &url,
        "-c",
        "5",
        "--rate",
        "1000",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "500",
    ];
    let open = run("wss-open", &with_ca(&open, &ca));
    assert_clean(&open);
    assert_eq!(open.report["open_loop"], true);
    assert_eq!(open.u64("messages_sent"), 500);
    assert_eq!(open.u64("messages_received"), 500);
    open.percentiles("latency_uncorrected_us");
}

#[test]
fn connect_over_wss_times_every_handshake() {
    let pki = Pki::new("connect");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let args = [
        "connect",
        "--url",
        &url,
        "-c",
        "100",
        "-d",
        "10s",
        "--connect-rate",
        "1000",
    ];
    let run = run("wss-connect", &with_ca(&args, &ca));
    assert_clean(&run);
    assert_eq!(run.u64("connections_attempted"), 100);
    assert_eq!(run.u64("connections_opened"), 100);
    assert_eq!(run.report["handshake_us"]["count"], 100);
    assert_eq!(run.report["latency_distribution"]["of"], "handshake");
    run.percentiles("handshake_us");
    assert!(run.f64("handshakes_per_sec") > 0.0);
}

#[test]
fn idle_over_wss_answers_every_ping() {
    let pki = Pki::new("idle");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let ca = pki.ca_path();
    let args = [
        "idle",
        "--url",
        &url,
        "-c",
        "30",
        // The last periodic ping falls due with the final check: one ping, one pong.
        "-d",
        "750ms",
        "--ping-interval",
        "250ms",
    ];
    let run = run("wss-idle", &with_ca(&args, &ca));
    assert_clean(&run);
    let idle = &run.report["idle"];
    assert_eq!(run.u64("connections_opened"), 30);
    assert_eq!(idle["alive_at_end"], 30, "{idle}");
    assert_eq!(idle["pings"], idle["pongs"], "{idle}");
    assert!(idle["pings"].as_u64().unwrap() >= 90, "{idle}");
}

#[test]
fn broadcast_over_wss_delivers_to_every_subscriber() {
    let pki = Pki::new("broadcast");
    // The wsloop binary's handler: /chat/ROOM publishes to everyone else in the room.
    let server = tls_server(&pki, wsloop::rooms::EchoRooms::default());
    let url = server.wss_url("/chat/tls");
    let ca = pki.ca_path();
    let mut args = broadcast_args(&url);
    args.push("--text");
    let run = run("wss-broadcast", &with_ca(&args, &ca));
    assert_clean(&run);
    let published = run.u64("published");
    assert!(published > 50, "{}", run.report);
    assert_eq!(run.u64("deliveries"), published * 5, "{}", run.report);
    assert_eq!(run.u64("own_deliveries"), 0);
    run.percentiles("latency_us");
}

#[test]
fn insecure_accepts_the_certificate_unverified_and_says_so() {
    let pki = Pki::new("insecure");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "4",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "400",
        "--insecure",
    ];
    let run = run_with("wss-insecure", &args, true);
    assert_clean(&run);
    assert_eq!(run.u64("messages_sent"), 400);
    assert_eq!(run.u64("messages_received"), 400);
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("warning: --insecure"))
        .collect();
    assert_eq!(warnings.len(), 1, "one line: {stderr}");
    assert!(
        warnings[0].contains("certificates are not verified"),
        "{stderr}"
    );
}

#[test]
fn agents_run_wss_with_the_ca_they_are_sent() {
    let pki = Pki::new("agents");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let agents = [Agent::start(&[]), Agent::start(&[])];
    let flag = agents_flag(&agents);
    // The CA file is read here and its contents sent: the agents never see the path.
    let ca_file = pki.ca_path();
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "6",
        "-d",
        "30s",
        "--warmup",
        "0s",
        "--messages",
        "1200",
        "--agents",
        &flag,
        "--ca",
        &ca_file,
    ];
    let run = run("wss-agents", &args);
    assert!(run.output.status.success(), "{}", run.report);
    let agent_rows = rows(&run.report);
    assert_eq!(agent_rows.len(), 2);
    for row in agent_rows {
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["connections_opened"], 3, "{row}");
        assert_eq!(row["messages_sent"], 600, "{row}");
        assert_eq!(row["messages_received"], 600, "{row}");
        assert_eq!(row["errors_total"], 0, "{row}");
    }
    assert_eq!(run.u64("messages_sent"), 1200);
    assert_eq!(run.u64("messages_received"), 1200);
    assert_eq!(sum(agent_rows, "connections_opened"), 6);
    assert_eq!(run.report["handshake_us"]["count"], 6);
    assert_eq!(run.u64("errors_total"), 0, "{}", run.report);

    // --insecure travels too.
    let insecure = [
        "connect",
        "--url",
        &url,
        "-c",
        "10",
        "-d",
        "5s",
        "--agents",
        &flag,
        "--insecure",
    ];
    let insecure = common::run("wss-agents-insecure", &insecure);
    assert!(insecure.output.status.success(), "{}", insecure.report);
    assert_eq!(insecure.u64("connections_opened"), 10);
    assert_eq!(sum(rows(&insecure.report), "connections_opened"), 10);
}

#[test]
fn an_untrusted_certificate_fails_every_connection_with_its_reason() {
    let pki = Pki::new("trusted");
    let other = Pki::new("other");
    let server = tls_server(&pki, wsloop::Echo);
    let url = server.wss_url("/");
    let wrong_ca = other.ca_path();
    let args = ["connect", "--url", &url, "-c", "5", "-d", "3s"];
    let run = run("wss-wrong-ca", &with_ca(&args, &wrong_ca));
    assert_eq!(run.output.status.code(), Some(1), "nothing connected");
    assert_eq!(run.u64("connections_opened"), 0);
    let errors = run.errors();
    assert_eq!(errors.get("tls_failed"), Some(&5), "{}", run.report);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let said = reasons(&run);
    assert_eq!(said.len(), 1, "{said:?}");
    let (kind, reason, count) = &said[0];
    assert_eq!((kind.as_str(), *count), ("tls_failed", 5));
    assert!(
        reason.contains("certificate") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(stdout.contains("  errors        tls_failed 5"), "{stdout}");
    assert!(
        stdout.contains("  error reason  tls_failed 5: TLS: invalid peer certificate"),
        "{stdout}"
    );

    // The same over agents: their reasons reach the controller's report.
    let agents = [Agent::start(&[])];
    let flag = agents_flag(&agents);
    let mut over_agents = with_ca(&args, &wrong_ca);
    over_agents.extend(["--agents", &flag]);
    let split = common::run("wss-wrong-ca-agents", &over_agents);
    assert_eq!(split.output.status.code(), Some(1));
    assert_eq!(
        split.errors().get("tls_failed"),
        Some(&5),
        "{}",
        split.report
    );
    let said = reasons(&split);
    assert!(said[0].1.contains("UnknownIssuer"), "{said:?}");
}

#[test]
fn a_wss_url_on_a_ws_server_is_a_tls_failure() {
    let server = TestServer::start(wsloop::Echo);
    let url = format!("wss://{}/", server.addr);
    let run = run(
        "wss-on-ws",
        &[
            "connect",
            "--url",
            &url,
            "-c",
            "3",
            "-d",
            "3s",
            "--insecure",
        ],
    );
    assert_eq!(run.output.status.code(), Some(1));
    assert_eq!(run.errors().get("tls_failed"), Some(&3), "{}", run.report);
    let said = reasons(&run);
    assert!(
        !said.is_empty() && said.iter().all(|(_, r, _)| r.starts_with("TLS: ")),
        "{said:?}"
    );
}

#[test]
fn trust_settings_must_match_the_scheme() {
    let pki = Pki::new("usage");
    let ca = pki.ca_path();
    let cases: [(&[&str], &str); 6] = [
        (
            &["echo", "--url", "wss://127.0.0.1:9/"],
            "wss:// needs --ca FILE or --insecure",
        ),
        (
            &["connect", "--url", "ws://127.0.0.1:9/", "--insecure"],
            "--ca and --insecure are for wss:// URLs",
        ),
        (
            &["idle", "--url", "ws://127.0.0.1:9/", "--ca", &ca],
            "--ca and --insecure are for wss:// URLs",
        ),
        (
            &[
                "echo",
                "--url",
                "wss://127.0.0.1:9/",
                "--ca",
                &ca,
                "--insecure",
            ],
            "cannot be used with",
        ),
        (
            &[
                "echo",
                "--url",
                "wss://127.0.0.1:9/",
                "--ca",
                "/nonexistent/ca.pem",
            ],
            "cannot read --ca /nonexistent/ca.pem",
        ),
        (
            // The loopback guard holds for wss:// too.
            &["echo", "--url", "wss://192.0.2.1/", "--insecure"],
            "--allow-remote",
        ),
    ];
    for (args, says) in cases {
        let output = load(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Not PEM at all.
    let junk = pki.dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let output = load(&[
        "echo",
        "--url",
        "wss://127.0.0.1:9/",
        "--ca",
        junk.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca: no PEM certificate"), "{stderr}");
}

#[test]
fn a_ca_file_too_long_for_a_job_stops_the_run_before_it_starts() {
    let pki = Pki::new("long-ca");
    let pem = std::fs::read_to_string(pki.ca_path()).unwrap();
    // The same root two hundred times over: a valid file, too long to send to agents.
    let long = pki.dir.join("long.pem");
    std::fs::write(&long, pem.repeat(200)).unwrap();
    // Nothing listens there: the size is checked before any agent is contacted.
    let output = load(&[
        "connect",
        "--url",
        "wss://127.0.0.1:9/",
        "--ca",
        long.to_str().unwrap(),
        "--agents",
        "127.0.0.1:9",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("above the agent protocol's limit"),
        "{stderr}"
    );
}
