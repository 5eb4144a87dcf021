//! Close codes and close-frame payloads (RFC 6455 sections 5.5.1 and 7.4).

use std::fmt;

use super::error::ProtocolError;
use super::utf8;

/// A close status code (RFC 6455 section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Never sent: stands for "no status code was present" in the close event.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Never sent: stands for "the connection dropped without a close frame" in the close event.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// Whether this code may appear in a close frame on the wire.
    ///
    /// Section 7.4.1 defines 1000-1003 and 1007-1011 and reserves 1004, 1005, 1006 and 1015
    /// ("MUST NOT be set as a status code in a Close control frame"); IANA has since
    /// registered 1012-1014. Section 7.4.2: 3000-3999 are for libraries and frameworks,
    /// 4000-4999 for private use; everything else is unassigned or reserved.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Splits and checks a received close frame's payload.
///
/// Section 5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
/// unsigned integer (in network byte order) representing a status code ... Following the
/// 2-byte integer, the body MAY contain UTF-8-encoded data". An empty body means no code.
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), ProtocolError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::CloseFrameTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason = utf8::validate(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok((Some(code), reason))
        }
    }
}

/// Writes a close payload (code and reason, the reason cut at a character boundary to fit the
/// 125-byte control-frame limit) into `out` and returns its length.
pub fn encode_close_payload(code: CloseCode, reason: &str, out: &mut [u8; 125]) -> usize {
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_match_autobahn_section_7() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn parses_payloads() {
        assert_eq!(parse_close_payload(&[]), Ok((None, "")));
        assert_eq!(
            parse_close_payload(&[3]),
            Err(ProtocolError::CloseFrameTooShort)
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, b'o', b'k']),
            Ok((Some(CloseCode::NORMAL), "ok"))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_payload(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn encoding_cuts_reason_at_char_boundary() {
        let reason = "é".repeat(100);
        let mut out = [0u8; 125];
        let n = encode_close_payload(CloseCode::GOING_AWAY, &reason, &mut out);
        assert!(n <= 125);
        let (code, text) = parse_close_payload(&out[..n]).unwrap();
        assert_eq!(code, Some(CloseCode::GOING_AWAY));
        assert_eq!(text.len(), 122);
    }
}
