//! The server to load: a `ws://` or `wss://` URL resolved to one socket address, refused when
//! it is not on this machine's loopback unless the user says otherwise.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed and resolved `ws://host:port/path` or `wss://host:port/path`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// wss://: TLS under the WebSocket.
    pub secure: bool,
    /// The `Host` header: the URL's authority as written.
    pub host: String,
    /// The host alone, without port or brackets: the TLS server name.
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
    pub fn parse(url: &str, allow_remote: bool) -> Result<Target, String> {
        let (secure, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else {
            return Err(format!("{url:?} is not a ws:// or wss:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{url:?} has no usable host"));
        }
        let (with_port, host) = match authority.rfind(':') {
            Some(i) if has_port(authority) => (authority.to_string(), &authority[..i]),
            _ => {
                let port = if secure { 443 } else { 80 };
                (format!("{authority}:{port}"), authority)
            }
        };
        let name = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let addrs: Vec<SocketAddr> = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
            .collect();
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
            secure,
            host: authority.to_string(),
            name: name.to_string(),
            path,
        })
    }
}

/// Whether an authority ends in `:PORT` (and is not a bare IPv6 literal like `[::1]`).
fn has_port(authority: &str) -> bool {
    match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
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
    }
}
