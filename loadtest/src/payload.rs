//! Echo payloads that can be checked byte for byte without keeping a copy of what was sent.
//!
//! A payload starts with the message's token (the connection's id in the high bits, its
//! sequence number in the low ones): 8 bytes big-endian in binary messages, 16 lowercase hex
//! digits in text messages. A slice of a fixed printable pattern follows, starting at an
//! offset that depends on the token. The receiver knows which token it expects next (an echo
//! server answers in order), rebuilds nothing and compares two slices. A payload from
//! another connection, a reordered, truncated or corrupted one all fail the comparison.

/// The pattern's period: a prime, so neighbouring tokens get unrelated-looking bodies.
const PERIOD: usize = 251;

/// Makes and checks the payloads of one run (one size and kind for every message).
#[derive(Debug, Clone)]
pub struct Payloads {
    size: usize,
    text: bool,
    pattern: Vec<u8>,
}

impl Payloads {
    /// Payloads of `size` bytes; shorter than the token, they carry only its first bytes.
    pub fn new(size: usize, text: bool) -> Payloads {
        let header = if text { 16 } else { 8 };
        Payloads {
            size,
            text,
            pattern: pattern(size.saturating_sub(header) + PERIOD),
        }
    }

    /// Replaces `out` with the payload for `token`.
    pub fn write(&self, token: u64, out: &mut Vec<u8>) {
        out.clear();
        let (header, len) = self.header(token);
        out.extend_from_slice(&header[..len]);
        out.extend_from_slice(self.body(token, len));
    }

    /// Whether `got` is exactly the payload for `token`.
    pub fn matches(&self, token: u64, got: &[u8]) -> bool {
        let (header, len) = self.header(token);
        got.len() == self.size
            && got[..len] == header[..len]
            && got[len..] == *self.body(token, len)
    }

    /// The token as it starts the payload, and how many of its bytes fit.
    fn header(&self, token: u64) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        if self.text {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = DIGITS[((token >> (60 - 4 * i)) & 0xf) as usize];
            }
            (out, self.size.min(16))
        } else {
            out[..8].copy_from_slice(&token.to_be_bytes());
            (out, self.size.min(8))
        }
    }

    fn body(&self, token: u64, header: usize) -> &[u8] {
        let start = (token % PERIOD as u64) as usize;
        &self.pattern[start..start + (self.size - header)]
    }
}

/// The token of message `seq` on connection `conn`: unique across the run's connections.
pub fn token(conn: u64, seq: u64) -> u64 {
    (conn << 40) | (seq & ((1 << 40) - 1))
}

/// `len` printable ASCII bytes from a fixed linear congruential sequence.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            b' ' + ((state >> 24) % 95) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_both_kinds() {
        for text in [false, true] {
            for size in [0, 1, 7, 8, 15, 16, 20, 1024, 16384] {
                let p = Payloads::new(size, text);
                let mut buf = Vec::new();
                p.write(token(3, 77), &mut buf);
                assert_eq!(buf.len(), size);
                assert!(p.matches(token(3, 77), &buf), "size {size} text {text}");
                if text {
                    assert!(std::str::from_utf8(&buf).is_ok());
                }
            }
        }
        let mut buf = Vec::new();
        Payloads::new(20, true).write(0xab, &mut buf);
        assert_eq!(&buf[..16], b"00000000000000ab");
    }

    #[test]
    fn detects_wrong_order_other_connections_and_corruption() {
        for text in [false, true] {
            let p = Payloads::new(64, text);
            let mut buf = Vec::new();
            p.write(token(1, 5), &mut buf);
            assert!(!p.matches(token(1, 6), &buf));
            assert!(!p.matches(token(2, 5), &buf));
            assert!(!p.matches(token(1, 5), &buf[..63]));
            buf[40] ^= 1;
            assert!(!p.matches(token(1, 5), &buf));
        }
    }
}
