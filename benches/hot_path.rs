//! Micro-benchmarks of the frame hot path: header parse/encode, unmasking, UTF-8, the opening
//! handshake, and an in-memory pass of many small frames through `Session::poll`.
//!
//! Run: `cargo bench --bench hot_path` (add `-- --warm-up-time 1 --measurement-time 3` on a
//! busy machine, and a filter such as `mask/` to run one group). Every benchmark reports
//! throughput, bytes or elements per second. See BENCHMARKS.md for figures and
//! docs/profiling.md for profiling the same code.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use wsloop::proto::{
    accept_key, apply_mask, apply_mask_scalar, encode_frame, parse_request, Event, FrameHeader,
    FrameSpec, OpCode, Role, Session, SessionEvent, Status, Utf8Stream, MAX_HEADERS,
    MAX_HEADER_LEN,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A buffer of `len` bytes starting `offset` bytes past a 64-byte boundary, so misalignment
/// is exact and repeatable whatever the allocator returns.
struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, offset: usize) -> Aligned {
        let mut storage: Vec<u8> = (0..len + 128).map(|i| (i * 31 + 7) as u8).collect();
        let misalign = storage.as_ptr() as usize % 64;
        let start = (64 - misalign) % 64 + offset;
        // Touch the pages once so the first sample does not pay for page faults.
        storage.iter_mut().for_each(|b| *b = b.wrapping_add(1));
        Aligned {
            storage,
            start,
            len,
        }
    }

    fn buf(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// The plain XOR-with-a-constant loop: the ceiling any unmask can hope for at this size.
#[inline(never)]
fn xor_const(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b ^= 0x5a;
    }
}

fn frame_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header");
    group.throughput(Throughput::Elements(1));
    // The three length forms: 7-bit, 16-bit and 64-bit, all masked as a client sends them.
    for (name, len) in [("len7", 100u64), ("len16", 1000), ("len64", 100_000)] {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some(MASK),
            payload_len: len,
        };
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut bytes);
        group.bench_function(BenchmarkId::new("parse", name), |b| {
            b.iter(|| match FrameHeader::parse(black_box(&bytes[..n])) {
                Ok(Status::Complete(parsed)) => parsed,
                _ => unreachable!(),
            })
        });
        // The server encodes unmasked headers.
        let header = FrameHeader {
            mask: None,
            ..header
        };
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; MAX_HEADER_LEN];
            b.iter(|| black_box(&header).encode(black_box(&mut out)))
        });
    }
    group.finish();
}

/// Unmasking at sizes 16 B..1 MiB against the byte-at-a-time reference and the XOR-constant
/// loop, all from a 64-byte-aligned buffer with phase 0.
fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in [16usize, 64, 256, 1024, 4096, 16 << 10, 64 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(size as u64));
        let mut data = Aligned::new(size, 0);
        group.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| apply_mask(black_box(data.buf()), black_box(MASK), black_box(0)))
        });
        group.bench_function(BenchmarkId::new("xor_const", size), |b| {
            b.iter(|| xor_const(black_box(data.buf())))
        });
        // The byte loop is slow enough that its large sizes add only minutes, not insight.
        if size <= 64 << 10 {
            group.bench_function(BenchmarkId::new("scalar", size), |b| {
                b.iter(|| apply_mask_scalar(black_box(data.buf()), black_box(MASK), black_box(0)))
            });
        }
    }
    group.finish();
}

/// Every buffer offset 0..3 (from a 64-byte boundary) and key phase 0..3, at 4 KiB and 64 KiB,
/// with the XOR-constant loop at the same offset as the yardstick.
fn mask_offsets(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask_offsets");
    for size in [4096usize, 64 << 10] {
        group.throughput(Throughput::Bytes(size as u64));
        for offset in 0..4 {
            let mut data = Aligned::new(size, offset);
            for phase in [0usize, 3] {
                let id = format!("{size}/off{offset}/phase{phase}");
                group.bench_function(BenchmarkId::new("apply_mask", &id), |b| {
                    b.iter(|| apply_mask(black_box(data.buf()), black_box(MASK), black_box(phase)))
                });
            }
            let id = format!("{size}/off{offset}");
            group.bench_function(BenchmarkId::new("xor_const", &id), |b| {
                b.iter(|| xor_const(black_box(data.buf())))
            });
        }
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    let size = 64 << 10;
    let ascii: Vec<u8> = b"The quick brown fox jumps over the lazy dog. "
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    // Two-, three- and four-byte sequences mixed; trimmed to whole characters.
    let mut multibyte = "κόσμε € 日本語 𝄞 😀 ".repeat(size / 30 + 1);
    while multibyte.len() > size {
        multibyte.pop();
    }
    let multibyte = multibyte.into_bytes();
    for (name, text) in [("ascii", &ascii), ("multibyte", &multibyte)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(BenchmarkId::new("validate", name), |b| {
            b.iter(|| simdutf8::basic::from_utf8(black_box(text)).is_ok())
        });
        group.bench_function(BenchmarkId::new("std_from_utf8", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(text)).is_ok())
        });
        // 1 KiB pieces: in the multibyte text most boundaries cut a character.
        group.bench_function(BenchmarkId::new("stream_1k_pieces", name), |b| {
            b.iter(|| {
                let mut stream = Utf8Stream::default();
                for piece in black_box(text).chunks(1024) {
                    stream.feed(piece).unwrap();
                }
                stream.finish().unwrap();
            })
        });
    }
    group.finish();
}

