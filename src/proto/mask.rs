//! Payload masking (RFC 6455 section 5.3): XOR with a 4-byte key, in place.
//!
//! "Octet i of the transformed data ("transformed-octet-i") is the XOR of octet i of the
//! original data ("original-octet-i") with octet at index i modulo 4 of the masking key".
//! Payloads arrive in pieces, so every function takes the key's phase: the index into the
//! key of the piece's first byte.

/// Masks or unmasks `buf` in place, `buf[0]` taking key byte `phase % 4`. Returns the phase
/// of the byte after `buf`, for the next piece of the same payload.
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
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
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

/// The key as seen from a byte at `phase`.
#[inline]
fn rotate(mask: [u8; 4], phase: usize) -> [u8; 4] {
    let p = phase & 3;
    [
        mask[p],
        mask[(p + 1) & 3],
        mask[(p + 2) & 3],
        mask[(p + 3) & 3],
    ]
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
