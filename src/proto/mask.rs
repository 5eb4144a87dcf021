//! Payload masking (RFC 6455 section 5.3): XOR with a 4-byte key, in place.
//!
//! "Octet i of the transformed data ("transformed-octet-i") is the XOR of octet i of the
//! original data ("original-octet-i") with octet at index i modulo 4 of the masking key".
//! Payloads arrive in pieces, so every function takes the key's phase: the index into the
//! key of the piece's first byte.

/// Masks or unmasks `buf` in place, `buf[0]` taking key byte `phase % 4`. Returns the phase
/// of the byte after `buf`, for the next piece of the same payload.
///
/// Safe code, and it needs no more: LLVM vectorises the 8-byte `chunks_exact_mut` loop into
/// SSE2 (two 16-byte `pxor` per iteration on the baseline x86-64 target), so from 4 KiB up it
/// runs within a few percent of a plain XOR-with-a-constant loop over the same buffer,
/// whatever the buffer's alignment and the key's phase (`cargo bench --bench mask_ratio`;
/// figures in BENCHMARKS.md). The key is rotated with one `u32` rotate and the tail done as a
/// `u32` and at most three bytes, which keeps short payloads (a 16-byte message) cheap too.
/// An explicit AVX2 path would be faster on cache-resident buffers, but nothing in a WebSocket
/// server waits on unmasking at these rates, so it would be unsafe code for no gain a user can
/// see.
///
/// ```
/// use wsloop::proto::apply_mask;
/// // RFC 6455 section 5.7: "Hello", masked with 37 fa 21 3d.
/// let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let next = apply_mask(&mut data[..2], [0x37, 0xfa, 0x21, 0x3d], 0);
/// apply_mask(&mut data[2..], [0x37, 0xfa, 0x21, 0x3d], next);
/// assert_eq!(&data, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], phase: usize) -> usize {
    let key = rotate(mask, phase);
    let key32 = u32::from_ne_bytes(key);
    // Both halves hold the same four bytes, so this is right on either byte order.
    let wide = u64::from(key32) * 0x1_0000_0001;
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // Whole words keep the phase: the tail starts at key byte 0 again.
    let tail = words.into_remainder();
    let (half, bytes) = tail.split_at_mut(tail.len() & 4);
    if let Ok(half) = <&mut [u8; 4]>::try_from(half) {
        *half = (u32::from_ne_bytes(*half) ^ key32).to_ne_bytes();
    }
    for (byte, k) in bytes.iter_mut().zip(key) {
        *byte ^= k;
    }
    (phase + buf.len()) & 3
}

/// The byte-at-a-time reference that [`apply_mask`] must always agree with.
pub fn apply_mask_scalar(buf: &mut [u8], mask: [u8; 4], phase: usize) -> usize {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= mask[(phase + i) & 3];
    }
    (phase + buf.len()) & 3
}

/// The key as seen from a byte at `phase`: the mask rotated by `phase % 4` bytes, done as one
/// rotate of a `u32` rather than four indexed loads.
#[inline]
fn rotate(mask: [u8; 4], phase: usize) -> [u8; 4] {
    let word = u32::from_ne_bytes(mask);
    let bits = 8 * (phase & 3) as u32;
    let rotated = if cfg!(target_endian = "little") {
        word.rotate_right(bits)
    } else {
        word.rotate_left(bits)
    };
    rotated.to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_matches_scalar_reference() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..8 {
            for len in 0..(data.len() - start) {
                for phase in 0..4 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    let a = apply_mask(&mut fast, mask, phase);
                    let b = apply_mask_scalar(&mut slow, mask, phase);
                    assert_eq!(
                        (a, &fast),
                        (b, &slow),
                        "start {start} len {len} phase {phase}"
                    );
                }
            }
        }
    }

    /// In place inside a larger buffer: every start offset modulo 16, every small length and
    /// every phase, and nothing outside the slice touched.
    #[test]
    fn in_place_at_every_offset_length_and_phase() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let pristine: Vec<u8> = (0..512u32).map(|i| (i * 131 + 17) as u8).collect();
        for offset in 0..16 {
            for len in 0..=200 {
                for phase in 0..8 {
                    let mut fast = pristine.clone();
                    let mut slow = pristine.clone();
                    let a = apply_mask(&mut fast[offset..offset + len], mask, phase);
                    let b = apply_mask_scalar(&mut slow[offset..offset + len], mask, phase);
                    assert_eq!(a, b, "offset {offset} len {len} phase {phase}");
                    assert_eq!(a, (phase + len) % 4);
                    assert!(fast == slow, "offset {offset} len {len} phase {phase}");
                }
            }
        }
    }

    /// A small deterministic generator (xorshift64*), so the random test needs no dependency
    /// and a failure can be replayed from the printed seed.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Property-style: random contents, keys, phases, offsets and lengths up to 70 KiB, masked
    /// in random pieces with the phase carried along, always equal to the byte loop run once
    /// over the whole; and masking twice gives the original back.
    #[test]
    fn random_buffers_and_pieces_match_the_reference() {
        for seed in 1..=200u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let len = match rng.below(4) {
                0 => rng.below(64),
                1 => rng.below(4096),
                _ => rng.below(70_000),
            };
            let offset = rng.below(64);
            let phase = rng.below(4);
            let mask = rng.next().to_le_bytes()[..4].try_into().unwrap();
            let mut storage: Vec<u8> = (0..offset + len + 64).map(|_| rng.next() as u8).collect();
            let original = storage.clone();

            let mut expected = storage.clone();
            let expected_phase =
                apply_mask_scalar(&mut expected[offset..offset + len], mask, phase);

            let mut at = offset;
            let mut next_phase = phase;
            while at < offset + len {
                let piece = (1 + rng.below(5000)).min(offset + len - at);
                next_phase = apply_mask(&mut storage[at..at + piece], mask, next_phase);
                at += piece;
            }
            assert_eq!(next_phase, expected_phase, "seed {seed}");
            assert!(
                storage == expected,
                "seed {seed}: len {len} offset {offset}"
            );

            apply_mask(&mut storage[offset..offset + len], mask, phase);
            assert!(
                storage == original,
                "seed {seed}: masking twice is not the identity"
            );
        }
    }

    #[test]
    fn rotate_starts_the_key_at_the_phase() {
        let mask = [1, 2, 3, 4];
        assert_eq!(rotate(mask, 0), [1, 2, 3, 4]);
        assert_eq!(rotate(mask, 1), [2, 3, 4, 1]);
        assert_eq!(rotate(mask, 2), [3, 4, 1, 2]);
        assert_eq!(rotate(mask, 3), [4, 1, 2, 3]);
        assert_eq!(rotate(mask, 7), [4, 1, 2, 3]);
    }

    #[test]
    fn pieces_compose() {
        let mask = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..100).collect();
        let mut pieces = whole.clone();
        apply_mask(&mut whole, mask, 0);
        let mut phase = 0;
        for piece in pieces.chunks_mut(7) {
            phase = apply_mask(piece, mask, phase);
        }
        assert_eq!(whole, pieces);
    }
}