const REQUEST: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
Host: server.example.com:9001\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Sec-WebSocket-Version: 13\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Connection: keep-alive, Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
Upgrade: websocket\r\n\r\n";

fn handshake(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_request", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse_request(black_box(REQUEST), &mut headers) {
                Ok(Status::Complete((_, len))) => len,
                other => panic!("{other:?}"),
            }
        })
    });
    group.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box(b"dGhlIHNhbXBsZSBub25jZQ==")))
    });
    group.finish();
}

/// `count` masked client frames of `payload_len` bytes each, back to back, as one read.
fn client_frames(count: usize, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let spec = FrameSpec {
        mask: Some(MASK),
        ..FrameSpec::server(opcode)
    };
    for _ in 0..count {
        encode_frame(&mut wire, spec, payload);
    }
    wire
}

/// What the reactor does with one read buffer: `Session::poll` until the buffer is used up,
/// each event to `handler`. Returns the number of events.
fn drain<F: FnMut(&mut Session, &mut Vec<u8>, Event<'_>)>(
    session: &mut Session,
    input: &mut [u8],
    out: &mut Vec<u8>,
    mut handler: F,
) -> usize {
    let mut pos = 0;
    let mut events = 0;
    while pos < input.len() {
        let (used, event) = session.poll(&mut input[pos..], out);
        pos += used;
        match event {
            Some(SessionEvent::Frame(event)) => {
                events += 1;
                handler(session, out, event);
            }
            Some(SessionEvent::Failed(err)) => panic!("{err:?}"),
            None => {}
        }
    }
    events
}

/// Many small masked frames in one buffer through the connection state machine, no sockets.
/// The copy of the pristine input (unmasking is in place) is setup, outside the timing.
fn session(c: &mut Criterion) {
    let mut group = c.benchmark_group("session");
    const FRAMES: usize = 1000;
    let cases: [(&str, OpCode, Vec<u8>); 3] = [
        ("text16", OpCode::Text, b"0123456789abcdef".to_vec()),
        ("binary125", OpCode::Binary, vec![0xa5; 125]),
        ("text1k", OpCode::Text, "é".repeat(512).into_bytes()),
    ];
    for (name, opcode, payload) in &cases {
        let wire = client_frames(FRAMES, *opcode, payload);
        group.throughput(Throughput::Elements(FRAMES as u64));
        group.bench_function(BenchmarkId::new("deliver", name), |b| {
            let mut out = Vec::with_capacity(1 << 16);
            b.iter_batched_ref(
                || (wire.clone(), Session::new(Role::Server, 1 << 20)),
                |(input, session)| {
                    drain(session, input, &mut out, |_, _, event| {
                        black_box(event);
                    })
                },
                BatchSize::LargeInput,
            )
        });
        // The echo server's handler: each message sent straight back into the output buffer.
        group.bench_function(BenchmarkId::new("echo", name), |b| {
            let mut out = Vec::with_capacity(1 << 20);
            b.iter_batched_ref(
                || (wire.clone(), Session::new(Role::Server, 1 << 20)),
                |(input, session)| {
                    out.clear();
                    drain(session, input, &mut out, |session, out, event| {
                        match event {
                            Event::Text(text) => session.send(out, OpCode::Text, text.as_bytes()),
                            Event::Binary(data) => session.send(out, OpCode::Binary, &data),
                            _ => Ok(()),
                        }
                        .unwrap()
                    })
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    frame_header,
    mask,
    mask_offsets,
    utf8,
    handshake,
    session
);
criterion_main!(benches);
