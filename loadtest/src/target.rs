//! The server to load: a `ws://` or `wss://` URL resolved to one socket address, refused when
//! it is not on this machine's loopback unless the user says otherwise.

use std::net::{SocketAddr, ToSocketAddrs};

use wsloop::proto::url::{UrlError, WsUrl};

/// A parsed and resolved `ws://host:port/path` or `wss://host:port/path`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// wss://: TLS under the WebSocket.
    pub secure: bool,
    /// The `Host` header: the URL's host (bracketed when IPv6, lowercased), with `:port`
    /// unless it is the scheme's default.
    pub host: String,
    /// The host alone, without port or brackets: the TLS server name (an IP address sends no
    /// SNI and is checked against the certificate's addresses).
    pub name: String,
    /// The request target, `/` when the URL has none.
    pub path: String,
}

impl Target {
    /// The URL as the reports show it: `ws://host:port/path` or `wss://...`.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host, self.path)
    }

    /// Parses and resolves `url`. A target off loopback is refused without `allow_remote`: a
    /// load generator pointed at the wrong address is a denial-of-service tool.
    ///
    /// The syntax is [`wsloop::proto::url`]'s, except that `http://` and `https://`, which
    /// browsers read as ws:// and wss://, are refused: the generator is told a WebSocket URL.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Target, String> {
        let not_ws = || format!("{url:?} is not a ws:// or wss:// URL");
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
            return Err(not_ws());
        }
        let parsed = WsUrl::parse(url).map_err(|e| match e {
            UrlError::MissingScheme | UrlError::UnsupportedScheme(_) => not_ws(),
            UrlError::MissingHost
            | UrlError::Userinfo { .. }
            | UrlError::InvalidHost(_)
            | UrlError::InvalidCharacter { .. } => format!("{url:?} has no usable host: {e}"),
            e => format!("{url:?} is not a usable URL: {e}"),
        })?;
        let authority = parsed.host_header();
        let addrs: Vec<SocketAddr> = match parsed.ip() {
            Some(ip) => vec![SocketAddr::new(ip, parsed.port())],
            None => (parsed.host(), parsed.port())
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
                .collect(),
        };
        let Some(&addr) = addrs.first() else {
            return Err(format!("{authority:?} resolves to no address"));
        };
        if !allow_remote {
            if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
                return Err(format!(
                    "{authority:?} resolves to {}, which is not loopback; pass --allow-remote \
                     to load a server that is not on this machine",
                    remote.ip()
                ));
            }
        }
        Ok(Target {
            addr,
            secure: parsed.secure(),
            host: authority.to_string(),
            name: parsed.host().to_string(),
            path: parsed.resource().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls() {
        let t = Target::parse("ws://127.0.0.1:9001/chat/room?x=1", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(t.host, "127.0.0.1:9001");
        assert_eq!(t.path, "/chat/room?x=1");
        let t = Target::parse("ws://[::1]:9001", false).unwrap();
        assert_eq!(t.addr, "[::1]:9001".parse().unwrap());
        assert_eq!(t.path, "/");
        assert_eq!(
            Target::parse("ws://127.0.0.2", false).unwrap().addr.port(),
            80
        );
        assert_eq!(t.name, "::1");
        assert!(!t.secure);
    }

    #[test]
    fn parses_wss_urls_with_port_443_by_default() {
        let t = Target::parse("wss://127.0.0.1/chat", false).unwrap();
        assert!(t.secure);
        assert_eq!(t.addr, "127.0.0.1:443".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.name.as_str()),
            ("127.0.0.1", "127.0.0.1")
        );
        assert_eq!(t.url(), "wss://127.0.0.1/chat");
        let t = Target::parse("wss://localhost:9443", false).unwrap();
        assert_eq!((t.addr.port(), t.name.as_str()), (9443, "localhost"));
        assert_eq!(t.url(), "wss://localhost:9443/");
        let t = Target::parse("wss://[::1]", false).unwrap();
        assert_eq!((t.addr.port(), t.name.as_str()), (443, "::1"));
        // The loopback guard holds for wss:// too.
        let err = Target::parse("wss://192.0.2.1/", false).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
    }

    #[test]
    fn refuses_remote_targets_unless_allowed() {
        let err = Target::parse("ws://192.0.2.1:9001/", false).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        // Allowed: only parsed and resolved here, nothing is sent.
        assert!(Target::parse("ws://192.0.2.1:9001/", true).is_ok());
    }

    #[test]
    fn refuses_other_schemes() {
        assert!(Target::parse("http://127.0.0.1/", false).is_err());
        assert!(Target::parse("wsx://127.0.0.1/", false).is_err());
        assert!(Target::parse("wss://", false).is_err());
        assert!(Target::parse("ws:///nohost", false).is_err());
        let err = Target::parse("https://127.0.0.1/", false).unwrap_err();
        assert!(err.contains("not a ws:// or wss:// URL"), "{err}");
        let err = Target::parse("127.0.0.1:9001", false).unwrap_err();
        assert!(err.contains("not a ws:// or wss:// URL"), "{err}");
    }

    #[test]
    fn uses_the_shared_url_syntax() {
        // The Host header leaves out the scheme's default port and is lowercased, as browsers
        // send it; the scheme is case-insensitive.
        let t = Target::parse("WS://LocalHost:80/x?y", false).unwrap();
        assert_eq!(
            (t.host.as_str(), t.name.as_str()),
            ("localhost", "localhost")
        );
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/x?y"));
        assert_eq!(t.url(), "ws://localhost/x?y");
        let t = Target::parse("wss://[::1]:9443/", false).unwrap();
        assert_eq!((t.host.as_str(), t.name.as_str()), ("[::1]:9443", "::1"));
        // Refused now, sent as written or failed to resolve before.
        for (url, says) in [
            ("ws://127.0.0.1:9001/#frag", "fragment"),
            ("ws://user:pw@127.0.0.1:9001/", "no usable host"),
            ("ws://127.0.0.1:0/", "port"),
            ("ws://127.0.0.1:9001/a b", "whitespace"),
            ("ws://::1/", "no usable host"),
        ] {
            let err = Target::parse(url, false).unwrap_err();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
