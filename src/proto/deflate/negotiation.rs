//! Negotiating permessage-deflate in the opening handshake (RFC 7692 section 7.1): the
//! server's wishes ([`DeflateConfig`]), the client's offers, the answer ([`DeflateParams`])
//! and the client's reading of that answer.
//!
//! The header grammar (lists, parameters, quoted strings) is [`crate::proto::header`]'s; what
//! is here is what the parameters mean.

use std::fmt;

use crate::proto::header::{self, Malformed, Param};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The LZ77 window when no `*_max_window_bits` limits it (32 KiB, DEFLATE's largest).
pub(super) const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window RFC 7692 allows: "between 8 to 15, inclusive" (section 7.1.2.1).
const MIN_WINDOW_BITS: u8 = 8;

/// The server's own wishes for permessage-deflate; [`negotiate`] meets them with what the
/// client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Ask to reset the server's compressor after every message. Compression of similar
    /// messages gets worse, but no compressor is kept between messages (see the module docs
    /// for the memory this saves per connection).
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message, which lets the server drop
    /// its decompressor between messages.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with, 8..=15 (values outside are clamped).
    pub server_max_window_bits: u8,
    /// The largest window the client may compress with, 8..=15 (values outside are clamped).
    /// RFC 7692 lets the server limit it only when the client offered
    /// `client_max_window_bits`; otherwise the client keeps 15 and the offer is still taken.
    /// With zlib-rs a smaller value saves the server nothing: its decompressor always holds
    /// 32 KiB.
    pub client_max_window_bits: u8,
    /// Messages shorter than this many bytes are sent uncompressed: for a few bytes the
    /// compressed form is hardly smaller and costs a compressor (see
    /// [`PerMessageDeflate::should_compress`](super::PerMessageDeflate::should_compress)).
    pub threshold: usize,
    /// The zlib compression level, 0..=9 (values above 9 are taken as 9).
    ///
    /// The default, 1, is zlib-rs's `deflate_quick` (fixed Huffman codes, one hash probe).
    /// Measured on this machine (optimised build, JSON split into messages, context
    /// takeover): at 128-byte messages level 1 ran at 166 MB/s to level 6's 17 MB/s, for a
    /// ratio of 0.20 against 0.17; at 1 KiB 187 against 42 MB/s, 0.17 against 0.14. Plain
    /// English text loses more (0.50 against 0.34 at 1 KiB). A server with many connections
    /// runs out of CPU for compression long before it runs out of bandwidth.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            threshold: 64,
            level: 1,
        }
    }
}

/// The negotiated parameters: exactly what the server's response says.
///
/// `Display` writes the `Sec-WebSocket-Extensions` response value, e.g.
/// `permessage-deflate; server_no_context_takeover; client_max_window_bits=10`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window; `None`: not in the response, 15.
    pub server_max_window_bits: Option<u8>,
    /// The client compresses with at most this window; `None`: not in the response, 15.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The window the server compresses with.
    pub(super) fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// The window the client compresses with.
    pub(super) fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }
}

impl fmt::Display for DeflateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXTENSION_NAME)?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// Picks the permessage-deflate offer to accept from the client's `Sec-WebSocket-Extensions`
/// header values (as
/// [`Request::extension_offers`](crate::proto::Request::extension_offers) gives them). `None`
/// declines: the response then names no extension.
///
/// RFC 7692 section 5: "The order of elements is important as it specifies the client's
/// preference. ... It is recommended that a server accepts PMCEs with higher preference if
/// the server supports them." So the first acceptable offer wins.
///
/// ```
/// use wsloop::proto::deflate::{negotiate, DeflateConfig};
/// let offers = ["permessage-deflate; client_max_window_bits=\"10\", permessage-deflate"];
/// let params = negotiate(offers, &DeflateConfig::default()).unwrap();
/// assert_eq!(params.to_string(), "permessage-deflate; client_max_window_bits=10");
/// assert_eq!(negotiate(["x-webkit-deflate-frame"], &DeflateConfig::default()), None);
/// ```
pub fn negotiate<'a, I>(header_values: I, config: &DeflateConfig) -> Option<DeflateParams>
where
    I: IntoIterator<Item = &'a str>,
{
    header_values
        .into_iter()
        .flat_map(header::list)
        .filter_map(|element| {
            // An element whose name is not a token names no extension we know.
            let extension = header::extension(element).ok()?;
            if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
                return None;
            }
            let offer = Offer::parse(extension.params());
            if offer.is_none() {
                log::debug!("declined a malformed permessage-deflate offer: {element:?}");
            }
            offer
        })
        .map(|offer| offer.accept(config))
        .next()
}

