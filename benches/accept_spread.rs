//! How evenly each accept mode spreads connections over the loops: a [`Cluster`] in this
//! process, `wsloop-load idle` opening the connections from another (each process stays
//! under the open-file limit), and the per-loop counts read once all are open.
//!
//! ```sh
//! cargo build --release -p loadtest
//! cargo bench --bench accept_spread -- [LOOPS [CONNECTIONS [SLOW_RATE]]]   # 4 10000 1000
//! ```
//!
//! Prints a Markdown table: mode, how the connections came (a burst: as fast as the server
//! accepts, 4 generator threads; slowly: SLOW_RATE per second), the count per loop,
//! max/min, and how long opening all of them took.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wsloop::{Accept, Cluster, Config, Echo};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .map(|arg| {
            arg.parse()
                .expect("LOOPS CONNECTIONS SLOW_RATE, as numbers")
        })
        .collect();
    let loops = args.first().copied().unwrap_or(4);
    let connections = args.get(1).copied().unwrap_or(10_000);
    let slow_rate = args.get(2).copied().unwrap_or(1_000);
    let generator = std::env::var("WSLOOP_LOAD").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        format!("{target}/release/wsloop-load")
    });
    if !std::path::Path::new(&generator).exists() {
        println!(
            "accept_spread skipped: {generator} not found (cargo build --release -p loadtest)"
        );
        return;
    }
    raise_open_file_limit();
    println!("| accept | connections came | per loop | max/min | all open after |");
    println!("| --- | --- | --- | --- | --- |");
    for accept in [Accept::Balanced, Accept::ReusePort] {
        for rate in [None, Some(slow_rate)] {
            let (counts, took) = run(&generator, accept, loops, connections, rate);
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            let how = rate.map_or("burst".to_owned(), |r| format!("{r}/s"));
            println!(
                "| {accept:?} | {how} | {counts:?} | {:.3} | {:.1} s |",
                max as f64 / min.max(1) as f64,
                took.as_secs_f64()
            );
        }
    }
}

/// Opens `connections` against a fresh cluster; returns the per-loop counts once all are
/// open, and how long that took.
fn run(
    generator: &str,
    accept: Accept,
    loops: usize,
    connections: usize,
    rate: Option<usize>,
) -> (Vec<usize>, Duration) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        accept,
        idle_timeout: None,
        backlog: 4096,
        ..Config::default()
    };
    let cluster = Cluster::bind(config, loops, |_| Echo).expect("bind");
    let addr = cluster.local_addr();
    let remote = cluster.remote();
    let stop = cluster.shutdown_handle();
    let server = thread::spawn(move || cluster.run());
    let start = Instant::now();
    let hold = Duration::from_secs(5 + (connections / rate.unwrap_or(5_000)) as u64);
    let mut command = Command::new(generator);
    command
        .args(["idle", "--url", &format!("ws://{addr}/"), "-q", "-t", "4"])
        .args([
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{}s", hold.as_secs()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(rate) = rate {
        command.args(["--connect-rate", &rate.to_string()]);
    }
    let mut child = command.spawn().unwrap_or_else(|err| {
        panic!("cannot start {generator} ({err}): cargo build --release -p loadtest first")
    });
    let counts = loop {
        let counts = remote.connections();
        if counts.iter().sum::<usize>() >= connections {
            break counts;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the generator ended ({status}) with {counts:?} open");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "too slow: {counts:?}"
        );
        thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    stop.shutdown();
    server.join().expect("server thread").expect("server");
    (counts, took)
}

/// Both ends of 10,000 connections need more descriptors than the usual soft limit of 1024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
