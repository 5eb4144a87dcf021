//! The opening handshake (RFC 6455 section 4): the server reading a client's request and
//! answering it, and the client side of the same exchange for the load generator and tests.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::{header, query, Status};

pub use super::header::is_token;

/// The most request headers the server parses; more is answered with 431.
pub const MAX_HEADERS: usize = 64;

/// "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", appended to the key before hashing (section 1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
///
/// ```
/// use wsloop::proto::accept_key;
/// // The example of RFC 6455 section 1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// Why a request cannot be upgraded, with the HTTP status that says so.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not HTTP/1.x at all, or a syntax error: 400.
    Malformed,
    /// More than [`MAX_HEADERS`] headers, or more bytes than the handshake cap: 431.
    TooLarge,
    /// A method other than GET: 405.
    MethodNotAllowed,
    /// An upgrade over HTTP/1.0: 400 (section 4.1: "the HTTP version MUST be at least 1.1").
    OldHttpVersion,
    /// No Host header: 400.
    MissingHost,
    /// `Upgrade: websocket` without `upgrade` in `Connection`: 400.
    MissingConnectionUpgrade,
    /// A `Sec-WebSocket-Version` other than 13: 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// A `Sec-WebSocket-Key` missing or not 16 bytes in base64: 400.
    BadKey,
}

impl HandshakeError {
    /// The HTTP status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            HandshakeError::TooLarge => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// Writes the whole HTTP answer for this error.
    pub fn write_response(self, out: &mut Vec<u8>) {
        let extra: &[(&str, &str)] = match self {
            HandshakeError::UnsupportedVersion => &[("Sec-WebSocket-Version", "13")],
            HandshakeError::MethodNotAllowed => &[("Allow", "GET")],
            _ => &[],
        };
        let body = format!("{self}\n");
        write_response(out, self.status(), extra, body.as_bytes());
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Malformed => "malformed HTTP request",
            HandshakeError::TooLarge => "request headers too large",
            HandshakeError::MethodNotAllowed => "only GET can be upgraded to a WebSocket",
            HandshakeError::OldHttpVersion => "WebSocket upgrades need HTTP/1.1",
            HandshakeError::MissingHost => "missing Host header",
            HandshakeError::MissingConnectionUpgrade => "Connection header lacks the upgrade token",
            HandshakeError::UnsupportedVersion => {
                "unsupported Sec-WebSocket-Version (13 is supported)"
            }
            HandshakeError::BadKey => "missing or invalid Sec-WebSocket-Key",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// A parsed HTTP request that was complete.
#[derive(Debug)]
pub enum Parsed<'h, 'b> {
    /// A valid WebSocket upgrade request.
    Upgrade(Request<'h, 'b>),
    /// A request that does not ask for an upgrade (a health check, a browser visiting the
    /// URL, an API call); [`Request::key`] is empty.
    Plain(Request<'h, 'b>),
}

/// An HTTP request: an upgrade, or a plain request; borrows the bytes it was parsed from.
#[derive(Debug)]
pub struct Request<'h, 'b> {
    method: &'b str,
    path: &'b str,
    headers: &'h [httparse::Header<'b>],
    key: &'b [u8],
    server_name: Option<&'b str>,
}

impl<'h, 'b> Request<'h, 'b> {
    /// The host name the client asked for in TLS's Server Name Indication (RFC 6066 section
    /// 3) on a wss:// connection, so one server can tell its names apart; `None` on ws://
    /// or when the client sent none (as for an IP address: "Literal IPv4 and IPv6
    /// addresses are not permitted in "HostName"").
    pub fn server_name(&self) -> Option<&'b str> {
        self.server_name
    }

    /// Records the SNI name of the connection the request came on.
    pub(crate) fn set_server_name(&mut self, name: Option<&'b str>) {
        self.server_name = name;
    }