/// What a client offers: permessage-deflate with any window the server likes for the client's
/// side, as browsers do.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// Reads a server's `Sec-WebSocket-Extensions` answer to [`CLIENT_OFFER`] (the client side
/// of section 5); `None` when it does not accept permessage-deflate in a valid form.
///
/// ```
/// use wsloop::proto::deflate::parse_response;
/// let params = parse_response("permessage-deflate; server_no_context_takeover; client_max_window_bits=10").unwrap();
/// assert!(params.server_no_context_takeover);
/// assert_eq!(params.client_max_window_bits, Some(10));
/// assert_eq!(parse_response("x-webkit-deflate-frame"), None);
/// ```
pub fn parse_response(value: &str) -> Option<DeflateParams> {
    let mut elements = header::list(value);
    let element = elements.next()?;
    // Section 5: the response has at most one element for this extension.
    if elements.next().is_some() {
        return None;
    }
    let extension = header::extension(element).ok()?;
    if !extension.name.eq_ignore_ascii_case(EXTENSION_NAME) {
        return None;
    }
    let offer = Offer::parse(extension.params())?;
    Some(DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits: offer.server_max_window_bits,
        // Section 7.1.2.2: in a response the parameter carries a value.
        client_max_window_bits: match offer.client_max_window_bits {
            Some(Some(bits)) => Some(bits),
            Some(None) => return None,
            None => None,
        },
    })
}

