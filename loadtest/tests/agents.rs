//! Runs `wsloop-load` split over two and three agents (child processes of the same binary)
//! against an in-process wsloop server, and checks that the controller's report adds the
//! agents' figures up exactly, carries their clock offsets, reports an agent killed mid-run,
//! and that agents keep to their own rules and protocol version.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::{agents_flag, rows, run, sum, Agent, TestServer};

#[test]
fn two_agents_split_an_open_loop_run_and_merge_it_exactly() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let agents = [Agent::start(&[]), Agent::start(&[])];
    let flag = agents_flag(&agents);
    let args = [
        "latency", "--url", &url, "-c", "20", "--rate", "2000", "-d", "1500ms", "--warmup",
        "300ms", "--agents", &flag,
    ];
    let run = run("agents-2", &args);
    let stdout = String::from_utf8_lossy(&run.output.stdout);
    assert!(run.output.status.success(), "{stdout}");
    let report = &run.report;
    let rows = rows(report);
    assert_eq!(rows.len(), 2);
    for (row, agent) in rows.iter().zip(&agents) {
        assert_eq!(row["addr"], agent.addr.as_str());
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["connections"], 10, "{row}");
        assert_eq!(row["connections_opened"], 10, "{row}");
        // Both on this machine's clock: the offset is the measurement's error.
        let offset = row["clock_offset_us"].as_f64().unwrap();
        let rtt = row["rtt_us"].as_f64().unwrap();
        assert!(offset.abs() < 5_000.0 && rtt > 0.0, "{row}");
        // Half the rate each, give or take a slow start.
        let sent = row["messages_sent"].as_u64().unwrap() as f64;
        let share = sent / run.u64("messages_sent") as f64;
        assert!((0.35..0.65).contains(&share), "{row}");
        assert_eq!(row["thread_busy"].as_array().unwrap().len(), 1, "{row}");
    }
    // The run's counts are the agents', added up.
    assert_eq!(
        run.u64("connections_opened"),
        sum(rows, "connections_opened")
    );
    assert_eq!(run.u64("messages_sent"), sum(rows, "messages_sent"));
    assert_eq!(run.u64("messages_received"), sum(rows, "messages_received"));
    assert_eq!(run.u64("messages_received"), run.u64("messages_sent"));
    assert_eq!(run.u64("errors_total"), 0, "{report}");
    // The merged histogram holds every agent's round trips.
    let count = report["latency_us"]["count"].as_u64().unwrap();
    assert!(
        count > 1000 && count <= run.u64("messages_received"),
        "{count}"
    );
    let rate = run.f64("messages_per_sec");
    assert!((1400.0..2300.0).contains(&rate), "asked 2000/s, got {rate}");
    let threads = report["generator"]["thread_busy"].as_array().unwrap();
    assert_eq!(threads.len(), 2, "one thread on each agent");
    assert!(
        stdout.contains("  agents        2 of 2 reported"),
        "{stdout}"
    );
}

#[test]
fn three_agents_share_a_message_count_exactly() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let agents = [Agent::start(&[]), Agent::start(&[]), Agent::start(&[])];
    let flag = agents_flag(&agents);
    let args = [
        "echo",
        "--url",
        &url,
        "-c",
        "9",
        "-d",
        "20s",
        "--warmup",
        "0s",
        "--messages",
        "3000",
        "--source",
        "127.0.0.1-127.0.0.6",
        "--agents",
        &flag,
    ];
    let run = run("agents-3", &args);
    assert!(run.output.status.success(), "{}", run.report);
    let rows = rows(&run.report);
    let sent: Vec<u64> = rows
        .iter()
        .map(|r| r["messages_sent"].as_u64().unwrap())
        .collect();
    assert_eq!(sent, [1000, 1000, 1000], "{}", run.report);
    assert_eq!(run.u64("messages_sent"), 3000);
    assert_eq!(run.u64("messages_received"), 3000);
    assert_eq!(run.report["latency_us"]["count"], 3000);
    assert_eq!(run.u64("connections_opened"), 9);
    assert_eq!(sum(rows, "connections_opened"), 9);
    assert!(run.f64("window_s") < 10.0, "stopped at the count");
}

