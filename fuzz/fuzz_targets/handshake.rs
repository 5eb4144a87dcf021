//! The opening handshake on arbitrary bytes: `parse_request`, the permessage-deflate offer
//! negotiation on whatever `Sec-WebSocket-Extensions` it found, and the answers the server
//! writes.
//!
//! Never panics, and:
//! - a complete request is no longer than the input, and the request bytes alone parse the
//!   same way;
//! - the target is the path, then `?` and the query if any, then any `#fragment`;
//! - an upgrade's key is 24 base64 characters, and the 101 answer the server writes for it
//!   (with the negotiated extension and the first offered subprotocol) passes the client-side
//!   check of the same key and is exactly as long as written;
//! - every refusal's HTTP answer is a complete response with the refusal's status and a
//!   `Content-Length` that matches its body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::deflate::{negotiate, DeflateConfig};
use wsloop::proto::handshake::client::check_response;
use wsloop::proto::handshake::write_accept;
use wsloop::proto::{parse_request, Parsed, Status, MAX_HEADERS};

fn check_http_answer(bytes: &[u8], status: u16) {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("answer does not parse: {other:?}"),
    };
    assert_eq!(response.code, Some(status));
    let content_length: usize = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
        .expect("Content-Length");
    assert_eq!(len + content_length, bytes.len());
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_request(data, &mut headers) {
        Ok(Status::Partial) => {}
        Err(err) => {
            let status = err.status();
            assert!(matches!(status, 400 | 405 | 426 | 431), "{err:?}");
            let mut out = Vec::new();
            err.write_response(&mut out);
            check_http_answer(&out, status);
        }
        Ok(Status::Complete((parsed, len))) => {
            assert!(len > 0 && len <= data.len());
            let mut again = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let same = parse_request(&data[..len], &mut again);
            match (&parsed, same) {
                (Parsed::Plain(a), Ok(Status::Complete((Parsed::Plain(b), l)))) => {
                    assert_eq!((a.method(), a.target(), len), (b.method(), b.target(), l));
                }
                (Parsed::Upgrade(a), Ok(Status::Complete((Parsed::Upgrade(b), l)))) => {
                    assert_eq!((a.target(), a.key(), len), (b.target(), b.key(), l));
                }
                (_, other) => panic!("the request alone parses differently: {other:?}"),
            }
            if let Parsed::Upgrade(request) = parsed {
                let key = std::str::from_utf8(request.key()).expect("base64 is ASCII");
                assert_eq!(key.len(), 24);
                let _ = request.origin();
                let rest = request
                    .target()
                    .strip_prefix(request.path())
                    .expect("path first");
                match request.query() {
                    Some(query) => assert!(rest.strip_prefix('?').unwrap().starts_with(query)),
                    None => assert!(rest.is_empty() || rest.starts_with('#')),
                }
                let _ = (request.query_params().count(), request.cookies().count());
                let _ = request.headers().count();
                let protocol = request.protocols().next();
                for config in [
                    DeflateConfig::default(),
                    DeflateConfig {
                        server_no_context_takeover: true,
                        client_no_context_takeover: true,
                        server_max_window_bits: 8,
                        client_max_window_bits: 9,
                        ..DeflateConfig::default()
                    },
                ] {
                    let params = negotiate(request.extension_offers(), &config);
                    let answer = params.map(|p| p.to_string());
                    if let Some(p) = params {
                        for bits in [p.server_max_window_bits, p.client_max_window_bits]
                            .into_iter()
                            .flatten()
                        {
                            assert!((8..=15).contains(&bits), "{p:?}");
                        }
                    }
                    let mut out = Vec::new();
                    write_accept(&mut out, request.key(), protocol, answer.as_deref(), &[]);
                    assert_eq!(check_response(&out, key), Ok(Status::Complete(out.len())));
                }
            }
        }
    }
});
