//! The broadcast message stamp: who sent a message, which one it was and when.
//!
//! Binary messages start with 16 bytes:
//!
//! | bytes  | field                                                          |
//! |--------|----------------------------------------------------------------|
//! | 0..8   | send time, nanoseconds since the Unix epoch, big-endian u64    |
//! | 8..12  | publisher id (the publishing connection's id), big-endian u32  |
//! | 12..16 | sequence number of the message from that publisher, big-endian |
//!
//! Text messages carry the same 16 bytes as 32 lowercase hex digits. The rest of the message
//! (up to `--size`) is the fixed printable pattern of [`crate::payload::pattern`] from an
//! offset that depends on the sequence number, so every delivery is checked whole.
//!
//! The send time comes from a monotonic clock anchored once to the wall clock
//! ([`Clock`]), so it never jumps within a run and generators on the same machine share the
//! epoch: a subscriber in another process can compute the delivery latency too. Agents on
//! other machines read their controller's time instead (their clock shifted by its measured
//! offset), so that a message published on one and delivered on another is timed too.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::payload;

/// Length of the binary stamp.
pub const BINARY_LEN: usize = 16;
/// Length of the text stamp.
pub const TEXT_LEN: usize = 32;
const PERIOD: usize = 251;

/// A decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sent_ns: u64,
    pub publisher: u32,
    pub seq: u32,
}

/// Nanoseconds since the Unix epoch that advance with [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_unix_ns: u64,
}

impl Clock {
    /// Reads the wall clock once.
    pub fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Clock {
            anchor: Instant::now(),
            anchor_unix_ns: unix,
        }
    }

    /// `at` as nanoseconds since the Unix epoch.
    pub fn unix_ns(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.anchor).as_nanos() as u64;
        self.anchor_unix_ns + since
    }

    /// The same clock `offset_ns` behind: an agent whose clock is `offset_ns` ahead of its
    /// controller's reads the controller's time through it, so that the shared start time
    /// and broadcast stamps mean the same on every machine of a run.
    pub fn shifted_back(self, offset_ns: i64) -> Clock {
        Clock {
            anchor: self.anchor,
            anchor_unix_ns: self
                .anchor_unix_ns
                .saturating_add_signed(offset_ns.saturating_neg()),
        }
    }

    /// The instant this clock reads `unix_ns` (its anchor, for times before it).
    pub fn instant(&self, unix_ns: u64) -> Instant {
        self.anchor + Duration::from_nanos(unix_ns.saturating_sub(self.anchor_unix_ns))
    }
}

/// Writes and checks stamped messages of one size.
#[derive(Debug, Clone)]
pub struct Stamper {
    size: usize,
    text: bool,
    pattern: Vec<u8>,
}

impl Stamper {
    /// Messages of `size` bytes, text or binary; `size` must hold the stamp.
    pub fn new(size: usize, text: bool) -> Result<Stamper, String> {
        let min = Self::min_size(text);
        if size < min {
            return Err(format!(
                "broadcast messages need at least {min} bytes for the stamp (--size)"
            ));
        }
        Ok(Stamper {
            size,
            text,
            pattern: payload::pattern(size - min + PERIOD),
        })
    }

    /// The smallest message that holds a stamp.
    pub fn min_size(text: bool) -> usize {
        if text {
            TEXT_LEN
        } else {
            BINARY_LEN
        }
    }

    /// Replaces `out` with the message carrying `stamp`.
    pub fn write(&self, stamp: Stamp, out: &mut Vec<u8>) {
        out.clear();
        let raw = raw(stamp);
        if self.text {
            for byte in raw {
                out.extend_from_slice(&hex_pair(byte));
            }
        } else {
            out.extend_from_slice(&raw);
        }
        out.extend_from_slice(self.body(stamp.seq));
    }

    /// Decodes a delivered message; `None` unless it is a whole, intact stamped message.
    pub fn read(&self, message: &[u8]) -> Option<Stamp> {
        if message.len() != self.size {
            return None;
        }
        let min = Self::min_size(self.text);
        let mut raw = [0u8; BINARY_LEN];
        if self.text {
            for (i, byte) in raw.iter_mut().enumerate() {
                *byte = unhex_pair(message[2 * i], message[2 * i + 1])?;
            }
        } else {
            raw.copy_from_slice(&message[..BINARY_LEN]);
        }
        let field = |range: std::ops::Range<usize>| {
            raw[range]
                .iter()
                .fold(0u64, |acc, &b| acc << 8 | u64::from(b))
        };
        let stamp = Stamp {
            sent_ns: field(0..8),
            publisher: field(8..12) as u32,
            seq: field(12..16) as u32,
        };
        (message[min..] == *self.body(stamp.seq)).then_some(stamp)
    }

    fn body(&self, seq: u32) -> &[u8] {
        let start = seq as usize % PERIOD;
        &self.pattern[start..start + self.size - Self::min_size(self.text)]
    }
}

fn raw(stamp: Stamp) -> [u8; BINARY_LEN] {
    let mut raw = [0u8; BINARY_LEN];
    raw[..8].copy_from_slice(&stamp.sent_ns.to_be_bytes());
    raw[8..12].copy_from_slice(&stamp.publisher.to_be_bytes());
    raw[12..].copy_from_slice(&stamp.seq.to_be_bytes());
    raw
}

fn hex_pair(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0xf)],
    ]
}

fn unhex_pair(hi: u8, lo: u8) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(hi)? << 4 | digit(lo)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_in_both_forms() {
        let stamp = Stamp {
            sent_ns: 1_700_000_000_123_456_789,
            publisher: 7,
            seq: 123_456,
        };
        for text in [false, true] {
            let stamper = Stamper::new(64, text).unwrap();
            let mut buf = Vec::new();
            stamper.write(stamp, &mut buf);
            assert_eq!(buf.len(), 64);
            assert!(std::str::from_utf8(&buf[Stamper::min_size(text)..]).is_ok());
            assert_eq!(stamper.read(&buf), Some(stamp));
            buf[63] ^= 1;
            assert_eq!(stamper.read(&buf), None);
        }
        let text = Stamper::new(32, true).unwrap();
        let mut buf = Vec::new();
        text.write(stamp, &mut buf);
        assert_eq!(&buf[..16], b"17979cfe3d85cd15");
    }

    #[test]
    fn refuses_sizes_without_room_for_the_stamp() {
        assert!(Stamper::new(15, false).is_err());
        assert!(Stamper::new(31, true).is_err());
    }

    #[test]
    fn clock_is_anchored_to_the_epoch() {
        let clock = Clock::new();
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        assert_eq!(clock.unix_ns(later) - clock.unix_ns(now), 5_000_000);
        assert!(clock.unix_ns(now) > 1_600_000_000 * 1_000_000_000);
        assert_eq!(clock.instant(clock.unix_ns(later)), later);
        let behind = clock.shifted_back(2_000);
        assert_eq!(clock.unix_ns(later) - behind.unix_ns(later), 2_000);
        assert_eq!(behind.instant(behind.unix_ns(later)), later);
        let ahead = clock.shifted_back(-2_000);
        assert_eq!(ahead.unix_ns(later) - clock.unix_ns(later), 2_000);
    }
}