    /// The method: always `GET` for an upgrade.
    pub fn method(&self) -> &'b str {
        self.method
    }

    /// Whether this is a WebSocket upgrade request.
    pub fn is_upgrade(&self) -> bool {
        !self.key.is_empty()
    }

    /// The path: the request target up to the first `?` or `#`, not percent-decoded (like
    /// `getUrl()` in uWebSockets.js; Node's `req.url` is [`target`](Self::target)). A target in
    /// absolute form (`ws://host/chat`, RFC 9112 section 3.2.2) keeps its scheme and host.
    ///
    /// ```
    /// let bytes = b"GET /chat/lobby?token=abc HTTP/1.1\r\nHost: x\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// assert_eq!(req.path(), "/chat/lobby");
    /// ```
    pub fn path(&self) -> &'b str {
        self.split_target().0
    }

    /// The whole request target as it came, query included, e.g. `/chat?room=1`.
    ///
    /// ```
    /// let bytes = b"GET /chat?room=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// assert_eq!(req.target(), "/chat?room=1");
    /// ```
    pub fn target(&self) -> &'b str {
        self.path
    }

    /// The raw query string, after the first `?` and before any `#fragment`, not decoded.
    ///
    /// `None` when the target has no `?` (or only one inside the fragment); `Some("")` when it
    /// ends in `?`.
    ///
    /// ```
    /// let bytes = b"GET /chat?room=1&token=a%20b#top HTTP/1.1\r\nHost: x\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// assert_eq!(req.query(), Some("room=1&token=a%20b"));
    /// ```
    pub fn query(&self) -> Option<&'b str> {
        self.split_target().1
    }

    /// The `name=value` pairs of the query in order, percent-decoded the way `URLSearchParams`
    /// reads them ([`query::form_pairs`]).
    ///
    /// `+` is a space; repeated names all come; a name without `=` has the value `""`; empty
    /// pieces (`a=1&&b=2`) are skipped. An invalid escape (`%zz`, a `%` at the end) stays as it
    /// is, and decoded bytes that are not UTF-8 become U+FFFD. Each name and value borrows the
    /// request unless it needed decoding. Nothing at all when there is no query.
    ///
    /// ```
    /// let bytes = b"GET /chat?room=1&user=Ada+L%21&flag HTTP/1.1\r\nHost: x\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// let params: Vec<_> = req.query_params().collect();
    /// assert_eq!(params, [("room".into(), "1".into()), ("user".into(), "Ada L!".into()), ("flag".into(), "".into())]);
    /// ```
    pub fn query_params(&self) -> impl Iterator<Item = (Cow<'b, str>, Cow<'b, str>)> {
        query::form_pairs(self.query().unwrap_or(""))
    }

    /// The decoded value of the first query parameter called `name`, compared after decoding
    /// (`user+id` and `user%20id` are both `"user id"`).
    ///
    /// `Some("")` for a name without `=` (`?debug`), `None` when the name is absent. Decoded as
    /// in [`query_params`](Self::query_params).
    ///
    /// ```
    /// let bytes = b"GET /chat?room=a&room=b&debug HTTP/1.1\r\nHost: x\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// assert_eq!(req.query_param("room").as_deref(), Some("a"));
    /// assert_eq!(req.query_param("debug").as_deref(), Some(""));
    /// assert_eq!(req.query_param("token"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<Cow<'b, str>> {
        query::form_value(self.query().unwrap_or(""), name)
    }

    /// The path and the query of the target; a `#fragment` is not part of either (RFC 3986
    /// section 3.5), though clients should not send one (RFC 9112 section 3.2.1).
    fn split_target(&self) -> (&'b str, Option<&'b str>) {
        let before_fragment = self.path.split('#').next().unwrap_or(self.path);
        match before_fragment.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (before_fragment, None),
        }
    }

    /// All headers in the order they came.
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + '_ {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        find_header(self.headers, name)
    }

    /// The first header called `name`, when it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'b str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The `Origin` header, which browsers send and servers use to refuse cross-site use.
    pub fn origin(&self) -> Option<&'b str> {
        self.header_str("origin")
    }

    /// The cookies of every `Cookie` header, in order, as `(name, value)`.
    ///
    /// A header is `name=value; name2=value2` (RFC 6265 section 5.4). Names and values are
    /// trimmed of spaces and tabs, a value in double quotes loses them (section 4.1.1), and
    /// nothing is percent-decoded. Pieces without `=`, with an empty name, or that are not
    /// UTF-8 are skipped.
    ///
    /// ```
    /// let bytes = b"GET /chat HTTP/1.1\r\nHost: x\r\nCookie: session=abc; theme=\"dark\"\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// let cookies: Vec<_> = req.cookies().collect();
    /// assert_eq!(cookies, [("session", "abc"), ("theme", "dark")]);
    /// ```
    pub fn cookies(&self) -> impl Iterator<Item = (&'b str, &'b str)> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
            .flat_map(|h| h.value.split(|&b| b == b';'))
            .filter_map(|piece| {
                let (name, value) = std::str::from_utf8(piece).ok()?.split_once('=')?;
                let name = header::trim_ows(name);
                let value = header::trim_ows(value);
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (!name.is_empty()).then_some((name, value))
            })
    }

    /// The value of the first cookie called `name` (case-sensitive, as cookie names are), as
    /// in [`cookies`](Self::cookies); `None` when there is none.
    ///
    /// ```
    /// let bytes = b"GET /chat HTTP/1.1\r\nHost: x\r\nCookie: session=abc\r\n\r\n";
    /// # use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
    /// # let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    /// # let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
    /// # else { panic!() };
    /// assert_eq!(req.cookie("session"), Some("abc"));
    /// assert_eq!(req.cookie("Session"), None);
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&'b str> {
        self.cookies().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The `Sec-WebSocket-Key`; empty for a plain request.
    pub fn key(&self) -> &'b [u8] {
        self.key
    }

    /// The subprotocols the client offers in `Sec-WebSocket-Protocol`, in its order of preference.
    ///
    /// The elements of every such header as [`header::list`] reads them: without the SP and
    /// HTAB around them, empty ones skipped. They are not checked: one that is not a token
    /// comes as it is, and [`write_accept`] will not send it back.
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + '_ {
        self.comma_list("sec-websocket-protocol")
    }

    /// The raw `Sec-WebSocket-Extensions` offers, joined when the header is repeated.
    pub fn extension_offers(&self) -> impl Iterator<Item = &'b str> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    }

    /// The list elements ([`header::list`]) of every header called `name` that is UTF-8.
    fn comma_list(&self, name: &'static str) -> impl Iterator<Item = &'b str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .flat_map(header::list)
    }
}

