//! permessage-deflate throughput: compressing what the server sends and inflating what it
//! receives, per message, with and without context takeover.
//!
//! Run: `cargo bench --bench deflate` (add `-- --warm-up-time 1 --measurement-time 3` on a
//! busy machine). Throughput is in uncompressed bytes. "shared" is the binary's `--deflate`
//! default (no context takeover: one zlib stream per loop, reset after each message);
//! "takeover" keeps a window per connection (`--deflate-context-takeover`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsloop::proto::deflate::{negotiate, DeflateConfig, SharedStreams};
use wsloop::proto::{PerMessageDeflate, Role};

/// JSON-like text of about `len` bytes: what WebSocket applications mostly send.
fn json_like(len: usize) -> Vec<u8> {
    let mut text = String::with_capacity(len + 64);
    let mut i = 0u64;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"price\":{}.{:02},\"side\":\"{}\"}},",
            i % 97,
            1000 + (i * 7919) % 5000,
            i % 100,
            if i % 3 == 0 { "buy" } else { "sell" }
        ));
        i += 1;
    }
    text.truncate(len);
    text.into_bytes()
}

fn pair(context_takeover: bool) -> (PerMessageDeflate, PerMessageDeflate) {
    let config = DeflateConfig {
        server_no_context_takeover: !context_takeover,
        client_no_context_takeover: !context_takeover,
        threshold: 0,
        ..DeflateConfig::default()
    };
    let params = negotiate(["permessage-deflate"], &config).expect("acceptable offer");
    (
        PerMessageDeflate::new(Role::Server, params, &config),
        PerMessageDeflate::new(Role::Client, params, &config),
    )
}

fn compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/compress");
    for size in [128usize, 1024, 16 << 10, 64 << 10] {
        let message = json_like(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (mode, takeover) in [("shared", false), ("takeover", true)] {
            let (mut server, _) = pair(takeover);
            let mut shared = SharedStreams::default();
            let mut out = Vec::with_capacity(size * 2);
            group.bench_with_input(BenchmarkId::new(mode, size), &message, |b, message| {
                b.iter(|| {
                    out.clear();
                    server.deflate(black_box(message), &mut out, &mut shared);
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/inflate");
    for size in [128usize, 1024, 16 << 10, 64 << 10] {
        let message = json_like(size);
        group.throughput(Throughput::Bytes(size as u64));
        // Without context takeover every message inflates on its own, so one compressed
        // message can be inflated again and again.
        let (mut server, mut client) = pair(false);
        let mut shared = SharedStreams::default();
        let mut compressed = Vec::new();
        client.deflate(&message, &mut compressed, &mut shared);
        eprintln!(
            "deflate/{size}: compressed to {:.1} % of the input",
            compressed.len() as f64 * 100.0 / size as f64
        );
        let mut out = Vec::with_capacity(size);
        group.bench_with_input(
            BenchmarkId::new("shared", size),
            &compressed,
            |b, compressed| {
                b.iter(|| {
                    out.clear();
                    server
                        .inflate(black_box(compressed), usize::MAX, &mut out, &mut shared)
                        .expect("inflates");
                    black_box(out.len())
                })
            },
        );
    }
    group.finish();
}

/// A client compressing and the server inflating the same stream of messages: with context
/// takeover a message can only be inflated after the one before it, so the two are timed
/// together.
fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate/round_trip");
    for size in [128usize, 1024, 16 << 10] {
        let message = json_like(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (mode, takeover) in [("shared", false), ("takeover", true)] {
            let (mut server, mut client) = pair(takeover);
            let mut client_shared = SharedStreams::default();
            let mut server_shared = SharedStreams::default();
            let (mut compressed, mut out) = (Vec::new(), Vec::with_capacity(size));
            group.bench_with_input(BenchmarkId::new(mode, size), &message, |b, message| {
                b.iter(|| {
                    compressed.clear();
                    out.clear();
                    client.deflate(black_box(message), &mut compressed, &mut client_shared);
                    server
                        .inflate(&compressed, usize::MAX, &mut out, &mut server_shared)
                        .expect("inflates");
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, compress, inflate, round_trip);
criterion_main!(benches);
