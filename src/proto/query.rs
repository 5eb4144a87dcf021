//! Percent-decoding (RFC 3986 section 2.1) and `application/x-www-form-urlencoded` query
//! strings (WHATWG URL Standard, section 5.1), the way browsers' `URLSearchParams` reads them.
//!
//! Everything borrows from the input and allocates only for a piece that needs decoding, at
//! most a few bytes per input byte; the server already bounds the request's length.

use std::borrow::Cow;

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space` (form encoding, query strings).
///
/// An escape that is not `%` and two hex digits (`%zz`, a `%` at the end) is kept as it is, as
/// browsers do. Decoded bytes that are not UTF-8 become U+FFFD. The answer borrows `input`
/// when nothing needed decoding.
///
/// ```
/// use wsloop::proto::query::percent_decode;
/// assert_eq!(percent_decode("a%20b+c", true), "a b c");
/// assert_eq!(percent_decode("a+b", false), "a+b");
/// assert_eq!(percent_decode("100%", true), "100%");
/// assert_eq!(percent_decode("%FF", true), "\u{FFFD}");
/// ```
pub fn percent_decode(input: &str, plus_is_space: bool) -> Cow<'_, str> {
    let bytes = input.as_bytes();
    let decodes_at = |i: usize| match bytes[i] {
        b'+' => plus_is_space,
        b'%' => escape_at(bytes, i).is_some(),
        _ => false,
    };
    let Some(first) = (0..bytes.len()).find(|&i| decodes_at(i)) else {
        return Cow::Borrowed(input);
    };
    // Never longer than the input: an escape is three bytes in, one out.
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match escape_at(bytes, i) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

/// The decoded `name=value` pairs of a query string or form body, in order.
///
/// Pieces between `&` that are empty are skipped; a piece without `=` is a name with an empty
/// value; only the first `=` splits, so `a=b=c` is `("a", "b=c")`. Names and values are
/// decoded with [`percent_decode`], `+` as a space.
///
/// ```
/// use wsloop::proto::query::form_pairs;
/// let pairs: Vec<_> = form_pairs("a=1&&b&c=x+y%21").collect();
/// assert_eq!(pairs, [("a".into(), "1".into()), ("b".into(), "".into()), ("c".into(), "x y!".into())]);
/// ```
pub fn form_pairs(input: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_pairs(input).map(|(name, value)| (percent_decode(name, true), percent_decode(value, true)))
}

/// The decoded value of the first pair whose decoded name is `name`; `None` when there is none.
///
/// Only names are decoded until one matches.
///
/// ```
/// use wsloop::proto::query::form_value;
/// assert_eq!(form_value("room=a&room=b", "room").as_deref(), Some("a"));
/// assert_eq!(form_value("user%20id=7", "user id").as_deref(), Some("7"));
/// assert_eq!(form_value("room=a", "token"), None);
/// ```
pub fn form_value<'a>(input: &'a str, name: &str) -> Option<Cow<'a, str>> {
    raw_pairs(input)
        .find(|(raw_name, _)| percent_decode(raw_name, true) == name)
        .map(|(_, value)| percent_decode(value, true))
}

/// The undecoded pairs, with the splitting rules of [`form_pairs`].
fn raw_pairs(input: &str) -> impl Iterator<Item = (&str, &str)> {
    input
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// The byte of a valid `%XX` escape at `i`.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    let hex = bytes.get(i + 1..i + 3)?;
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(hex[0])? * 16 + digit(hex[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        for input in ["", "room", "a-b_c.d~e", "a+b", "100%", "%zz", "%4"] {
            let decoded = percent_decode(input, false);
            assert_eq!(decoded, input);
            assert!(matches!(decoded, Cow::Borrowed(_)), "{input}");
        }
        assert!(matches!(percent_decode("%zz%", true), Cow::Borrowed(_)));
    }

    #[test]
    fn plus_is_a_space_only_when_asked() {
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a%20b", false), "a b");
        // An escaped plus is a plus, not a space.
        assert_eq!(percent_decode("1%2B1", true), "1+1");
    }

    #[test]
    fn escapes_decode_in_either_case() {
        assert_eq!(percent_decode("%2f%2F", false), "//");
        assert_eq!(percent_decode("caf%C3%A9", false), "café");
        assert_eq!(percent_decode("%00", false), "\0");
    }

    #[test]
    fn invalid_escapes_are_kept() {
        assert_eq!(percent_decode("%zz%20", true), "%zz ");
        assert_eq!(percent_decode("a%20%", true), "a %");
        assert_eq!(percent_decode("a%20%4", true), "a %4");
        assert_eq!(percent_decode("%%41", true), "%A");
        assert_eq!(percent_decode("%+1", true), "% 1");
    }

    #[test]
    fn non_utf8_is_replaced() {
        assert_eq!(percent_decode("a%FFb", false), "a\u{FFFD}b");
        // Truncated UTF-8 sequences, the first bytes of "é" and of "…": one U+FFFD each.
        assert_eq!(percent_decode("%C3", false), "\u{FFFD}");
        assert_eq!(percent_decode("%E2%80x", false), "\u{FFFD}x");
        // Non-ASCII text that needs no decoding stays as it is.
        assert_eq!(percent_decode("é+%20", true), "é  ");
    }

    #[test]
    fn pairs_follow_url_search_params() {
        let pairs: Vec<(Cow<str>, Cow<str>)> =
            form_pairs("&a=1&&b=2&a=3&flag&=v&k=&e=x=y&").collect();
        let expected = [
            ("a", "1"),
            ("b", "2"),
            ("a", "3"),
            ("flag", ""),
            ("", "v"),
            ("k", ""),
            ("e", "x=y"),
        ];
        assert_eq!(pairs.len(), expected.len());
        for ((name, value), (want_name, want_value)) in pairs.iter().zip(expected) {
            assert_eq!((name.as_ref(), value.as_ref()), (want_name, want_value));
            assert!(matches!(
                (name, value),
                (Cow::Borrowed(_), Cow::Borrowed(_))
            ));
        }
        assert_eq!(form_pairs("").count(), 0);
    }

    #[test]
    fn pairs_are_decoded() {
        let pairs: Vec<_> = form_pairs("full+name=Ada%20L&%26=%3D").collect();
        assert_eq!(
            pairs,
            [
                (Cow::from("full name"), Cow::from("Ada L")),
                (Cow::from("&"), Cow::from("="))
            ]
        );
    }

    #[test]
    fn value_of_the_first_matching_name() {
        let query = "a=1&a=2&b+c=3&d%3D=4";
        assert_eq!(form_value(query, "a").as_deref(), Some("1"));
        assert_eq!(form_value(query, "b c").as_deref(), Some("3"));
        assert_eq!(form_value(query, "b+c"), None);
        assert_eq!(form_value(query, "d=").as_deref(), Some("4"));
        assert_eq!(form_value(query, "missing"), None);
        assert_eq!(form_value("flag", "flag").as_deref(), Some(""));
    }
}
