//! WebSocket URLs (RFC 6455 section 3): what a client is told to connect to, read into the
//! pieces it needs: TCP host and port, TLS or not, the TLS server name, the `Host` header and
//! the request target.
//!
//! RFC 6455 section 3 defines them on RFC 3986's grammar:
//!
//! ```text
//! ws-URI = "ws:" "//" host [ ":" port ] path [ "?" query ]
//! wss-URI = "wss:" "//" host [ ":" port ] path [ "?" query ]
//! ```
//!
//! "The port component is OPTIONAL; the default for "ws" is port 80, while the default for
//! "wss" is port 443." "The resource name (also known as /resource name/ in Section 4.1) can be
//! constructed by concatenating the following: "/" if the path component is empty; the path
//! component; "?" if the query component is non-empty; the query component." "Fragment
//! identifiers are meaningless in the context of WebSocket URIs and MUST NOT be used on these
//! URIs."
//!
//! Where the RFC leaves room, [`WsUrl::parse`] does what browsers' `new WebSocket(url)` does
//! (WHATWG URL Standard and WebSockets Standard), and refuses where a browser would quietly
//! repair something a command line or configuration file should rather say plainly:
//!
//! - Schemes: `ws` and `wss`, in any case; `http` and `https` are read as `ws` and `wss`, as
//!   current browsers do. Any other scheme is refused.
//! - A fragment (`#...`) is refused, as browsers throw a `SyntaxError` on one.
//! - Credentials (`user:pass@host`) are refused: a WebSocket request carries none from the URL.
//! - Hosts are lowercased (browsers do; names are case-insensitive). A host ending in a number
//!   must be an IPv4 address in four decimal parts (browsers also read `127.1` or `0x7f.1`;
//!   refused here rather than read differently from them). IPv6 goes in brackets and is
//!   kept in its canonical form (`[0:0::1]` is `[::1]`). Non-ASCII names are refused: write
//!   their punycode (`xn--`) form; there are no IDNA tables here.
//! - The port is 1 to 65535; browsers also take port 0, which nothing can connect to. An empty
//!   port (`ws://host:/`) is the default port, as RFC 3986 and browsers have it.
//! - Whitespace and control characters anywhere are refused (browsers strip them at the ends
//!   and drop tabs and newlines inside). So is `\`, which browsers read as `/` before the query.
//! - The path and query are kept as written except that non-ASCII characters and the few ASCII
//!   ones browsers percent-encode (`"` `<` `>` `^` `` ` `` `{` `}` in the path, `"` `<` `>` `'`
//!   in the query) are percent-encoded as UTF-8. Dot segments (`/a/../b`) are not removed.
//!
//! The input is bounded to [`MAX_URL_LEN`] bytes before anything else is looked at.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::fmt;
use std::str::FromStr;

/// The longest URL [`WsUrl::parse`] reads, in bytes: longer ones are refused before parsing.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// A parsed `ws://` or `wss://` URL, owned, so a client can keep it for reconnecting.
///
/// Two URLs are equal when they name the same resource the same way: scheme (after the
/// `http`/`https` mapping), lowercased host, port (a default port written or not is the same)
/// and resource.
///
/// ```
/// use wsloop::proto::url::WsUrl;
/// let url = WsUrl::parse("wss://Example.com/chat?room=1").unwrap();
/// assert!(url.secure());
/// assert_eq!((url.host(), url.port()), ("example.com", 443));
/// assert_eq!(url.host_header(), "example.com");
/// assert_eq!(url.resource(), "/chat?room=1");
/// assert_eq!(url.server_name(), Some("example.com"));
/// assert_eq!(url.to_string(), "wss://example.com/chat?room=1");
///
/// let url = WsUrl::parse("ws://[::1]:9001").unwrap();
/// assert_eq!((url.host(), url.port()), ("::1", 9001));
/// assert_eq!(url.host_header(), "[::1]:9001");
/// assert_eq!((url.resource(), url.server_name()), ("/", None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WsUrl {
    secure: bool,
    /// Lowercased; an IPv6 address without its brackets.
    host: String,
    /// The host when it is an IP address literal.
    ip: Option<IpAddr>,
    port: u16,
    /// `host`, bracketed for IPv6, and `:port` when not the scheme's default.
    host_header: String,
    /// Path and query, starting with `/`.
    resource: String,
}

