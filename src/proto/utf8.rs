//! UTF-8 validation of text messages and close reasons, whole or incrementally across
//! fragments and partial reads.
//!
//! RFC 6455 section 8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds
//! that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
//! WebSocket Connection_." [`Utf8Stream`] fails as soon as a byte makes the stream invalid,
//! not at the end of the message, so a peer cannot make the server buffer a message that is
//! already known to be bad.

/// The bytes are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

/// Validates a complete text.
pub fn validate(bytes: &[u8]) -> Result<&str, Utf8Error> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| Utf8Error)
}

/// Incremental validator for a text that arrives in pieces.
///
/// Holds back at most three bytes: the start of a code point cut by a piece boundary.
///
/// ```
/// use wsloop::proto::Utf8Stream;
/// let mut stream = Utf8Stream::default();
/// let euro = "€".as_bytes(); // e2 82 ac
/// stream.feed(&euro[..1]).unwrap();
/// stream.feed(&euro[1..]).unwrap();
/// assert!(stream.finish().is_ok());
/// assert!(stream.feed(&[0xff]).is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Stream {
    /// Validates the next piece. Fails on the first invalid sequence; an incomplete sequence at
    /// the end of the piece is kept for the next call.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), Utf8Error> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let want = sequence_len(self.pending[0]);
            let take = (want - have).min(piece.len());
            self.pending[have..have + take].copy_from_slice(&piece[..take]);
            let filled = have + take;
            piece = &piece[take..];
            match simdutf8::compat::from_utf8(&self.pending[..filled]) {
                Ok(_) => self.pending_len = 0,
                // Still a valid prefix of a longer sequence: the piece was used up.
                Err(e) if e.error_len().is_none() => {
                    self.pending_len = filled as u8;
                    return Ok(());
                }
                Err(_) => return Err(Utf8Error),
            }
        }
        if simdutf8::basic::from_utf8(piece).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &piece[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Utf8Error),
        }
    }

    /// Checks that the text did not end inside a code point, and resets for the next text.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }
}

/// The length of the sequence a valid lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every split of the text into two pieces gives the same verdict as validating it whole.
    fn check_all_splits(bytes: &[u8]) {
        let whole = std::str::from_utf8(bytes).is_ok();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                let mut stream = Utf8Stream::default();
                let verdict = stream.feed(&bytes[..a]).is_ok()
                    && stream.feed(&bytes[a..b]).is_ok()
                    && stream.feed(&bytes[b..]).is_ok()
                    && stream.finish().is_ok();
                assert_eq!(verdict, whole, "{bytes:x?} split at {a}, {b}");
            }
        }
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        check_all_splits("κόσμε".as_bytes());
        check_all_splits("a€b𝄞c".as_bytes());
        check_all_splits(&[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ]);
        check_all_splits(&[0xf4, 0x90, 0x80, 0x80]); // above U+10FFFF
        check_all_splits(&[0xc0, 0xaf]); // overlong
        check_all_splits(&[0xe2, 0x82]); // truncated
        check_all_splits(&[0xf0, 0x9d, 0x84]);
    }

    #[test]
    fn fails_fast_in_the_middle_of_a_message() {
        let mut stream = Utf8Stream::default();
        stream.feed("hello".as_bytes()).unwrap();
        // 0xce 0xba is fine; 0xf4 0x90 can never start a valid sequence.
        assert_eq!(stream.feed(&[0xce, 0xba, 0xf4, 0x90]), Err(Utf8Error));
    }

    #[test]
    fn fails_fast_inside_a_held_back_sequence() {
        let mut stream = Utf8Stream::default();
        stream.feed(&[0xe2]).unwrap();
        assert_eq!(stream.feed(&[0x28]), Err(Utf8Error));
    }
}
