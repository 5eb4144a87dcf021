//! `WsUrl::parse` on arbitrary text.
//!
//! Never panics, and when it parses a URL:
//! - the input was at most `MAX_URL_LEN` bytes, and had no `#`;
//! - the port is not 0, the host is not empty, and the resource starts with `/` and is
//!   visible ASCII with no `#`;
//! - the `Host` header is the host (bracketed for IPv6) with `:port` exactly when the port is
//!   not the scheme's default;
//! - the server name is the host, or none exactly when the host is an IP address;
//! - `scheme://host_header resource`, glued, is the URL's `Display` and parses back to the
//!   same URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::url::{WsUrl, MAX_URL_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let url = match WsUrl::parse(input) {
        Ok(url) => url,
        Err(err) => {
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    assert!(input.len() <= MAX_URL_LEN);
    assert!(!input.contains('#'));
    assert_ne!(url.port(), 0);
    assert!(!url.host().is_empty());
    assert!(url.resource().starts_with('/'));
    assert!(url
        .resource()
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#'));

    let default_port = if url.secure() { 443 } else { 80 };
    let host = match url.ip() {
        Some(std::net::IpAddr::V6(_)) => format!("[{}]", url.host()),
        _ => url.host().to_string(),
    };
    let expected = if url.port() == default_port {
        host
    } else {
        format!("{host}:{}", url.port())
    };
    assert_eq!(url.host_header(), expected);
    assert_eq!(url.server_name().is_none(), url.ip().is_some());
    if let Some(name) = url.server_name() {
        assert_eq!(name, url.host());
    }

    let glued = format!("{}://{}{}", url.scheme(), url.host_header(), url.resource());
    assert_eq!(url.to_string(), glued);
    let again = WsUrl::parse(&glued).unwrap_or_else(|e| panic!("{glued:?} does not re-parse: {e}"));
    assert_eq!(again, url);
});