impl WsUrl {
    /// Parses `input` as a WebSocket URL; see the [module documentation](self) for the rules.
    pub fn parse(input: &str) -> Result<WsUrl, UrlError> {
        if input.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { len: input.len() });
        }
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if let Some((at, _)) = input
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(UrlError::ControlOrWhitespace { at });
        }
        let colon = input.find(':').ok_or(UrlError::MissingScheme)?;
        let scheme = &input[..colon];
        if !is_scheme(scheme) {
            return Err(UrlError::MissingScheme);
        }
        let secure = if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https") {
            true
        } else {
            return Err(UrlError::UnsupportedScheme(scheme.to_string()));
        };
        if let Some(at) = input.find('#') {
            return Err(UrlError::Fragment { at });
        }
        let rest = input[colon + 1..]
            .strip_prefix("//")
            .ok_or(UrlError::MissingHost)?;
        let start = colon + 3;
        let end = rest.find(['/', '?', '\\']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some(i) = authority.find('@') {
            return Err(UrlError::Userinfo { at: start + i });
        }

        let default_port = if secure { 443 } else { 80 };
        let (host, ip, port_text) = parse_host(authority, start)?;
        let port = match port_text {
            None | Some("") => default_port,
            Some(text) => parse_port(text).ok_or(UrlError::InvalidPort)?,
        };

        let mut host_header = String::with_capacity(host.len() + 8);
        match ip {
            Some(IpAddr::V6(_)) => {
                host_header.push('[');
                host_header.push_str(&host);
                host_header.push(']');
            }
            _ => host_header.push_str(&host),
        }
        if port != default_port {
            host_header.push(':');
            host_header.push_str(&port.to_string());
        }

        let resource = resource(tail, start + end)?;
        Ok(WsUrl {
            secure,
            host,
            ip,
            port,
            host_header,
            resource,
        })
    }

    /// `wss`: TLS under the WebSocket.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// `"ws"` or `"wss"` (an `http` or `https` URL was mapped to these).
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "wss"
        } else {
            "ws"
        }
    }

    /// The host to connect to, lowercased: a name, an IPv4 address, or an IPv6 address without
    /// brackets (`::1`), as `(host(), port())` can be resolved.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host when it is an IP address literal: nothing to resolve, and no SNI.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The TCP port: the URL's, or 80 for `ws` and 443 for `wss`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Host` header's value (RFC 6455 section 4.1): the host, bracketed when IPv6, with
    /// `:port` only when the port is not the scheme's default, as browsers send it.
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// The resource name (RFC 6455 section 3): the path (`/` when empty), then `?` and the
    /// query if any. The request target of the opening handshake's `GET`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The TLS server name to send as SNI and check the certificate for: the host name, or
    /// `None` when the host is an IP address (RFC 6066 section 3 sends no SNI for those; the
    /// certificate is then checked against its IP addresses).
    pub fn server_name(&self) -> Option<&str> {
        match self.ip {
            Some(_) => None,
            None => Some(&self.host),
        }
    }
}

/// The URL as it would be sent: `scheme://host_header resource`, which parses back to the
/// same URL.
impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header,
            self.resource
        )
    }
}

impl FromStr for WsUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<WsUrl, UrlError> {
        WsUrl::parse(s)
    }
}

impl TryFrom<&str> for WsUrl {
    type Error = UrlError;

    fn try_from(s: &str) -> Result<WsUrl, UrlError> {
        WsUrl::parse(s)
    }
}

