//! Differential fuzzing of the unmask fast path against the byte-at-a-time reference.
//!
//! Input layout: 4 key bytes, 1 phase byte, 1 offset byte (the payload's start within its
//! buffer, 0..63, so every alignment is tried), 2 split bytes (where the payload is cut into
//! two pieces, as a read boundary would cut it), then the payload. The fast path, applied to
//! the two pieces with the phase carried across, must give the same bytes and the same next
//! phase as the reference over the whole payload, and must touch nothing outside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::{apply_mask, apply_mask_scalar};

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<8>() else {
        return;
    };
    let mask = [head[0], head[1], head[2], head[3]];
    let phase = usize::from(head[4]);
    let offset = usize::from(head[5] & 63);
    let split = usize::from(u16::from_le_bytes([head[6], head[7]])) % (payload.len() + 1);

    // Guard bytes around the payload catch writes outside the slice.
    let mut buf = vec![0xA5u8; offset + payload.len() + 64];
    buf[offset..offset + payload.len()].copy_from_slice(payload);
    let mut reference = buf.clone();

    let end = offset + payload.len();
    let mid = apply_mask(&mut buf[offset..offset + split], mask, phase);
    let fast_phase = apply_mask(&mut buf[offset + split..end], mask, mid);
    let slow_phase = apply_mask_scalar(&mut reference[offset..end], mask, phase);

    assert_eq!(fast_phase, slow_phase);
    assert_eq!(fast_phase, (phase + payload.len()) % 4);
    assert!(buf == reference, "fast and reference unmasking differ");
});
