//! The HTTP header grammar the opening handshake reads, in one place so that every header has
//! the same idea of a list, of whitespace and of quoting:
//!
//! - [`list`] (and [`list_bytes`]): the comma-separated list rule of RFC 9110 section 5.6.1,
//!   used for `Connection`, `Upgrade`, `Sec-WebSocket-Protocol` and
//!   `Sec-WebSocket-Extensions`.
//! - [`is_token`] and [`unquote`]: tokens (section 5.6.2) and quoted strings (section 5.6.4).
//! - [`extension`]: one element of `Sec-WebSocket-Extensions`, a name and its parameters (RFC
//!   6455 section 9.1).
//!
//! Whitespace is OWS everywhere, RFC 9110 section 5.6.3: "OWS = *( SP / HTAB )". Nothing
//! else (no CR or LF, which `httparse` does not let into a value anyway, and no Unicode
//! spaces) is trimmed.
//!
//! What a malformed value does is the caller's choice; this module only says that it is
//! malformed. An unterminated quoted-string swallows the rest of the value, so that no list
//! element or parameter is ever read out of text the grammar could not parse.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

/// A header value, or a part of one, that does not follow the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed header value")
    }
}

impl std::error::Error for Malformed {}

/// Whether `b` is optional whitespace: RFC 9110 section 5.6.3, "OWS = *( SP / HTAB )".
pub fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without the OWS (SP and HTAB) around it.
pub fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// `bytes` without the OWS (SP and HTAB) around it.
pub fn trim_ows_bytes(bytes: &[u8]) -> &[u8] {
    let range = trimmed(bytes, 0..bytes.len());
    &bytes[range]
}

/// An HTTP token (RFC 9110 section 5.6.2), as header names and subprotocols must be:
///
/// ```text
/// token          = 1*tchar
/// tchar          = "!" / "#" / "$" / "%" / "&" / "'" / "*"
///                / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
///                / DIGIT / ALPHA
///                ; any VCHAR, except delimiters
/// ```
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `name: value` can be written as a header field as it is: the name a token, and
/// nothing in the value that would end the field or the head early (RFC 9110 section 5.5:
/// "Field values containing CR, LF, or NUL characters are invalid and dangerous"), so an
/// application's header cannot split a request or a response.
pub fn is_sendable_field(name: &str, value: &str) -> bool {
    is_token(name) && !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// The elements of a comma-separated list, RFC 9110 section 5.6.1: "A construct "#" is
/// defined, similar to "*", for defining comma-delimited lists of elements. ... each
/// separated by a single comma (",") and optional whitespace (OWS, defined in Section
/// 5.6.3)."
///
/// Each element comes without the OWS around it, and empty elements are skipped, as section
/// 5.6.1.2 asks of a recipient: "Empty elements do not contribute to the count of elements
/// present. A recipient MUST parse and ignore a reasonable number of empty list elements
/// ... In other words, a recipient MUST accept lists that satisfy the following syntax:
/// `#element => [ element ] *( OWS "," OWS [ element ] )`". How many there can be is bounded
/// by the size of the request, which the caller bounds.
///
/// A comma inside a quoted-string does not end an element (section 5.6.4: "A string of text
/// is parsed as a single value if it is quoted using double-quote marks"), and a backslash
/// there escapes the next character. A quoted-string that is not closed runs to the end of
/// the value: it and everything after it is one element, which is malformed.
///
/// The elements of several header lines with the same name are those of each line in turn
/// (section 5.3: a recipient may combine them "by appending each subsequent field line value
/// to the combined field value in order, separated by a comma").
///
/// ```
/// use wsloop::proto::header::list;
/// let elements: Vec<_> = list(" chat ,\t, superchat,x; y=\"a,b\" ,").collect();
/// assert_eq!(elements, ["chat", "superchat", "x; y=\"a,b\""]);
/// ```
pub fn list(value: &str) -> impl Iterator<Item = &str> + '_ {
    // Every range starts and ends at the value's ends or next to an ASCII byte, so on char
    // boundaries.
    Split::new(value.as_bytes(), b',').filter_map(move |range| {
        let range = trimmed(value.as_bytes(), range);
        (!range.is_empty()).then(|| &value[range])
    })
}

/// [`list`] over a value that need not be UTF-8 (`httparse` lets any obs-text into a header
/// value), for lists of tokens such as `Connection`.
pub fn list_bytes(value: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    Split::new(value, b',').filter_map(move |range| {
        let range = trimmed(value, range);
        (!range.is_empty()).then(|| &value[range])
    })
}

