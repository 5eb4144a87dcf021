//! Echo payloads that can be checked byte for byte without keeping a copy of what was sent.
//!
//! A payload is a 16-character header, the message's token in lowercase hex (the connection's
//! id in the high bits, its sequence number in the low ones), followed by a slice of a fixed
//! printable pattern starting at an offset that depends on the token. The receiver knows which
//! token it expects next (an echo server answers in order), rebuilds nothing and compares two
//! slices. A payload from another connection, a reordered, truncated or corrupted one all
//! fail the comparison. Everything is ASCII, so the same payload is valid as a text message.

/// Length of the hex token that starts each payload.
pub const HEADER_LEN: usize = 16;
/// The pattern's period: a prime, so neighbouring tokens get unrelated-looking bodies.
const PERIOD: usize = 251;

/// Makes and checks the payloads of one run (one size for every message).
#[derive(Debug, Clone)]
pub struct Payloads {
    size: usize,
    pattern: Vec<u8>,
}

impl Payloads {
    /// Payloads of `size` bytes. Sizes under 16 bytes carry only part of the token.
    pub fn new(size: usize) -> Payloads {
        Payloads {
            size,
            pattern: pattern(size.saturating_sub(HEADER_LEN) + PERIOD),
        }
    }

    /// Replaces `out` with the payload for `token`.
    pub fn write(&self, token: u64, out: &mut Vec<u8>) {
        out.clear();
        let header = hex_token(token);
        out.extend_from_slice(&header[..self.size.min(HEADER_LEN)]);
        out.extend_from_slice(self.body(token));
    }

    /// Whether `got` is exactly the payload for `token`.
    pub fn matches(&self, token: u64, got: &[u8]) -> bool {
        let head = self.size.min(HEADER_LEN);
        got.len() == self.size
            && got[..head] == hex_token(token)[..head]
            && got[head..] == *self.body(token)
    }

    fn body(&self, token: u64) -> &[u8] {
        let start = (token % PERIOD as u64) as usize;
        &self.pattern[start..start + self.size.saturating_sub(HEADER_LEN)]
    }
}

/// The token of message `seq` on connection `conn`: unique across the run's connections.
pub fn token(conn: u64, seq: u64) -> u64 {
    (conn << 40) | (seq & ((1 << 40) - 1))
}

fn hex_token(token: u64) -> [u8; HEADER_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; HEADER_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((token >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
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
    fn round_trips_and_is_text() {
        for size in [0, 1, 15, 16, 20, 1024, 16384] {
            let p = Payloads::new(size);
            let mut buf = Vec::new();
            p.write(token(3, 77), &mut buf);
            assert_eq!(buf.len(), size);
            assert!(std::str::from_utf8(&buf).is_ok());
            assert!(p.matches(token(3, 77), &buf), "size {size}");
        }
    }

    #[test]
    fn detects_wrong_order_other_connections_and_corruption() {
        let p = Payloads::new(64);
        let mut buf = Vec::new();
        p.write(token(1, 5), &mut buf);
        assert!(!p.matches(token(1, 6), &buf));
        assert!(!p.matches(token(2, 5), &buf));
        assert!(!p.matches(token(1, 5), &buf[..63]));
        buf[40] ^= 1;
        assert!(!p.matches(token(1, 5), &buf));
        assert_eq!(&hex_token(0xab)[12..], b"00ab");
    }
}