#[test]
fn an_agent_killed_mid_run_is_reported_and_the_others_still_count() {
    let server = TestServer::start(wsloop::Echo);
    let url = server.url("/");
    let mut agents = [Agent::start(&[]), Agent::start(&[])];
    let flag = agents_flag(&agents);
    let dir = std::env::temp_dir().join(format!("wsloop-load-agents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("killed.json");
    let controller = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args([
            "latency", "--url", &url, "-c", "10", "--rate", "1000", "-d", "4s",
        ])
        .args(["--warmup", "200ms", "--quiet", "--agents", &flag, "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // About a second into the run (it starts half a second after the agents accept).
    std::thread::sleep(Duration::from_millis(1500));
    agents[1].child.kill().unwrap();
    let output = controller.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed agent fails the run: {stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows(&report);
    assert_eq!(rows[0]["status"], "ok", "{report}");
    assert_eq!(rows[1]["status"], "failed", "{report}");
    let failure = rows[1]["failure"].as_str().unwrap();
    assert!(failure.contains("connection closed"), "{failure}");
    assert_eq!(rows[1]["messages_sent"], Value::Null, "no figures from it");
    // The run's figures are the survivor's.
    assert_eq!(report["messages_sent"], rows[0]["messages_sent"]);
    assert_eq!(report["connections_opened"], rows[0]["connections_opened"]);
    assert!(report["messages_sent"].as_u64().unwrap() > 1000, "{report}");
    let warned = format!("agent {} failed (", agents[1].addr);
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with(&warned)),
        "{report}"
    );
    assert!(
        stdout.contains("  agents        1 of 2 reported"),
        "{stdout}"
    );
}

#[test]
fn agents_apply_their_own_loopback_guard() {
    let agent = Agent::start(&[]);
    // The controller allows a remote target; the agent, started without --allow-remote,
    // refuses it before connecting anywhere.
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args(["echo", "--url", "ws://192.0.2.1:9001/", "--allow-remote"])
        .args(["-d", "2s", "--agents", &agent.addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("agent {}: refused the job", agent.addr))
            && stderr.contains("--allow-remote"),
        "{stderr}"
    );
}

/// Writes one protocol frame.
fn frame(stream: &mut TcpStream, message: &Value) {
    let json = message.to_string();
    stream
        .write_all(&(json.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(json.as_bytes()).unwrap();
}

/// Reads one protocol frame (small ones only).
fn read_frame(stream: &mut TcpStream) -> Option<Value> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(len < 4096, "{len}-byte greeting");
    let mut json = vec![0u8; len];
    stream.read_exact(&mut json).ok()?;
    Some(serde_json::from_slice(&json).unwrap())
}

#[test]
fn other_protocol_versions_are_told_apart_on_both_sides() {
    // An agent from the future: the controller names both versions and stops.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let future = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        frame(
            &mut stream,
            &json!({"protocol": 999, "wsloop_load": "9.0.0"}),
        );
        read_frame(&mut stream)
    });
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop-load"))
        .args(["echo", "-d", "2s", "--agents", &addr])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("speaks agent protocol 999 (wsloop-load 9.0.0), this side protocol 2"),
        "{stderr}"
    );
    let controller_hello = future.join().unwrap().expect("the controller greets first");
    assert_eq!(controller_hello["protocol"], 2);

    // A controller from the future: the agent greets back with its own version and hangs
    // up rather than read what it would not understand.
    let agent = Agent::start(&[]);
    let mut stream = TcpStream::connect(&agent.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    frame(
        &mut stream,
        &json!({"protocol": 999, "wsloop_load": "9.0.0"}),
    );
    let hello = read_frame(&mut stream).expect("the agent greets");
    assert_eq!(hello["protocol"], 2);
    assert_eq!(read_frame(&mut stream), None, "the agent hung up");
}
