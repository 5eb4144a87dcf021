//! The unmask target as one number per case, robust to a busy machine: `apply_mask`
//! throughput divided by that of a plain XOR-with-a-constant loop over the same buffer.
//!
//! Criterion measures one function after the other, so when other work on the machine comes
//! and goes between them their ratio drifts by tens of percent. Here the two are timed in
//! alternating short trials, many times, and each keeps its fastest trial: the time of a run
//! that nothing interrupted. The whole sweep is repeated `SWEEPS` times, seconds apart, and
//! the fastest of all is kept, so a burst of load (on this VM's core or on the host's sibling
//! hyperthread) that spans one case's trials does not decide its figure. Every size, buffer
//! offset (from a 64-byte boundary) and key phase is covered. The target (issue 4) is a ratio
//! of at least 0.80 from 4 KiB up.
//!
//! Run: `cargo bench --bench mask_ratio` (a few seconds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use wsloop::proto::apply_mask;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// Alternating trials per function and case, in each sweep.
const TRIALS: usize = 51;
/// Passes over every case.
const SWEEPS: usize = 5;
/// Bytes processed per trial, so each trial lasts some tens of microseconds at any size.
const BYTES_PER_TRIAL: usize = 1 << 20;
const TARGET: f64 = 0.80;

#[inline(never)]
fn unmask(buf: &mut [u8], phase: usize) -> usize {
    apply_mask(buf, MASK, phase)
}

/// The yardstick: what the hardware does for the simplest in-place XOR loop.
#[inline(never)]
fn xor_const(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        *b ^= 0x5a;
    }
}

fn time(reps: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed()
}

fn gib_per_s(bytes: usize, reps: usize, t: Duration) -> f64 {
    (bytes * reps) as f64 / t.as_secs_f64() / f64::from(1u32 << 30)
}

const SIZES: [usize; 8] = [16, 64, 256, 1024, 4096, 16 << 10, 64 << 10, 1 << 20];

/// One case: its fastest apply_mask and xor_const trial so far.
#[derive(Clone, Copy)]
struct Best {
    mask: Duration,
    xor: Duration,
}

fn main() {
    let cases: Vec<(usize, usize, usize)> = SIZES
        .iter()
        .flat_map(|&size| {
            (0..4).flat_map(move |offset| (0..4).map(move |phase| (size, offset, phase)))
        })
        .collect();
    let mut best = vec![
        Best {
            mask: Duration::MAX,
            xor: Duration::MAX,
        };
        cases.len()
    ];
    let mut storage = vec![0u8; SIZES[SIZES.len() - 1] + 128];
    storage
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let aligned = (64 - storage.as_ptr() as usize % 64) % 64;
    for _ in 0..SWEEPS {
        for (&(size, offset, phase), best) in cases.iter().zip(best.iter_mut()) {
            let reps = (BYTES_PER_TRIAL / size).max(1);
            let start = aligned + offset;
            let buf = &mut storage[start..start + size];
            for _ in 0..TRIALS {
                best.mask = best.mask.min(time(reps, || {
                    black_box(unmask(black_box(&mut *buf), black_box(phase)));
                }));
                best.xor = best.xor.min(time(reps, || xor_const(black_box(&mut *buf))));
            }
        }
    }

    println!("| size | offset | phase | apply_mask | xor_const | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut worst_large: Option<(f64, usize, usize, usize)> = None;
    for (&(size, offset, phase), best) in cases.iter().zip(&best) {
        let reps = (BYTES_PER_TRIAL / size).max(1);
        let mask_rate = gib_per_s(size, reps, best.mask);
        let xor_rate = gib_per_s(size, reps, best.xor);
        let ratio = mask_rate / xor_rate;
        println!("| {size} | {offset} | {phase} | {mask_rate:.1} GiB/s | {xor_rate:.1} GiB/s | {ratio:.2} |");
        if size >= 4096 && worst_large.map_or(true, |(r, ..)| ratio < r) {
            worst_large = Some((ratio, size, offset, phase));
        }
    }
    if let Some((ratio, size, offset, phase)) = worst_large {
        let verdict = if ratio >= TARGET { "met" } else { "NOT met" };
        println!(
            "\nlowest ratio from 4 KiB up: {ratio:.2} (size {size}, offset {offset}, phase {phase}); \
             target {TARGET:.2}: {verdict}"
        );
    }
}