/// Parses and checks a request from the bytes received so far.
///
/// `Status::Partial` means the request has not ended yet; the caller bounds how many bytes it
/// waits for. On `Complete` the second value is the request's length: bytes after it are the
/// client's first frames.
///
/// ```
/// use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};
/// let bytes = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
/// match parse_request(bytes, &mut headers) {
///     Ok(Status::Complete((Parsed::Upgrade(req), len))) => {
///         assert_eq!(req.path(), "/chat");
///         assert_eq!(len, bytes.len());
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
) -> Result<Status<(Parsed<'h, 'b>, usize)>, HandshakeError> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HandshakeError::Malformed);
    };
    let headers: &'h [httparse::Header<'b>] = req.headers;
    // "An |Upgrade| header field containing the value "websocket", treated as an ASCII
    // case-insensitive value." (section 4.2.1, item 3)
    let wants_upgrade =
        header_tokens(headers, "upgrade").any(|t| t.eq_ignore_ascii_case(b"websocket"));
    if !wants_upgrade {
        let plain = Request {
            method,
            path,
            headers,
            key: b"",
            server_name: None,
        };
        return Ok(Status::Complete((Parsed::Plain(plain), len)));
    }
    // "The method of the request MUST be GET" (section 4.1).
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if version < 1 {
        return Err(HandshakeError::OldHttpVersion);
    }
    // "A |Host| header field containing the server's authority." (item 2)
    if find_header(headers, "host").is_none() {
        return Err(HandshakeError::MissingHost);
    }
    // "A |Connection| header field that includes the token "Upgrade", treated as an ASCII
    // case-insensitive value." (item 4)
    if !header_tokens(headers, "connection").any(|t| t.eq_ignore_ascii_case(b"upgrade")) {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // "A |Sec-WebSocket-Version| header field, with a value of 13." (item 6) Section 4.4: if
    // the server doesn't support the version, it MUST respond with |Sec-WebSocket-Version|
    // header fields listing the versions it supports.
    if find_header(headers, "sec-websocket-version").map(header::trim_ows_bytes) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    // "A |Sec-WebSocket-Key| header field with a base64-encoded value that, when decoded, is
    // 16 bytes in length." (item 5)
    let key = find_header(headers, "sec-websocket-key")
        .map(header::trim_ows_bytes)
        .ok_or(HandshakeError::BadKey)?;
    let mut decoded = [0u8; 18];
    if key.len() != 24 || BASE64.decode_slice(key, &mut decoded) != Ok(16) {
        return Err(HandshakeError::BadKey);
    }
    Ok(Status::Complete((
        Parsed::Upgrade(Request {
            method,
            path,
            headers,
            key,
            server_name: None,
        }),
        len,
    )))
}

