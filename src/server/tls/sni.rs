//! The server name a client asks for (SNI), read from its ClientHello before rustls sees it:
//! rustls's unbuffered server connection, which keeps no buffers of its own, does not expose
//! the name it parsed.

use rustls::pki_types::DnsName;

/// TLS record content type `handshake` (RFC 8446 section 5.1).
const HANDSHAKE_RECORD: u8 = 22;
/// Handshake message type `client_hello` (RFC 8446 section 4).
const CLIENT_HELLO: u8 = 1;
/// Extension `server_name` (RFC 6066 section 3).
const SERVER_NAME_EXTENSION: u16 = 0;
/// `NameType` `host_name` (RFC 6066 section 3).
const HOST_NAME: u8 = 0;

/// What reading the first record found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sni {
    /// The record is not complete yet: look again when more bytes arrive.
    Partial,
    /// The name the client asked for, in lower case as rustls keeps it.
    Name(Box<str>),
    /// No name, or not one rustls would accept: none is reported (rustls itself decides
    /// whether the handshake goes on).
    None,
}

/// Reads the `server_name` extension from the first TLS record in `bytes`, which must hold a
/// ClientHello (RFC 8446 section 4.1.2). Only the first record is read: a ClientHello split
/// across records (browsers send theirs whole) reports no name.
pub(crate) fn server_name(bytes: &[u8]) -> Sni {
    let Some(header) = bytes.get(..5) else {
        return Sni::Partial;
    };
    let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if header[0] != HANDSHAKE_RECORD {
        return Sni::None;
    }
    let Some(fragment) = bytes.get(5..5 + length) else {
        return Sni::Partial;
    };
    match client_hello_name(&mut Reader(fragment)) {
        Some(name) => DnsName::try_from(name)
            .map(|dns| Sni::Name(dns.to_lowercase_owned().as_ref().into()))
            .unwrap_or(Sni::None),
        None => Sni::None,
    }
}

/// The host name in a ClientHello handshake message, if it is there and well formed.
fn client_hello_name<'a>(message: &mut Reader<'a>) -> Option<&'a str> {
    if message.u8()? != CLIENT_HELLO {
        return None;
    }
    let length = message.u24()?;
    let body = message.take(length)?;
    let mut hello = Reader(body);
    // legacy_version, random, legacy_session_id<0..32>, cipher_suites<2..2^16-2>,
    // legacy_compression_methods<1..2^8-1>, then Extension extensions<8..2^16-1>.
    hello.take(2 + 32)?;
    let session_id = usize::from(hello.u8()?);
    hello.take(session_id)?;
    let suites = usize::from(hello.u16()?);
    hello.take(suites)?;
    let compression = usize::from(hello.u8()?);
    hello.take(compression)?;
    let length = usize::from(hello.u16()?);
    let mut extensions = Reader(hello.take(length)?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let length = usize::from(extensions.u16()?);
        let data = extensions.take(length)?;
        if kind == SERVER_NAME_EXTENSION {
            return host_name(&mut Reader(data));
        }
    }
    None
}

/// RFC 6066 section 3: `ServerName server_name_list<1..2^16-1>`, each a `NameType` and, for
/// `host_name`, `opaque HostName<1..2^16-1>`. "The ServerNameList MUST NOT contain more than
/// one name of the same name_type": the first `host_name` is the one.
fn host_name<'a>(extension: &mut Reader<'a>) -> Option<&'a str> {
    let length = usize::from(extension.u16()?);
    let mut list = Reader(extension.take(length)?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let length = usize::from(list.u16()?);
        let name = list.take(length)?;
        if kind == HOST_NAME {
            return std::str::from_utf8(name).ok();
        }
    }
    None
}

/// A cursor over untrusted bytes: every read checks the length first.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    /// The first flight of a real rustls client asking for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let mut client =
            ClientConnection::new(Arc::new(config), name.to_owned().try_into().unwrap()).unwrap();
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        hello
    }

    #[test]
    fn reads_the_name_a_rustls_client_sends() {
        let hello = client_hello("Chat.Example.com");
        assert_eq!(server_name(&hello), Sni::Name("chat.example.com".into()));
    }

    #[test]
    fn an_incomplete_record_asks_for_more() {
        let hello = client_hello("example.com");
        for cut in [0, 4, 5, hello.len() - 1] {
            assert_eq!(server_name(&hello[..cut]), Sni::Partial, "cut at {cut}");
        }
    }

    #[test]
    fn an_ip_address_or_garbage_reports_no_name() {
        // rustls sends no SNI for an IP address (RFC 6066: "Literal IPv4 and IPv6 addresses
        // are not permitted in "HostName"").
        assert_eq!(server_name(&client_hello("127.0.0.1")), Sni::None);
        assert_eq!(server_name(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Sni::None);
    }

    #[test]
    fn every_byte_of_a_real_hello_changed_reads_without_panic() {
        // Length fields among them: each is checked against what is left before it is used.
        let hello = client_hello("example.com");
        for at in 0..hello.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut changed = hello.clone();
                changed[at] = value;
                let _ = server_name(&changed);
            }
        }
    }

    #[test]
    fn every_truncation_of_the_hello_inside_its_record_is_refused_without_panic() {
        let hello = client_hello("example.com");
        // Shorten the message inside a record whose length says so: no read past the end.
        for cut in 5..hello.len() {
            let mut record = hello[..cut].to_vec();
            let length = (cut - 5) as u16;
            record[3..5].copy_from_slice(&length.to_be_bytes());
            assert_eq!(server_name(&record), Sni::None, "cut at {cut}");
        }
    }
}