/// The content of `s`, which must be exactly one quoted-string (RFC 9110 section 5.6.4):
///
/// ```text
/// quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
/// qdtext         = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
/// quoted-pair    = "\" ( HTAB / SP / VCHAR / obs-text )
/// ```
///
/// "Recipients that process the value of a quoted-string MUST handle a quoted-pair as if it
/// were replaced by the octet following the backslash." The result borrows `s` unless there
/// was a quoted-pair. An unterminated string, a character not allowed inside, or anything
/// after the closing quote is [`Malformed`].
///
/// ```
/// use wsloop::proto::header::unquote;
/// assert_eq!(unquote(r#""10""#).as_deref(), Ok("10"));
/// assert_eq!(unquote(r#""a\"b""#).as_deref(), Ok("a\"b"));
/// assert!(unquote(r#""10"#).is_err());
/// ```
pub fn unquote(s: &str) -> Result<Cow<'_, str>, Malformed> {
    let inner = s.strip_prefix('"').ok_or(Malformed)?;
    // The unescaped content, once a quoted-pair made a copy necessary.
    let mut copy: Option<String> = None;
    // Where the text not yet copied starts.
    let mut run = 0;
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if i + 1 == inner.len() => {
                return Ok(match copy {
                    Some(mut copy) => {
                        copy.push_str(&inner[run..i]);
                        Cow::Owned(copy)
                    }
                    None => Cow::Borrowed(&inner[..i]),
                });
            }
            '\\' => {
                let (_, escaped) = chars.next().ok_or(Malformed)?;
                if !(escaped == '\t' || escaped == ' ' || is_vchar_or_obs_text(escaped)) {
                    return Err(Malformed);
                }
                let copy = copy.get_or_insert_with(String::new);
                copy.push_str(&inner[run..i]);
                copy.push(escaped);
                run = i + 1 + escaped.len_utf8();
            }
            // A quote before the end, or a control character.
            '"' => return Err(Malformed),
            c if c == '\t' || c == ' ' || is_vchar_or_obs_text(c) => {}
            _ => return Err(Malformed),
        }
    }
    Err(Malformed)
}

/// VCHAR (%x21-7E) or obs-text (%x80-FF, which in a `str` is any non-ASCII character).
fn is_vchar_or_obs_text(c: char) -> bool {
    c.is_ascii_graphic() || !c.is_ascii()
}

/// One element of `Sec-WebSocket-Extensions` (RFC 6455 section 9.1):
///
/// ```text
/// Sec-WebSocket-Extensions = extension-list
/// extension-list = 1#extension
/// extension = extension-token *( ";" extension-param )
/// extension-token = registered-token
/// registered-token = token
/// extension-param = token [ "=" (token | quoted-string) ]
///     ;When using the quoted-string syntax variant, the value
///     ;after quoted-string unescaping MUST conform to the
///     ;'token' ABNF.
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The extension-token, a token; compare it without case, as tokens are.
    pub name: &'a str,
    /// What follows the first `;`, when there is one.
    params: Option<&'a str>,
}

impl<'a> Extension<'a> {
    /// The parameters in order, each [`Malformed`] when it is not `token [ "=" (token |
    /// quoted-string) ]` with OWS around the parts, or when its value, unquoted, is not a
    /// token. An empty parameter (`ext;` or `ext;;x`) is malformed: the grammar has no empty
    /// ones. A `;` inside a quoted-string does not end a parameter.
    ///
    /// The value comes unquoted, as RFC 7692 section 7.1 needs for its checks: a window size
    /// sent as `"10"` is the decimal integer `10`.
    pub fn params(&self) -> impl Iterator<Item = Result<Param<'a>, Malformed>> + 'a {
        let params = self.params;
        params
            .into_iter()
            .flat_map(|params| Split::new(params.as_bytes(), b';').map(move |r| &params[r]))
            .map(param)
    }
}

/// One extension parameter: a name, a token, and the value unquoted, a token too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name, as it came (tokens compare without case).
    pub name: &'a str,
    /// The value without quotes and escapes; `None` for a parameter with no `=`.
    pub value: Option<Cow<'a, str>>,
}