/// One permessage-deflate offer's parameters. `client_max_window_bits` is `Some(None)` when
/// the parameter came without a value.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// Reads the parameters after the extension name; `None` when the offer must be declined.
    ///
    /// RFC 7692 section 7: "A server MUST decline an extension negotiation offer for this
    /// extension if any of the following conditions are met: The negotiation offer contains
    /// an extension parameter not defined for use in an offer. The negotiation offer contains
    /// an extension parameter with an invalid value. The negotiation offer contains multiple
    /// extension parameters with the same name. The server doesn't support the offered
    /// configuration." Every configuration with valid values is supported here.
    ///
    /// A parameter that does not follow RFC 6455 section 9.1's grammar ([`header::extension`])
    /// has no valid value either. Values come unquoted, so `client_max_window_bits="10"` is 10.
    fn parse<'a>(params: impl Iterator<Item = Result<Param<'a>, Malformed>>) -> Option<Offer> {
        let mut offer = Offer::default();
        for param in params {
            let Param { name, value } = param.ok()?;
            // Parameter names are tokens; compare them as HTTP does, without case.
            let name = name.to_ascii_lowercase();
            match (name.as_str(), value) {
                // Sections 7.1.1.1 and 7.1.1.2: the context takeover parameters have no value.
                ("server_no_context_takeover", None) if !offer.server_no_context_takeover => {
                    offer.server_no_context_takeover = true;
                }
                ("client_no_context_takeover", None) if !offer.client_no_context_takeover => {
                    offer.client_no_context_takeover = true;
                }
                // Section 7.1.2.1: server_max_window_bits always has a value.
                ("server_max_window_bits", Some(value))
                    if offer.server_max_window_bits.is_none() =>
                {
                    offer.server_max_window_bits = Some(parse_window_bits(&value)?);
                }
                // Section 7.1.2.2: "This parameter has no value or a decimal integer value".
                ("client_max_window_bits", value) if offer.client_max_window_bits.is_none() => {
                    let bits = match value {
                        Some(value) => Some(parse_window_bits(&value)?),
                        None => None,
                    };
                    offer.client_max_window_bits = Some(bits);
                }
                // Unknown, duplicate, or with a value where none belongs (or none where one must).
                _ => return None,
            }
        }
        Some(offer)
    }

    /// The response to this offer under `config`.
    fn accept(&self, config: &DeflateConfig) -> DeflateParams {
        let server_bits = config
            .server_max_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let client_bits = config
            .client_max_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        DeflateParams {
            // Section 7.1.1.1: "A server accepts an extension negotiation offer that includes
            // the "server_no_context_takeover" extension parameter by including the
            // "server_no_context_takeover" extension parameter in the corresponding extension
            // negotiation response"; and "A server MAY include the "server_no_context_takeover"
            // extension parameter in an extension negotiation response even if the extension
            // negotiation offer being accepted by the extension negotiation response didn't
            // include" it.
            server_no_context_takeover: self.server_no_context_takeover
                || config.server_no_context_takeover,
            // Section 7.1.1.2: "If the received extension negotiation offer includes the
            // "client_no_context_takeover" extension parameter, the server may either ignore
            // the parameter or use the parameter to avoid taking over the LZ77 sliding window
            // unnecessarily by including the "client_no_context_takeover" extension parameter
            // in the corresponding extension negotiation response". Echoing it lets the
            // decompressor go between messages.
            client_no_context_takeover: self.client_no_context_takeover
                || config.client_no_context_takeover,
            // Section 7.1.2.1: "A server accepts an extension negotiation offer with this
            // parameter by including the "server_max_window_bits" extension parameter in the
            // extension negotiation response to send back to the client with the same or
            // smaller value as the offer", and "MAY include the "server_max_window_bits"
            // extension parameter in an extension negotiation response even if the extension
            // negotiation offer being accepted by the response didn't include" it.
            server_max_window_bits: match self.server_max_window_bits {
                Some(offered) => Some(offered.min(server_bits)),
                None => (server_bits < MAX_WINDOW_BITS).then_some(server_bits),
            },
            // Section 7.1.2.2: "If a received extension negotiation offer doesn't have the
            // "client_max_window_bits" extension parameter, the corresponding extension
            // negotiation response to the offer MUST NOT include the "client_max_window_bits"
            // extension parameter." With a value, the server may answer "with a value equal
            // to or smaller than the received value".
            client_max_window_bits: self
                .client_max_window_bits
                .map(|offered| offered.unwrap_or(MAX_WINDOW_BITS).min(client_bits)),
        }
    }
}