/// Writes the `101 Switching Protocols` answer to a request with `key`.
///
/// `protocol` and `extensions` fill `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`;
/// `headers` are added as they are, except pairs that could break the response (a name that is
/// not an HTTP token, a value with CR, LF or NUL), which are left out.
pub fn write_accept(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(String, String)],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    out.extend_from_slice(b"Sec-WebSocket-Accept: ");
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol.filter(|p| is_token(p)) {
        write_header(out, "Sec-WebSocket-Protocol", protocol);
    }
    if let Some(extensions) = extensions {
        write_header(out, "Sec-WebSocket-Extensions", extensions);
    }
    for (name, value) in headers {
        write_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a complete HTTP/1.1 response that ends the connection.
pub fn write_response(out: &mut Vec<u8>, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    for (name, value) in headers {
        write_header(out, name, value);
    }
    let _ = write!(
        out,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

/// Writes a complete HTTP/1.1 response that ends the connection, with the application's
/// `headers` (those that could break the response are left out, as in [`write_accept`];
/// `Content-Length` and `Connection` are the server's own and are left out too). With
/// `with_body` false (an answer to `HEAD`), the body's length is sent but not the body.
pub fn write_http_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    with_body: bool,
) {
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", status, reason_phrase(status));
    for (name, value) in headers {
        let ours = ["content-length", "connection", "transfer-encoding"]
            .iter()
            .any(|own| name.eq_ignore_ascii_case(own));
        if !ours {
            write_header(out, name, value);
        }
    }
    let _ = write!(
        out,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if with_body {
        out.extend_from_slice(body);
    }
}

fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    if !header::is_sendable_field(name, value) {
        log::warn!("left out response header {name:?}: not a valid HTTP header");
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The standard reason phrase for the statuses a WebSocket server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn find_header<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The list elements ([`header::list_bytes`]) of every header called `name`, such as the
/// tokens of `Connection` and `Upgrade`.
///
/// A malformed value is not an error here: an element that is not the token looked for (a
/// quoted-string, or the unterminated one that swallows the rest of its line) just does not
/// match, and the caller answers as for a missing token.
fn header_tokens<'a, 'b: 'a>(
    headers: &'a [httparse::Header<'b>],
    name: &'a str,
) -> impl Iterator<Item = &'b [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .flat_map(|h| header::list_bytes(h.value))
}

/// The client side: a request to send and a check of the server's answer.
pub mod client {
    use super::*;

    /// Writes an upgrade request for `path` on `host` with a base64 `key` (16 random bytes).
    pub fn write_request(
        out: &mut Vec<u8>,
        host: &str,
        path: &str,
        key: &str,
        extra: &[(&str, &str)],
    ) {
        let _ = write!(
            out,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in extra {
            write_header(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Why the server's answer does not open a connection.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ResponseError {
        Malformed,
        /// The server answered with this status instead of 101.
        Status(u16),
        /// 101, but without the right Upgrade, Connection or Sec-WebSocket-Accept.
        BadAccept,
    }

    impl fmt::Display for ResponseError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                ResponseError::Malformed => f.write_str("malformed HTTP response"),
                ResponseError::Status(status) => write!(f, "server answered HTTP {status}"),
                ResponseError::BadAccept => {
                    f.write_str("bad Sec-WebSocket-Accept or upgrade headers")
                }
            }
        }
    }

    impl std::error::Error for ResponseError {}

    /// Checks the server's answer to a request sent with `key`; on success returns the
    /// response's length (bytes after it are the server's first frames).
    pub fn check_response(buf: &[u8], key: &str) -> Result<Status<usize>, ResponseError> {
        Ok(match read_response(buf, key)? {
            Status::Complete(Answer::Upgrade(head)) => Status::Complete(head.len),
            Status::Complete(Answer::Refused(head)) => {
                return Err(ResponseError::Status(head.status))
            }
            Status::Partial => Status::Partial,
        })
    }

    /// The server's answer to an upgrade request.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Answer<'b> {
        /// A 101 with the right upgrade headers and `Sec-WebSocket-Accept`.
        Upgrade(ResponseHead<'b>),
        /// Another status (a 401, a redirect): the `unexpected-response` of Node's `ws`.
        Refused(RefusedHead),
    }

    /// A 101 answer as [`read_response`] found it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ResponseHead<'b> {
        /// The head's length; bytes after it are the server's first frames.
        pub len: usize,
        /// `Sec-WebSocket-Protocol`: the subprotocol the server chose.
        pub protocol: Option<&'b str>,
        /// Every `Sec-WebSocket-Extensions` value, joined into one list.
        pub extensions: Option<String>,
        /// Every header, in order (a `Set-Cookie` for the `upgrade` event, say).
        pub headers: Vec<(String, String)>,
    }

    /// The head of an answer other than 101.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RefusedHead {
        /// The head's length; its body follows.
        pub len: usize,
        pub status: u16,
        pub reason: String,
        /// Every header, in order; values that are not UTF-8 are read lossily.
        pub headers: Vec<(String, String)>,
        /// How the body that follows is delimited.
        pub body: BodyLength,
    }

    /// How a response's body is delimited (RFC 9112 section 6.3).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BodyLength {
        /// "Any response ... with a 1xx (Informational), 204 (No Content), or 304 (Not
        /// Modified) status code is always terminated by the first empty line after the
        /// header fields ... and thus cannot contain a message body".
        Empty,
        /// `Transfer-Encoding` with `chunked` last: the chunked coding (section 7.1).
        Chunked,
        /// A valid `Content-Length`.
        Length(u64),
        /// Neither: "the message body length is determined by the number of octets
        /// received prior to the server closing the connection".
        UntilClose,
    }

    /// Reads the server's answer to a request sent with `key`: `Partial` until the head is
    /// whole; then a 101 that passes RFC 6455 section 4.1's checks 1-4 (status, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-Accept`), or another status with its head; an error for
    /// a malformed head or a 101 that fails a check.
    pub fn read_response<'b>(
        buf: &'b [u8],
        key: &str,
    ) -> Result<Status<Answer<'b>>, ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(Status::Partial),
            Err(_) => return Err(ResponseError::Malformed),
        };
        let status = resp.code.ok_or(ResponseError::Malformed)?;
        let headers = resp.headers;
        let all = headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(header::trim_ows_bytes(h.value));
                (h.name.to_owned(), value.into_owned())
            })
            .collect();
        if status != 101 {
            return Ok(Status::Complete(Answer::Refused(RefusedHead {
                len,
                status,
                reason: resp.reason.unwrap_or("").to_owned(),
                headers: all,
                body: body_length(status, headers)?,
            })));
        }
        let upgrade =
            header_tokens(headers, "upgrade").any(|t| t.eq_ignore_ascii_case(b"websocket"));
        let connection =
            header_tokens(headers, "connection").any(|t| t.eq_ignore_ascii_case(b"upgrade"));
        let accept = find_header(headers, "sec-websocket-accept").map(header::trim_ows_bytes);
        if !upgrade || !connection || accept != Some(accept_key(key.as_bytes()).as_bytes()) {
            return Err(ResponseError::BadAccept);
        }
        let text =
            |value: &'b [u8]| std::str::from_utf8(value).map_err(|_| ResponseError::Malformed);
        let protocol = find_header(headers, "sec-websocket-protocol")
            .map(|value| text(header::trim_ows_bytes(value)))
            .transpose()?;
        let mut extensions: Option<String> = None;
        for value in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        {
            let value = text(header::trim_ows_bytes(value.value))?;
            match &mut extensions {
                Some(list) => {
                    list.push_str(", ");
                    list.push_str(value);
                }
                None => extensions = Some(value.to_owned()),
            }
        }
        Ok(Status::Complete(Answer::Upgrade(ResponseHead {
            len,
            protocol,
            extensions,
            headers: all,
        })))
    }

    /// RFC 9112 section 6.3's rules, in its order, for a response to a GET.
    fn body_length(
        status: u16,
        headers: &[httparse::Header<'_>],
    ) -> Result<BodyLength, ResponseError> {
        if status < 200 || status == 204 || status == 304 {
            return Ok(BodyLength::Empty);
        }
        // "If a Transfer-Encoding header field is present and the chunked transfer coding
        // is the final encoding, the message body length is determined by reading and
        // decoding the chunked data ... If [it] is present in a response and the chunked
        // transfer coding is not the final encoding, the message body length is determined
        // by reading the connection until it is closed by the server."
        let mut codings = header_tokens(headers, "transfer-encoding").peekable();
        if codings.peek().is_some() {
            let last = codings.last();
            return Ok(match last {
                Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => BodyLength::Chunked,
                _ => BodyLength::UntilClose,
            });
        }
        // "If a message is received without Transfer-Encoding and with an invalid
        // Content-Length header field, then the message framing is invalid and the
        // recipient MUST treat it as an unrecoverable error". Repeated equal values are one.
        let mut length = None;
        for value in header_tokens(headers, "content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(ResponseError::Malformed)?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(ResponseError::Malformed);
            }
            length = Some(parsed);
        }
        Ok(length.map_or(BodyLength::UntilClose, BodyLength::Length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    fn parse(text: &str) -> Result<Status<usize>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse_request(text.as_bytes(), &mut headers).map(|s| match s {
            Status::Complete((Parsed::Upgrade(_), len)) => Status::Complete(len),
            Status::Complete((Parsed::Plain(_), _)) => Status::Complete(0),
            Status::Partial => Status::Partial,
        })
    }

    #[test]
    fn accepts_the_rfc_request() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((Parsed::Upgrade(req), len))) =
            parse_request(GOOD.as_bytes(), &mut headers)
        else {
            panic!("not accepted");
        };
        assert_eq!(len, GOOD.len());
        assert_eq!(
            (req.path(), req.target(), req.query()),
            ("/chat", "/chat?x=1", Some("x=1"))
        );
        assert_eq!(req.origin(), Some("http://example.com"));
        assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        let mut out = Vec::new();
        write_accept(
            &mut out,
            req.key(),
            Some("chat"),
            None,
            &[("X-A".into(), "1".into())],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(text.ends_with("X-A: 1\r\n\r\n"));
    }

    #[test]
    fn every_prefix_is_partial() {
        for cut in 0..GOOD.len() {
            assert_eq!(parse(&GOOD[..cut]), Ok(Status::Partial), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_with_the_right_error() {
        let cases = [
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 8",
                HandshakeError::UnsupportedVersion,
            ),
            (
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Key: c2hvcnQ=",
                HandshakeError::BadKey,
            ),
            (
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                "",
                HandshakeError::BadKey,
            ),
            (
                "Connection: keep-alive, Upgrade",
                "Connection: keep-alive",
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                "Host: server.example.com\r\n",
                "",
                HandshakeError::MissingHost,
            ),
            ("GET /chat", "POST /chat", HandshakeError::MethodNotAllowed),
            (
                "HTTP/1.1\r\nHost",
                "HTTP/1.0\r\nHost",
                HandshakeError::OldHttpVersion,
            ),
            ("GET /chat", "GET\x01/chat", HandshakeError::Malformed),
        ];
        for (from, to, err) in cases {
            assert_eq!(parse(&GOOD.replacen(from, to, 1)), Err(err), "{to}");
        }
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        let mut out = Vec::new();
        HandshakeError::UnsupportedVersion.write_response(&mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("Sec-WebSocket-Version: 13\r\n"));
    }

    #[test]
    fn tokens_are_case_insensitive() {
        let text = GOOD
            .replace("Upgrade: websocket", "upgrade: WebSocket")
            .replace("keep-alive, Upgrade", "UPGRADE");
        assert!(matches!(parse(&text), Ok(Status::Complete(n)) if n > 0));
    }

    /// `Connection`, `Upgrade` and `Sec-WebSocket-Protocol` are lists as [`header::list`]
    /// reads them: OWS is SP and HTAB, empty elements are skipped, and a quoted-string (closed
    /// or not) is never taken apart into tokens.
    #[test]
    fn header_lists_follow_rfc_9110() {
        let text = GOOD
            .replace(
                "Connection: keep-alive, Upgrade",
                "Connection: ,keep-alive,\t,\tUpgrade\t",
            )
            .replace("Upgrade: websocket", "Upgrade: , websocket ,")
            .replace(
                "Sec-WebSocket-Protocol: chat, superchat",
                "Sec-WebSocket-Protocol: ,chat,\t,superchat\t, x y,\r\n\
                 Sec-WebSocket-Protocol: \"a,b\"",
            );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((Parsed::Upgrade(req), _))) =
            parse_request(text.as_bytes(), &mut headers)
        else {
            panic!("not accepted");
        };
        assert_eq!(
            req.protocols().collect::<Vec<_>>(),
            ["chat", "superchat", "x y", "\"a,b\""]
        );
        // Bad values: a token inside a quoted-string is no token, so the request lacks it.
        for (from, to, expected) in [
            (
                "Connection: keep-alive, Upgrade",
                "Connection: \"keep-alive, Upgrade\"",
                Err(HandshakeError::MissingConnectionUpgrade),
            ),
            (
                "Connection: keep-alive, Upgrade",
                "Connection: \"keep-alive, Upgrade",
                Err(HandshakeError::MissingConnectionUpgrade),
            ),
            (
                "Upgrade: websocket",
                "Upgrade: \"websocket\"",
                Ok(Status::Complete(0)),
            ),
        ] {
            assert_eq!(parse(&GOOD.replacen(from, to, 1)), expected, "{to}");
        }
        // What comes before an unterminated quote is still read.
        let text = GOOD.replacen("keep-alive, Upgrade", "Upgrade, \"keep-alive", 1);
        assert!(matches!(parse(&text), Ok(Status::Complete(n)) if n > 0));
    }

    #[test]
    fn too_many_headers_is_too_large() {
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = GOOD.replacen("\r\n", &format!("\r\n{many}"), 1);
        assert_eq!(parse(&text), Err(HandshakeError::TooLarge));
    }

    #[test]
    fn plain_get_is_not_an_upgrade() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        match parse_request(req, &mut headers) {
            Ok(Status::Complete((Parsed::Plain(req), _))) => {
                assert_eq!((req.method(), req.path()), ("GET", "/healthz"));
                assert!(!req.is_upgrade());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Parses a plain GET of `target` with `headers` (each ending in CRLF) and hands it to `check`.
    fn with_request(target: &str, headers: &str, check: impl FnOnce(&Request<'_, '_>)) {
        let text = format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match parse_request(text.as_bytes(), &mut slots) {
            Ok(Status::Complete((Parsed::Plain(req), _))) => check(&req),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn path_and_query_split_the_target() {
        let cases = [
            ("/chat", "/chat", None),
            ("/chat?room=1", "/chat", Some("room=1")),
            ("/chat?", "/chat", Some("")),
            ("/chat?room=1#top", "/chat", Some("room=1")),
            ("/chat#top", "/chat", None),
            ("/chat#top?room=1", "/chat", None),
            ("/?a=1?b=2", "/", Some("a=1?b=2")),
            ("/a%20b?c", "/a%20b", Some("c")),
            ("ws://host/chat?x", "ws://host/chat", Some("x")),
            ("*", "*", None),
        ];
        for (target, path, query) in cases {
            with_request(target, "", |req| {
                assert_eq!(
                    (req.target(), req.path(), req.query()),
                    (target, path, query)
                );
            });
        }
    }

    #[test]
    fn query_params_are_decoded_like_url_search_params() {
        let target = "/s?q=a+b%20c&&bad=%zz&end=%&raw=%FF&k&k=2&k=3&e=1=2#frag";
        with_request(target, "", |req| {
            let params: Vec<(Cow<str>, Cow<str>)> = req.query_params().collect();
            let expected = [
                ("q", "a b c"),
                ("bad", "%zz"),
                ("end", "%"),
                ("raw", "\u{FFFD}"),
                ("k", ""),
                ("k", "2"),
                ("k", "3"),
                ("e", "1=2"),
            ];
            assert_eq!(params.len(), expected.len(), "{params:?}");
            for ((name, value), want) in params.iter().zip(expected) {
                assert_eq!((name.as_ref(), value.as_ref()), want);
            }
            // Only what needed decoding was copied.
            assert!(matches!(params[0], (Cow::Borrowed(_), Cow::Owned(_))));
            assert!(matches!(params[1], (Cow::Borrowed(_), Cow::Borrowed(_))));

            assert_eq!(req.query_param("q").as_deref(), Some("a b c"));
            assert_eq!(req.query_param("k").as_deref(), Some(""), "the first one");
            assert_eq!(req.query_param("frag"), None);
            assert_eq!(req.query_param("missing"), None);
        });
        with_request("/s?user%20id=7&a%2Bb=8", "", |req| {
            assert_eq!(req.query_param("user id").as_deref(), Some("7"));
            assert_eq!(req.query_param("a+b").as_deref(), Some("8"));
            assert_eq!(req.query_param("user%20id"), None);
        });
        with_request("/s", "", |req| {
            assert_eq!(req.query_params().count(), 0);
            assert_eq!(req.query_param("q"), None);
        });
    }

    #[test]
    fn cookies_of_every_cookie_header() {
        let headers = "Cookie: a=1; b=\"two words\" ;  c = 3 ;flag; =anon; t=x=y\r\n\
                       X-Other: z=9\r\n\
                       cookie: a=again;d=\"\r\n";
        with_request("/", headers, |req| {
            assert_eq!(
                req.cookies().collect::<Vec<_>>(),
                [
                    ("a", "1"),
                    ("b", "two words"),
                    ("c", "3"),
                    ("t", "x=y"),
                    ("a", "again"),
                    ("d", "\""),
                ]
            );
            assert_eq!(req.cookie("a"), Some("1"));
            assert_eq!(req.cookie("b"), Some("two words"));
            assert_eq!(req.cookie("A"), None, "names are case-sensitive");
            assert_eq!(req.cookie("flag"), None);
            assert_eq!(req.cookie("missing"), None);
        });
        with_request("/", "", |req| {
            assert_eq!(req.cookies().count(), 0);
            assert_eq!(req.cookie("a"), None);
        });
    }

    #[test]
    fn cookie_pieces_that_are_not_utf8_are_skipped() {
        let bytes = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: a=\xff; b=2\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Ok(Status::Complete((Parsed::Plain(req), _))) = parse_request(bytes, &mut headers)
        else {
            panic!("not parsed");
        };
        assert_eq!(req.cookies().collect::<Vec<_>>(), [("b", "2")]);
    }

    #[test]
    fn response_headers_cannot_be_injected() {
        let mut out = Vec::new();
        write_accept(
            &mut out,
            b"k",
            Some("bad proto"),
            None,
            &[("X".into(), "a\r\nSet-Cookie: x".into())],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Set-Cookie") && !text.contains("bad proto"));
    }

    #[test]
    fn client_checks_the_accept_key() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut out = Vec::new();
        write_accept(&mut out, key.as_bytes(), None, None, &[]);
        assert_eq!(
            client::check_response(&out, key),
            Ok(Status::Complete(out.len()))
        );
        assert_eq!(
            client::check_response(&out, "AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(client::ResponseError::BadAccept)
        );
        assert_eq!(client::check_response(&out[..10], key), Ok(Status::Partial));
    }
}