/// Reads one element of a `Sec-WebSocket-Extensions` list (as [`list`] gives them): its
/// name must be a token; the parameters are read by [`Extension::params`].
///
/// ```
/// use wsloop::proto::header::extension;
/// let ext = extension("permessage-deflate; client_max_window_bits=\"10\"").unwrap();
/// assert_eq!(ext.name, "permessage-deflate");
/// let param = ext.params().next().unwrap().unwrap();
/// assert_eq!((param.name, param.value.as_deref()), ("client_max_window_bits", Some("10")));
/// ```
pub fn extension(element: &str) -> Result<Extension<'_>, Malformed> {
    let first = Split::new(element.as_bytes(), b';')
        .next()
        .unwrap_or(0..element.len());
    let name = trim_ows(&element[first.clone()]);
    if !is_token(name) {
        return Err(Malformed);
    }
    let params = (first.end < element.len()).then(|| &element[first.end + 1..]);
    Ok(Extension { name, params })
}

/// `extension-param = token [ "=" (token | quoted-string) ]`, with OWS around the parts.
fn param(param: &str) -> Result<Param<'_>, Malformed> {
    // A token holds no `=`, so the first one ends the name.
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (trim_ows(name), Some(trim_ows(value))),
        None => (trim_ows(param), None),
    };
    if !is_token(name) {
        return Err(Malformed);
    }
    let value = match value {
        Some(value) if value.starts_with('"') => {
            let value = unquote(value)?;
            // RFC 6455 section 9.1: "the value after quoted-string unescaping MUST conform to
            // the 'token' ABNF."
            if !is_token(&value) {
                return Err(Malformed);
            }
            Some(value)
        }
        Some(value) if is_token(value) => Some(Cow::Borrowed(value)),
        Some(_) => return Err(Malformed),
        None => None,
    };
    Ok(Param { name, value })
}

/// The part of `range` in `bytes` without OWS at either end.
fn trimmed(bytes: &[u8], range: Range<usize>) -> Range<usize> {
    let part = &bytes[range.clone()];
    let start = part.iter().position(|&b| !is_ows(b)).unwrap_or(part.len());
    let end = part
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(start, |e| e + 1);
    range.start + start..range.start + end
}

/// The pieces of a value between the `separator`s that are not inside a quoted-string, as
/// ranges, untrimmed and empty ones included. Inside a quoted-string a backslash escapes the
/// next byte; an unterminated one runs to the end.
struct Split<'a> {
    bytes: &'a [u8],
    /// Where the next piece starts; `None` after the last.
    next: Option<usize>,
    separator: u8,
}