/// A window size from an offer.
///
/// RFC 7692 section 7.1.2.1: "This parameter has a decimal integer value without leading
/// zeroes between 8 to 15, inclusive".
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value
        .parse::<u8>()
        .ok()
        .filter(|bits| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(offers: &[&str], config: &DeflateConfig) -> Option<String> {
        negotiate(offers.iter().copied(), config).map(|p| p.to_string())
    }

    fn answer_default(offer: &str) -> Option<String> {
        answer(&[offer], &DeflateConfig::default())
    }

    #[test]
    fn negotiates_the_common_offers() {
        let cases = [
            ("permessage-deflate", Some("permessage-deflate")),
            // What browsers send.
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; client_max_window_bits=15"),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"10\"",
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                "permessage-deflate;server_max_window_bits=10",
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some("permessage-deflate; server_max_window_bits=8"),
            ),
            (
                "PerMessage-Deflate ;\tServer_No_Context_Takeover ; client_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=8",
                Some(
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=9; client_max_window_bits=8",
                ),
            ),
            ("x-webkit-deflate-frame", None),
            ("", None),
        ];
        for (offer, expected) in cases {
            assert_eq!(answer_default(offer).as_deref(), expected, "{offer}");
        }
    }

    #[test]
    fn declines_malformed_offers() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_max_window_bits=1O",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9; Server_Max_Window_Bits=10",
            "permessage-deflate; mux",
            "permessage-deflate;",
            "permessage-deflate;; client_no_context_takeover",
            "permessage-deflate; =9",
        ] {
            assert_eq!(answer_default(offer), None, "{offer}");
        }
    }

    #[test]
    fn takes_the_first_acceptable_offer() {
        let config = DeflateConfig::default();
        // A malformed first offer falls back to the next one, in the same header or the next.
        assert_eq!(
            answer(
                &[
                    "x-foo; bar=\"a,b\", permessage-deflate; server_max_window_bits=99",
                    "permessage-deflate; client_max_window_bits=12, permessage-deflate",
                ],
                &config
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=12")
        );
        // RFC 7692 section 7.1.3's example of an offer with a fallback.
        assert_eq!(
            answer(
                &[
                    "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                   permessage-deflate; client_max_window_bits"
                ],
                &config
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=15")
        );
        assert_eq!(
            answer(&["  ,  , permessage-deflate  ,"], &config).as_deref(),
            Some("permessage-deflate")
        );
    }

    /// A quoted-string that is not closed swallows the rest of its header line: no offer is
    /// read out of it, but the next header line is read afresh.
    #[test]
    fn an_unterminated_quote_hides_the_rest_of_its_line() {
        let config = DeflateConfig::default();
        assert_eq!(answer_default("x-foo; bar=\"a, permessage-deflate"), None);
        assert_eq!(
            answer(
                &[
                    "x-foo; bar=\"a, permessage-deflate; server_no_context_takeover",
                    "permessage-deflate; client_max_window_bits",
                ],
                &config
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=15")
        );
        assert_eq!(
            parse_response("permessage-deflate; client_max_window_bits=\"10"),
            None
        );
    }

    #[test]
    fn applies_the_server_config() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..DeflateConfig::default()
        };
        // The server's window is smaller than offered; the client's can be set only when the
        // client named client_max_window_bits.
        assert_eq!(
            answer(
                &["permessage-deflate; server_max_window_bits=12; client_max_window_bits"],
                &config
            )
            .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=9"
            )
        );
        assert_eq!(
            answer(&["permessage-deflate"], &config).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10"
            )
        );
        // An offer below the configured window keeps the offered value.
        assert_eq!(
            negotiate(
                ["permessage-deflate; server_max_window_bits=9; client_max_window_bits=8"],
                &config
            )
            .map(|p| (p.server_max_window_bits, p.client_max_window_bits)),
            Some((Some(9), Some(8)))
        );
        // A configured window outside 8..=15 is clamped.
        let wild = DeflateConfig {
            server_max_window_bits: 3,
            client_max_window_bits: 200,
            ..DeflateConfig::default()
        };
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"], &wild).as_deref(),
            Some("permessage-deflate; server_max_window_bits=8; client_max_window_bits=15")
        );
    }

    #[test]
    fn negotiates_from_a_parsed_request() {
        let bytes = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
              Sec-WebSocket-Extensions: x-foo\r\n\
              Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=11\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; crate::proto::MAX_HEADERS];
        let Ok(crate::proto::Status::Complete((crate::proto::Parsed::Upgrade(req), _))) =
            crate::proto::parse_request(bytes, &mut headers)
        else {
            panic!("not an upgrade");
        };
        assert_eq!(
            negotiate(req.extension_offers(), &DeflateConfig::default())
                .map(|p| p.to_string())
                .as_deref(),
            Some("permessage-deflate; client_max_window_bits=11")
        );
    }
}