/// Why a URL is not a usable WebSocket URL. Positions (`at`) are byte offsets into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`] bytes.
    TooLong { len: usize },
    /// The empty string.
    Empty,
    /// A whitespace or control character (browsers strip or drop them; refused here).
    ControlOrWhitespace { at: usize },
    /// No `scheme:` at the start.
    MissingScheme,
    /// A scheme other than `ws`, `wss`, `http` or `https`, as written.
    UnsupportedScheme(String),
    /// No `//` after the scheme, or nothing between it and the path.
    MissingHost,
    /// Credentials (`user@` or `user:pass@`) before the host.
    Userinfo { at: usize },
    /// A host that is not a name, an IPv4 address or a bracketed IPv6 address; the reason.
    InvalidHost(&'static str),
    /// A character that is not allowed where it is (in the host, or `\` in the path).
    InvalidCharacter { at: usize, ch: char },
    /// A port that is not a number from 1 to 65535.
    InvalidPort,
    /// A `#fragment`, which RFC 6455 says MUST NOT be used on WebSocket URIs.
    Fragment { at: usize },
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::TooLong { len } => write!(
                f,
                "the URL is {len} bytes long, more than the {MAX_URL_LEN} allowed"
            ),
            UrlError::Empty => f.write_str("the URL is empty"),
            UrlError::ControlOrWhitespace { at } => write!(
                f,
                "whitespace or a control character at byte {at} (percent-encode it, as %20 for a space)"
            ),
            UrlError::MissingScheme => {
                f.write_str("no scheme: a WebSocket URL starts with ws:// or wss://")
            }
            UrlError::UnsupportedScheme(scheme) => write!(
                f,
                "unsupported scheme {scheme:?}: a WebSocket URL starts with ws:// or wss://"
            ),
            UrlError::MissingHost => {
                f.write_str("no host: a WebSocket URL is ws://host[:port][/path][?query]")
            }
            UrlError::Userinfo { at } => write!(
                f,
                "credentials before the host (the '@' at byte {at}) are not allowed in a WebSocket URL"
            ),
            UrlError::InvalidHost(reason) => write!(f, "invalid host: {reason}"),
            UrlError::InvalidCharacter { at, ch } => {
                write!(f, "character {ch:?} at byte {at} is not allowed there")
            }
            UrlError::InvalidPort => f.write_str("the port must be a number from 1 to 65535"),
            UrlError::Fragment { at } => write!(
                f,
                "a fragment (the '#' at byte {at}) is not allowed in a WebSocket URL (RFC 6455 section 3)"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 section 3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// RFC 3986's `reg-name` characters other than `%`: unreserved and sub-delims.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// Splits an authority (no userinfo) into the lowercased host, its IP address when it is one,
/// and the port text after `:` if any. `start` is the authority's offset in the input.
fn parse_host(
    authority: &str,
    start: usize,
) -> Result<(String, Option<IpAddr>, Option<&str>), UrlError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let close = inner.find(']').ok_or(UrlError::InvalidHost(
            "an IPv6 address without its closing ']'",
        ))?;
        let ip: Ipv6Addr = inner[..close]
            .parse()
            .map_err(|_| UrlError::InvalidHost("not an IPv6 address between '[' and ']'"))?;
        let after = &inner[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => {
                return Err(UrlError::InvalidHost(
                    "characters after the IPv6 address's ']'",
                ))
            }
        };
        return Ok((ip.to_string(), Some(IpAddr::V6(ip)), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => {
            return Err(UrlError::InvalidHost(
                "an IPv6 address must be in brackets, like ws://[::1]:9001/",
            ))
        }
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    for (i, ch) in host.char_indices() {
        if !ch.is_ascii() {
            return Err(UrlError::InvalidHost(
                "a non-ASCII name: write it in its ASCII (punycode, xn--) form",
            ));
        }
        if matches!(ch, '[' | ']') {
            return Err(UrlError::InvalidHost(
                "an IPv6 address must be the whole host, in brackets",
            ));
        }
        if !is_name_byte(ch as u8) {
            return Err(UrlError::InvalidCharacter { at: start + i, ch });
        }
    }
    let host = host.to_ascii_lowercase();
    if ends_in_number(&host) {
        let ip: Ipv4Addr = host
            .strip_suffix('.')
            .unwrap_or(&host)
            .parse()
            .map_err(|_| {
                UrlError::InvalidHost(
                    "a host ending in a number must be an IPv4 address in four decimal parts, \
                     like 127.0.0.1",
                )
            })?;
        return Ok((ip.to_string(), Some(IpAddr::V4(ip)), port));
    }
    Ok((host, None, port))
}

/// Whether the last label (one trailing dot aside) is a number, decimal or `0x` hex: the
/// WHATWG URL Standard's "ends in a number", which makes a host an IPv4 address.
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    last.strip_prefix("0x")
        .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Decimal digits, leading zeros allowed, 1 to 65535.
fn parse_port(text: &str) -> Option<u16> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    match digits.parse::<u32>() {
        Ok(port @ 1..=65535) => Some(port as u16),
        _ => None,
    }
}

/// The resource name from what follows the authority (empty, or starting with `/`, `?` or
/// `\`), at offset `start` in the input: `/` for an empty path, and the characters browsers
/// percent-encode encoded.
fn resource(tail: &str, start: usize) -> Result<String, UrlError> {
    let (path, query) = match tail.find('?') {
        Some(i) => (&tail[..i], Some(&tail[i + 1..])),
        None => (tail, None),
    };
    if let Some(i) = path.find('\\') {
        return Err(UrlError::InvalidCharacter {
            at: start + i,
            ch: '\\',
        });
    }
    let mut out = String::with_capacity(tail.len() + 1);
    if path.is_empty() {
        out.push('/');
    }
    encode_into(&mut out, path, b"\"<>^`{}");
    if let Some(query) = query {
        out.push('?');
        encode_into(&mut out, query, b"\"<>'");
    }
    Ok(out)
}

/// Appends `text` with its non-ASCII bytes and the ASCII bytes in `set` percent-encoded.
fn encode_into(out: &mut String, text: &str, set: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in text.as_bytes() {
        if b.is_ascii() && !set.contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        WsUrl::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> UrlError {
        WsUrl::parse(s).expect_err(s)
    }

    #[test]
    fn default_ports() {
        let u = url("ws://example.com/chat");
        assert!(!u.secure());
        assert_eq!((u.scheme(), u.host(), u.port()), ("ws", "example.com", 80));
        assert_eq!(u.host_header(), "example.com");
        assert_eq!(u.resource(), "/chat");
        assert_eq!(u.server_name(), Some("example.com"));
        assert_eq!(u.ip(), None);
        let u = url("wss://example.com/chat");
        assert!(u.secure());
        assert_eq!((u.scheme(), u.port()), ("wss", 443));
        assert_eq!(u.host_header(), "example.com");
    }

    #[test]
    fn explicit_ports() {
        let u = url("ws://localhost:9001/");
        assert_eq!((u.port(), u.host_header()), (9001, "localhost:9001"));
        let u = url("wss://localhost:80/");
        assert_eq!((u.port(), u.host_header()), (80, "localhost:80"));
        // The scheme's own default port is left out of the Host header, as browsers do.
        let u = url("ws://localhost:80/");
        assert_eq!((u.port(), u.host_header()), (80, "localhost"));
        assert_eq!(u, url("ws://localhost/"));
        let u = url("wss://localhost:443");
        assert_eq!((u.port(), u.host_header()), (443, "localhost"));
        assert_eq!(url("ws://h:65535").port(), 65535);
        assert_eq!(url("ws://h:00009001").port(), 9001);
        // An empty port is the default one (RFC 3986 section 3.2.3, and browsers).
        assert_eq!(url("ws://h:/x").port(), 80);
        assert_eq!(url("ws://h:/x").host_header(), "h");
    }

    #[test]
    fn ip_addresses() {
        let u = url("ws://[::1]:9001");
        assert_eq!((u.host(), u.port()), ("::1", 9001));
        assert_eq!(u.host_header(), "[::1]:9001");
        assert_eq!(u.resource(), "/");
        assert_eq!(u.ip(), Some("::1".parse().unwrap()));
        assert_eq!(u.server_name(), None);
        assert_eq!(u.to_string(), "ws://[::1]:9001/");
        let u = url("wss://[0:0:0:0:0:0:0:1]/x");
        assert_eq!((u.host(), u.host_header(), u.port()), ("::1", "[::1]", 443));
        let u = url("ws://[FE80::A]/");
        assert_eq!(u.host(), "fe80::a");
        let u = url("ws://127.0.0.1:9001/");
        assert_eq!(u.ip(), Some("127.0.0.1".parse().unwrap()));
        assert_eq!((u.server_name(), u.host_header()), (None, "127.0.0.1:9001"));
        // A trailing dot on an IPv4 address is dropped, as browsers do.
        assert_eq!(url("ws://127.0.0.1./").host(), "127.0.0.1");
        // Names with digits are still names.
        assert_eq!(url("ws://1.example/").server_name(), Some("1.example"));
        assert_eq!(url("ws://a1/").ip(), None);
    }

    #[test]
    fn query_kept_and_empty_path_is_slash() {
        assert_eq!(url("ws://h").resource(), "/");
        assert_eq!(url("ws://h/").resource(), "/");
        assert_eq!(url("ws://h?x=1&y=2").resource(), "/?x=1&y=2");
        assert_eq!(url("ws://h/a/b?x=1").resource(), "/a/b?x=1");
        assert_eq!(url("ws://h/a?").resource(), "/a?");
        assert_eq!(url("ws://h/a?b?c/d").resource(), "/a?b?c/d");
        assert_eq!(url("ws://h:9001?q").host_header(), "h:9001");
        // Percent escapes are kept as written; no dot-segment removal.
        assert_eq!(url("ws://h/a%20b/../c").resource(), "/a%20b/../c");
    }

    #[test]
    fn percent_encodes_what_browsers_do() {
        assert_eq!(url("ws://h/caf\u{e9}").resource(), "/caf%C3%A9");
        assert_eq!(
            url("ws://h/a\"<>^`{}").resource(),
            "/a%22%3C%3E%5E%60%7B%7D"
        );
        assert_eq!(url("ws://h/?a='\"{}^").resource(), "/?a=%27%22{}^");
        assert_eq!(url("ws://h/?\u{e9}").resource(), "/?%C3%A9");
        // A backslash in the query is an ordinary character.
        assert_eq!(url("ws://h/?a\\b").resource(), "/?a\\b");
    }

    #[test]
    fn scheme_and_host_case() {
        let u = url("WS://LocalHost:9001/Path");
        assert_eq!(u.scheme(), "ws");
        assert!(u.host().eq_ignore_ascii_case("localhost"));
        assert_eq!(u.host(), "localhost");
        // The path is case-sensitive.
        assert_eq!(u.resource(), "/Path");
        assert_eq!(u.to_string(), "ws://localhost:9001/Path");
        assert!(url("WsS://h").secure());
    }

    #[test]
    fn http_schemes_map_like_browsers() {
        let u = url("http://h/x");
        assert_eq!((u.scheme(), u.port()), ("ws", 80));
        assert_eq!(u, url("ws://h/x"));
        let u = url("HTTPS://h:8443/x");
        assert_eq!(
            (u.scheme(), u.port(), u.host_header()),
            ("wss", 8443, "h:8443")
        );
        assert_eq!(url("https://h").port(), 443);
    }

    #[test]
    fn parse_display_round_trip() {
        for s in [
            "ws://h/",
            "wss://[::1]:9443/a?b",
            "ws://127.0.0.1:9001/chat/room?x=1",
            "wss://example.com/",
        ] {
            assert_eq!(url(s).to_string(), s);
            assert_eq!(s.parse::<WsUrl>().unwrap(), url(s));
            assert_eq!(WsUrl::try_from(s).unwrap(), url(s));
        }
    }

    #[test]
    fn every_error() {
        let long = format!("ws://h/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(err(&long), UrlError::TooLong { len: long.len() });
        assert!(WsUrl::parse(&long[..MAX_URL_LEN]).is_ok());
        assert_eq!(err(""), UrlError::Empty);
        assert_eq!(err(" ws://h/"), UrlError::ControlOrWhitespace { at: 0 });
        assert_eq!(err("ws://h/a b"), UrlError::ControlOrWhitespace { at: 8 });
        assert_eq!(err("ws://h/\t"), UrlError::ControlOrWhitespace { at: 7 });
        assert_eq!(err("ws://h/\n"), UrlError::ControlOrWhitespace { at: 7 });
        assert_eq!(err("ws://h/\0"), UrlError::ControlOrWhitespace { at: 7 });
        assert_eq!(
            err("ws://h/\u{7f}"),
            UrlError::ControlOrWhitespace { at: 7 }
        );
        assert_eq!(
            err("ws://h/\u{a0}"),
            UrlError::ControlOrWhitespace { at: 7 }
        );
        assert_eq!(err("localhost"), UrlError::MissingScheme);
        assert_eq!(err("127.0.0.1:9001"), UrlError::MissingScheme);
        assert_eq!(err("//h/"), UrlError::MissingScheme);
        assert_eq!(err(":ws//h/"), UrlError::MissingScheme);
        assert_eq!(
            err("localhost:9001"),
            UrlError::UnsupportedScheme("localhost".into())
        );
        assert_eq!(err("wsx://h/"), UrlError::UnsupportedScheme("wsx".into()));
        assert_eq!(err("ftp://h/"), UrlError::UnsupportedScheme("ftp".into()));
        assert_eq!(err("ws:h"), UrlError::MissingHost);
        assert_eq!(err("ws:/h"), UrlError::MissingHost);
        assert_eq!(err("ws://"), UrlError::MissingHost);
        assert_eq!(err("wss://"), UrlError::MissingHost);
        assert_eq!(err("ws:///nohost"), UrlError::MissingHost);
        assert_eq!(err("ws://:9001/"), UrlError::MissingHost);
        assert_eq!(err("ws://?q"), UrlError::MissingHost);
        assert_eq!(err("ws://u@h/"), UrlError::Userinfo { at: 6 });
        assert_eq!(err("ws://u:p@h:9001/"), UrlError::Userinfo { at: 8 });
        assert_eq!(err("ws://@h/"), UrlError::Userinfo { at: 5 });
        assert_eq!(err("ws://h:0/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h:65536/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h:99999999999999999999/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h:x/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h:-1/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h:+80/"), UrlError::InvalidPort);
        assert_eq!(err("ws://[::1]:0/"), UrlError::InvalidPort);
        assert_eq!(err("ws://h/#x"), UrlError::Fragment { at: 7 });
        assert_eq!(err("ws://h#"), UrlError::Fragment { at: 6 });
        assert_eq!(err("ws://h/?q#x"), UrlError::Fragment { at: 9 });
        assert!(matches!(err("ws://::1/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://[::1/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://[x]/"), UrlError::InvalidHost(_)));
        assert!(matches!(
            err("ws://[::1%25eth0]/"),
            UrlError::InvalidHost(_)
        ));
        assert!(matches!(err("ws://[::1]x/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://a[::1]/"), UrlError::InvalidHost(_)));
        assert!(matches!(
            err("ws://b\u{fc}cher.de/"),
            UrlError::InvalidHost(_)
        ));
        assert!(matches!(err("ws://127.1/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://0x7f.0.0.1/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://127.0.0.01/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://256.0.0.1/"), UrlError::InvalidHost(_)));
        assert!(matches!(err("ws://a.0x1/"), UrlError::InvalidHost(_)));
        assert_eq!(
            err("ws://h%41/"),
            UrlError::InvalidCharacter { at: 6, ch: '%' }
        );
        assert_eq!(
            err("ws://a<b/"),
            UrlError::InvalidCharacter { at: 6, ch: '<' }
        );
        assert_eq!(
            err("ws://h\\x"),
            UrlError::InvalidCharacter { at: 6, ch: '\\' }
        );
        assert_eq!(
            err("ws://h/a\\b?c"),
            UrlError::InvalidCharacter { at: 8, ch: '\\' }
        );
    }

    #[test]
    fn errors_display() {
        for s in [
            "", " ", "h", "x://h", "ws://", "ws://u@h", "ws://::1", "ws://a<", "ws://h:0",
            "ws://h#",
        ] {
            let text = err(s).to_string();
            assert!(!text.is_empty() && !text.ends_with('.'), "{s:?}: {text}");
        }
        assert_eq!(
            err("ws://h:0").to_string(),
            "the port must be a number from 1 to 65535"
        );
        assert!(err("ws://h/#x").to_string().contains("fragment"));
        assert!(err("ws://u@h").to_string().contains("credentials"));
    }
}