impl<'a> Split<'a> {
    fn new(bytes: &'a [u8], separator: u8) -> Split<'a> {
        Split {
            bytes,
            next: Some(0),
            separator,
        }
    }
}

impl Iterator for Split<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let start = self.next?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in self.bytes[start..].iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if !quoted && b == self.separator {
                self.next = Some(start + i + 1);
                return Some(start..start + i);
            }
        }
        self.next = None;
        Some(start..self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_that_would_split_the_head_is_not_sendable() {
        assert!(is_sendable_field("Authorization", "Bearer a b\tc"));
        assert!(!is_sendable_field("X-A", "v\r\nX-Injected: 1"));
        assert!(!is_sendable_field("X-A", "v\0"));
        assert!(!is_sendable_field("X A", "v"));
        assert!(!is_sendable_field("", "v"));
    }

    fn elements(value: &str) -> Vec<&str> {
        list(value).collect()
    }

    #[test]
    fn empty_elements_are_skipped() {
        assert!(elements("").is_empty());
        assert!(elements(" ,\t, ,").is_empty());
        assert_eq!(elements(",a,,b,"), ["a", "b"]);
        assert_eq!(
            elements("  ,  , permessage-deflate  ,"),
            ["permessage-deflate"]
        );
    }

    #[test]
    fn ows_is_space_and_tab_only() {
        assert_eq!(elements("\ta\t,\t b \t,c"), ["a", "b", "c"]);
        // Inside an element whitespace stays.
        assert_eq!(elements("a b , c\td"), ["a b", "c\td"]);
        // A no-break space is not OWS.
        assert_eq!(elements("chat\u{a0}, x"), ["chat\u{a0}", "x"]);
        assert_eq!(trim_ows(" \t x \t "), "x");
        assert_eq!(trim_ows_bytes(b" \t x\xff \t "), b"x\xff");
        assert_eq!(trim_ows_bytes(b" \t "), b"");
    }

    #[test]
    fn quoted_strings_keep_their_commas() {
        assert_eq!(elements(r#"x; y="a,b", z"#), [r#"x; y="a,b""#, "z"]);
        // An escaped quote does not end the string.
        assert_eq!(elements(r#"x; y="a\",b", z"#), [r#"x; y="a\",b""#, "z"]);
        // A backslash outside a string is an ordinary byte.
        assert_eq!(elements(r#"a\, "b""#), [r#"a\"#, r#""b""#]);
    }

    #[test]
    fn an_unterminated_quote_swallows_the_rest() {
        assert_eq!(elements(r#"a, "b, c"#), ["a", r#""b, c"#]);
        assert_eq!(
            elements(r#"x; y="a, permessage-deflate"#),
            [r#"x; y="a, permessage-deflate"#]
        );
        assert_eq!(elements(r#"a, "b\", c"#), ["a", r#""b\", c"#]);
    }

    #[test]
    fn byte_lists_take_values_that_are_not_utf8() {
        let elements: Vec<&[u8]> = list_bytes(b"keep-alive\xff ,\t,Upgrade\t").collect();
        assert_eq!(elements, [&b"keep-alive\xff"[..], b"Upgrade"]);
        let elements: Vec<&[u8]> = list_bytes(b"\"upgrade, x").collect();
        assert_eq!(elements, [&b"\"upgrade, x"[..]]);
    }

    #[test]
    fn tokens() {
        for good in ["permessage-deflate", "chat", "a", "!#$%&'*+-.^_`|~09azAZ"] {
            assert!(is_token(good), "{good}");
        }
        for bad in [
            "", "a b", "a,b", "a;b", "a=b", "\"a\"", "a\t", "é", "a/b", "(a)",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(unquote(r#""10""#), Ok(Cow::Borrowed("10")));
        assert_eq!(unquote(r#""""#), Ok(Cow::Borrowed("")));
        assert_eq!(unquote(r#""1\0""#), Ok(Cow::Owned("10".into())));
        assert_eq!(unquote(r#""a,b; c""#).as_deref(), Ok("a,b; c"));
        assert_eq!(unquote(r#""\\\"é\é""#).as_deref(), Ok("\\\"éé"));
        assert_eq!(unquote("\"\ta b\"").as_deref(), Ok("\ta b"));
        for bad in [
            "10",
            r#""10"#,
            r#""10"x"#,
            r#""a"b""#,
            r#""\""#,
            r#""\"#,
            "\"",
            "\"a\u{1}\"",
            "\"a\\\u{7f}\"",
        ] {
            assert_eq!(unquote(bad), Err(Malformed), "{bad}");
        }
    }

    /// A parameter's name and unquoted value.
    type Pair<'a> = (&'a str, Option<String>);

    fn params(element: &str) -> Result<(&str, Vec<Pair<'_>>), Malformed> {
        let ext = extension(element)?;
        let params = ext
            .params()
            .map(|p| p.map(|p| (p.name, p.value.map(Cow::into_owned))))
            .collect::<Result<_, _>>()?;
        Ok((ext.name, params))
    }

    #[test]
    fn extension_elements() {
        assert_eq!(
            params("permessage-deflate"),
            Ok(("permessage-deflate", vec![]))
        );
        assert_eq!(
            params("ext; a=1; b=\"x\";c"),
            Ok((
                "ext",
                vec![
                    ("a", Some("1".into())),
                    ("b", Some("x".into())),
                    ("c", None)
                ]
            ))
        );
        // OWS, with tabs, around every part.
        assert_eq!(
            params("\text \t;\t a \t=\t \"1\" \t; B"),
            Ok(("ext", vec![("a", Some("1".into())), ("B", None)]))
        );
        // Escapes are undone before the value is checked.
        assert_eq!(
            params(r#"ext; a="1\0""#),
            Ok(("ext", vec![("a", Some("10".into()))]))
        );
    }

    #[test]
    fn malformed_extension_elements() {
        for bad in [
            "",
            "; a",
            "a b; c",
            "\"ext\"",
            // A quoted `;` does not split the parameter, but unquoted it is no token.
            "ext; a=\"x;y\"",
            "ext; a=\"x,y\"",
            "ext; a=\"1 0\"",
            "ext; a=\"\"",
            "ext; a=\"10",
            "ext; a=\"10\"x",
            "ext;",
            "ext;; a",
            "ext; =9",
            "ext; a=",
            "ext; a=b=c",
            "ext; a b",
            "ext; a=(9)",
            "ext; a=x y",
        ] {
            assert_eq!(params(bad), Err(Malformed), "{bad}");
        }
        // One malformed parameter does not hide the ones after it; callers stop at the first.
        let ext = extension("ext; a=\"x;y\"; b").unwrap();
        let results: Vec<_> = ext.params().map(|p| p.map(|p| p.name)).collect();
        assert_eq!(results, [Err(Malformed), Ok("b")]);
    }
}
