//! The permessage-deflate extension (RFC 7692): negotiating it in the opening handshake and
//! compressing and decompressing whole messages, with no I/O.
//!
//! - [`negotiate`] reads the client's `Sec-WebSocket-Extensions` offers and returns the
//!   [`DeflateParams`] to answer with (their `Display` is the response header value).
//! - [`PerMessageDeflate`] is one connection's compression state. Its zlib streams are made on
//!   first use and dropped after each message when the negotiated parameters forbid context
//!   takeover in that direction, so an idle connection holds no zlib memory where the
//!   parameters allow it.
//!
//! The frame layer is not here: the receiver hands out [`Event::Compressed`] for messages with
//! RSV1 set, and the sender sets RSV1 on the first frame of a message it compressed.
//!
//! What a zlib stream costs (from zlib-rs's allocation layout): a compressor about 370 KiB at
//! 15 window bits (its 128 KiB hash table does not shrink with the window, so still about
//! 240 KiB at 9 bits); a decompressor about 40 KiB whatever the window, since zlib-rs always
//! allocates the full 32 KiB. With context takeover a stream stays for the life of the
//! connection once a compressed message has gone that way.

use std::borrow::Cow;
use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::ProtocolError;
use super::handshake::is_token;
use super::receiver::{Event, Role};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// RFC 7692 section 7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end";
/// section 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload of
/// the message." These are LEN and NLEN of the empty stored block a sync flush ends with.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib (and zlib-rs) will deflate with; see [`zlib_window_bits`].
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// The LZ77 window when no `*_max_window_bits` limits it (32 KiB, DEFLATE's largest).
const MAX_WINDOW_BITS: u8 = 15;

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
    /// [`PerMessageDeflate::should_compress`]).
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
    fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// The window the client compresses with.
    fn client_window_bits(&self) -> u8 {
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
/// header values (as [`Request::extension_offers`](super::Request::extension_offers) gives
/// them). `None` declines: the response then names no extension.
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
        .flat_map(|value| split_unquoted(value, b','))
        .filter_map(|element| {
            let mut parts = split_unquoted(element, b';');
            let name = trim_ows(parts.next()?);
            if !name.eq_ignore_ascii_case(EXTENSION_NAME) {
                return None;
            }
            let offer = Offer::parse(parts);
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
    let mut elements = split_unquoted(value, b',');
    let element = elements.next()?;
    // Section 5: the response has at most one element for this extension.
    if elements.next().is_some() {
        return None;
    }
    let mut parts = split_unquoted(element, b';');
    if !trim_ows(parts.next()?).eq_ignore_ascii_case(EXTENSION_NAME) {
        return None;
    }
    let offer = Offer::parse(parts)?;
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
    fn parse<'a>(params: impl Iterator<Item = &'a str>) -> Option<Offer> {
        let mut offer = Offer::default();
        for param in params {
            let (name, value) = parse_param(param)?;
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

/// Splits `extension-param = token [ "=" (token | quoted-string) ]` (RFC 6455 section 9.1)
/// into its name and unquoted value; `None` when it is not of that form.
fn parse_param(param: &str) -> Option<(&str, Option<Cow<'_, str>>)> {
    let (name, value) = match param.split_once('=') {
        Some((name, value)) => (trim_ows(name), Some(trim_ows(value))),
        None => (trim_ows(param), None),
    };
    if !is_token(name) {
        return None;
    }
    let value = match value {
        Some(value) => Some(unquote(value)?),
        None => None,
    };
    Some((name, value))
}

/// A token, or a quoted-string whose content is a token: RFC 6455 section 9.1, "When using
/// the quoted-string syntax variant, the value after quoted-string unescaping MUST conform to
/// the 'token' ABNF."
fn unquote(value: &str) -> Option<Cow<'_, str>> {
    let value = match value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) (RFC 9110 section 5.6.4).
        Some(inner) if inner.contains('\\') => {
            let mut unescaped = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                unescaped.push(if c == '\\' { chars.next()? } else { c });
            }
            Cow::Owned(unescaped)
        }
        Some(inner) => Cow::Borrowed(inner),
        None => Cow::Borrowed(value),
    };
    is_token(&value).then_some(value)
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

/// Removes optional whitespace (SP and HTAB, RFC 9110 section 5.6.3) around a list element.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Splits `s` at `separator` where it is not inside a quoted-string, so that a `,` or `;` in
/// a (malformed) quoted value does not cut an offer in two. Empty list elements (allowed by
/// the `#` rule of RFC 9110 section 5.6.1) are skipped only for `,`.
fn split_unquoted(s: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, b) in s.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if !quoted && b == separator {
                // `separator` is ASCII, so `i` and `i + 1` are char boundaries.
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
    .filter(move |element| separator != b',' || !trim_ows(element).is_empty())
}

/// The window zlib is given for a negotiated window of `bits`.
///
/// zlib has refused an 8-bit window for raw deflate since 1.2.9, and zlib-rs and flate2 refuse
/// it too. But a zlib deflater never refers further back than its window less MIN_LOOKAHEAD
/// (262 bytes), so with 9 bits at most 250 bytes: within the 256 bytes a peer that asked for
/// 8 bits keeps. So 8 is met with 9, as Node's zlib (and so `ws`) does; the
/// `compressor_honours_the_negotiated_window` test checks the 250 bytes. For inflating, a
/// window larger than the peer's is always safe.
fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// zlib streams for messages that keep no context between them (`*_no_context_takeover`),
/// shared by all the connections of one thread: a stream is reset after each message rather
/// than dropped and made again (a compressor is about 370 KiB and takes microseconds to set
/// up), and connections in that mode hold no zlib memory at all, busy or idle.
#[derive(Debug, Default)]
pub struct SharedStreams {
    /// Compressors by (zlib window bits, level).
    deflaters: Vec<(u8, u32, Compress)>,
    /// Decompressors by zlib window bits.
    inflaters: Vec<(u8, Decompress)>,
}

impl SharedStreams {
    fn deflater(&mut self, level: Compression, bits: u8) -> &mut Compress {
        let key = (bits, level.level());
        let index = match self.deflaters.iter().position(|(b, l, _)| (*b, *l) == key) {
            Some(index) => index,
            None => {
                let stream = Compress::new_with_window_bits(level, false, bits);
                self.deflaters.push((bits, level.level(), stream));
                self.deflaters.len() - 1
            }
        };
        &mut self.deflaters[index].2
    }

    fn inflater(&mut self, bits: u8) -> &mut Decompress {
        let index = match self.inflaters.iter().position(|(b, _)| *b == bits) {
            Some(index) => index,
            None => {
                self.inflaters
                    .push((bits, Decompress::new_with_window_bits(false, bits)));
                self.inflaters.len() - 1
            }
        };
        &mut self.inflaters[index].1
    }
}

/// One connection's compression state: a compressor for the messages it sends and a
/// decompressor for those it receives, each made on first use.
#[derive(Debug)]
pub struct PerMessageDeflate {
    params: DeflateParams,
    level: Compression,
    threshold: usize,
    /// zlib window bits of the compressor (ours: server_* in the server role).
    deflate_bits: u8,
    /// Drop the compressor after each message: no context takeover for what we send.
    deflate_reset: bool,
    /// zlib window bits of the decompressor (the peer's: client_* in the server role).
    inflate_bits: u8,
    /// Drop the decompressor after each message: no context takeover for what we receive.
    inflate_reset: bool,
    deflater: Option<Compress>,
    inflater: Option<Decompress>,
}

impl PerMessageDeflate {
    /// The state for one connection in `role` with the negotiated `params`; `config` gives the
    /// level and threshold. No zlib stream is made yet.
    ///
    /// The `server_*` parameters govern what the server compresses and the `client_*` ones
    /// what the client compresses (RFC 7692 section 7.1), so the two roles swap them.
    pub fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> PerMessageDeflate {
        let (send_bits, send_reset, recv_bits, recv_reset) = match role {
            Role::Server => (
                params.server_window_bits(),
                params.server_no_context_takeover,
                params.client_window_bits(),
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_window_bits(),
                params.client_no_context_takeover,
                params.server_window_bits(),
                params.server_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            params,
            level: Compression::new(config.level.min(9)),
            threshold: config.threshold,
            deflate_bits: zlib_window_bits(send_bits),
            deflate_reset: send_reset,
            inflate_bits: zlib_window_bits(recv_bits),
            inflate_reset: recv_reset,
            deflater: None,
            inflater: None,
        }
    }

    /// The negotiated parameters.
    pub fn params(&self) -> &DeflateParams {
        &self.params
    }

    /// Whether a message of `len` bytes should be compressed. RSV1 is set per message (RFC
    /// 7692 section 6), so any message may go uncompressed, and short ones gain nothing.
    pub fn should_compress(&self, len: usize) -> bool {
        len > 0 && len >= self.threshold
    }

    /// Appends `payload` compressed for a message with RSV1 set.
    ///
    /// RFC 7692 section 7.2.1: "1. Compress all the octets of the payload of the message using
    /// DEFLATE. 2. If the resulting data does not end with an empty DEFLATE block with no
    /// compression (the "BTYPE" bits are set to 00), append an empty DEFLATE block with no
    /// compression to the tail end. 3. Remove 4 octets (that are 0x00 0x00 0xff 0xff) from
    /// the tail end." A sync flush ends the output with exactly that empty block.
    ///
    /// With server_no_context_takeover (section 7.1.1.1) each message starts from an empty
    /// LZ77 window, so the compressor comes from `shared` and is reset afterwards.
    pub fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>, shared: &mut SharedStreams) {
        let start = out.len();
        let (level, bits) = (self.level, self.deflate_bits);
        let deflater = if self.deflate_reset {
            shared.deflater(level, bits)
        } else {
            self.deflater
                .get_or_insert_with(|| Compress::new_with_window_bits(level, false, bits))
        };
        let mut input = payload;
        loop {
            if out.len() == out.capacity() {
                // Room for a well-compressed message at once; Vec doubles it as needed.
                out.reserve(payload.len() / 4 + 64);
            }
            let before = deflater.total_in();
            // Fails only on a misused stream (a bug here), never because of the payload.
            deflater
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("a sync flush on a valid deflate stream cannot fail");
            input = &input[(deflater.total_in() - before) as usize..];
            // zlib: with output space left over, the flush is complete.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        // Steps 2 and 3 together: a sync flush ends with the empty stored block, so removing
        // its last 4 bytes leaves the block's header. But zlib emits nothing at all for an
        // empty message after an earlier flush (context takeover): then step 2 appends the
        // whole block, 00 00 00 ff ff, and step 3 leaves its first byte, 0x00, as in the
        // RFC's example of an empty message (section 7.2.3.6).
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            debug_assert_eq!(
                out.len(),
                start,
                "a sync flush that emits ends in 00 00 ff ff"
            );
            out.push(0x00);
        }
        if self.deflate_reset {
            deflater.reset();
        }
    }

    /// Appends the decompressed payload of a message that arrived with RSV1 set, failing with
    /// [`ProtocolError::MessageTooBig`] as soon as it would pass `max_message_size` bytes.
    ///
    /// `out` grows in bounded steps and never beyond `max_message_size + 1` bytes past its
    /// length on entry, so a small message that inflates to gigabytes costs no more memory than
    /// a message at the limit. Corrupt data is [`ProtocolError::BadCompression`] (close code
    /// 1002): with the shared LZ77 window in an unknown state, no later message could be read.
    /// On error `out` is left as it was and the decompressor is dropped.
    ///
    /// With client_no_context_takeover (section 7.1.1.2) the client starts each message from
    /// an empty LZ77 window, so there is nothing to keep: the decompressor comes from `shared`
    /// and is reset afterwards.
    ///
    /// UTF-8 validation of a text message is the caller's (or use [`Self::inflate_message`]).
    pub fn inflate(
        &mut self,
        compressed: &[u8],
        max_message_size: usize,
        out: &mut Vec<u8>,
        shared: &mut SharedStreams,
    ) -> Result<(), ProtocolError> {
        let start = out.len();
        let bits = self.inflate_bits;
        let inflater = if self.inflate_reset {
            shared.inflater(bits)
        } else {
            self.inflater
                .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits))
        };
        let limits = Limits {
            start,
            max: max_message_size,
            // The first step is sized from the input; later ones double the output.
            first_step: compressed.len().saturating_mul(4).clamp(256, 64 * 1024),
        };
        // Section 7.2.2: "1. Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the
        // payload of the message. 2. Decompress the resulting data using DEFLATE." Feeding the
        // tail as a second input avoids copying the message.
        let result = feed(inflater, compressed, out, &limits).and_then(|ended| {
            // A message that ended its DEFLATE stream exactly (BFINAL with nothing after it)
            // gets no tail: it would open a stored block in the next stream.
            if ended {
                Ok(true)
            } else {
                feed(inflater, &TAIL, out, &limits)
            }
        });
        if result.is_err() {
            out.truncate(start);
        }
        if self.inflate_reset {
            inflater.reset(false);
        } else if result.is_err() {
            self.inflater = None;
        }
        result.map(drop)
    }

    /// Decompresses a whole message (the parts of [`Event::Compressed`]) into a text or
    /// binary event, validating text as UTF-8: it is the decompressed payload that RFC 6455's
    /// rule for text messages applies to.
    pub fn inflate_message(
        &mut self,
        text: bool,
        compressed: &[u8],
        max_message_size: usize,
        shared: &mut SharedStreams,
    ) -> Result<Event<'static>, ProtocolError> {
        let mut data = Vec::new();
        self.inflate(compressed, max_message_size, &mut data, shared)?;
        if text {
            let text = String::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Event::Text(Cow::Owned(text)))
        } else {
            Ok(Event::Binary(Cow::Owned(data)))
        }
    }
}

/// Where one message's inflated output may go.
struct Limits {
    /// `out.len()` before the message.
    start: usize,
    /// The most bytes the message may inflate to.
    max: usize,
    /// The first growth of `out`.
    first_step: usize,
}

impl Limits {
    /// Makes room in a full `out`: doubles what the message has so far, but never past one
    /// byte over the limit (that byte tells a message at the limit from one beyond it).
    fn grow(&self, out: &mut Vec<u8>) {
        let ceiling = self.start.saturating_add(self.max).saturating_add(1);
        let so_far = out.len() - self.start;
        let step = so_far
            .max(self.first_step)
            .min(ceiling.saturating_sub(out.len()))
            .max(1);
        out.reserve_exact(step);
    }
}

/// Inflates all of `input` into `out` with a sync flush. Returns whether the DEFLATE stream
/// ended (a block with BFINAL set) exactly at the end of `input`.
///
/// RFC 7692 section 7.2.3.4 allows a block with BFINAL set followed by more data ("The last 1
/// octet (0x00) contains the header bits with "BFINAL" set to 0 and "BTYPE" set to 00"), so
/// after the end of a stream the decompressor is reset and goes on with the rest.
fn feed(
    inflater: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    limits: &Limits,
) -> Result<bool, ProtocolError> {
    loop {
        if out.len() == out.capacity() {
            limits.grow(out);
        }
        let before = inflater.total_in();
        let status = inflater
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|_| ProtocolError::BadCompression)?;
        let used = (inflater.total_in() - before) as usize;
        input = &input[used..];
        if out.len() - limits.start > limits.max {
            return Err(ProtocolError::MessageTooBig);
        }
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => {
                inflater.reset(false);
                if input.is_empty() {
                    return Ok(true);
                }
            }
            // With output space left over, everything the input holds has come out.
            _ if room_left && input.is_empty() => return Ok(false),
            // Space and input but no progress: zlib has nothing it can do with the input.
            _ if room_left && used == 0 => return Err(ProtocolError::BadCompression),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(params: DeflateParams) -> PerMessageDeflate {
        PerMessageDeflate::new(Role::Server, params, &DeflateConfig::default())
    }

    fn client(params: DeflateParams) -> PerMessageDeflate {
        PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default())
    }

    fn inflate(pmd: &mut PerMessageDeflate, compressed: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        pmd.inflate(compressed, 1 << 20, &mut out, &mut SharedStreams::default())
            .map(|()| out)
    }

    fn deflate(pmd: &mut PerMessageDeflate, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pmd.deflate(payload, &mut out, &mut SharedStreams::default());
        out
    }

    /// Text that compresses the way chat or JSON traffic does, different for each `seed`.
    fn sample(seed: usize, len: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(len + 64);
        let mut i = seed;
        while text.len() < len {
            text.extend_from_slice(
                format!(
                    "{{\"id\":{i},\"user\":\"u{}\",\"text\":\"hello #{}\"}} ",
                    i % 7,
                    i * 31
                )
                .as_bytes(),
            );
            i += 1;
        }
        text.truncate(len);
        text
    }

    /// Bytes with no repeats for DEFLATE to find (xorshift64).
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    const HELLO: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc_7692_hello_in_one_compressed_block() {
        // Section 7.2.3.1: "the payload of a message containing "Hello" compressed".
        assert_eq!(
            inflate(&mut server(DeflateParams::default()), HELLO).unwrap(),
            b"Hello"
        );
        assert_eq!(
            deflate(&mut server(DeflateParams::default()), b"Hello"),
            HELLO
        );
    }

    #[test]
    fn rfc_7692_sharing_the_window_between_messages() {
        // Section 7.2.3.2: the second "Hello" refers back into the first message.
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        let mut rx = server(DeflateParams::default());
        assert_eq!(inflate(&mut rx, HELLO).unwrap(), b"Hello");
        assert_eq!(inflate(&mut rx, &second).unwrap(), b"Hello");
        // zlib-rs encodes the reference differently (02 13 00 00), no less validly.
        let mut tx = server(DeflateParams::default());
        let mut rx = client(DeflateParams::default());
        for _ in 0..3 {
            let compressed = deflate(&mut tx, b"Hello");
            assert_eq!(inflate(&mut rx, &compressed).unwrap(), b"Hello");
        }
        assert!(deflate(&mut tx, b"Hello").len() < HELLO.len());
        // Without the first message the reference points at nothing.
        assert_eq!(
            inflate(&mut server(DeflateParams::default()), &second),
            Err(ProtocolError::BadCompression)
        );
    }

    #[test]
    fn rfc_7692_other_block_forms() {
        let cases: [&[u8]; 3] = [
            // Section 7.2.3.3: a DEFLATE block with no compression.
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            // Section 7.2.3.4: a block with BFINAL set, then a 0x00 octet.
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            // Section 7.2.3.5: two DEFLATE blocks in one message.
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
        ];
        for payload in cases {
            let mut rx = server(DeflateParams::default());
            assert_eq!(inflate(&mut rx, payload).unwrap(), b"Hello", "{payload:x?}");
            // The stream is still usable for the next message.
            assert_eq!(inflate(&mut rx, HELLO).unwrap(), b"Hello", "{payload:x?}");
        }
    }

    #[test]
    fn bfinal_without_the_extra_octet_still_decodes_the_next_message() {
        let mut rx = server(DeflateParams::default());
        let bfinal_only = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&mut rx, &bfinal_only).unwrap(), b"Hello");
        assert_eq!(inflate(&mut rx, HELLO).unwrap(), b"Hello");
    }

    #[test]
    fn empty_and_incompressible_messages_round_trip() {
        let noise = noise(70_000);
        for payload in [&b""[..], b"x", &noise] {
            let mut tx = server(DeflateParams::default());
            let mut rx = client(DeflateParams::default());
            let compressed = deflate(&mut tx, payload);
            assert_eq!(inflate(&mut rx, &compressed).unwrap(), payload);
        }
    }

    /// Every parameter combination and window size, both directions, several messages each.
    #[test]
    fn round_trips_with_every_parameter_combination() {
        for server_nct in [false, true] {
            for client_nct in [false, true] {
                for bits in 8..=15 {
                    let params = DeflateParams {
                        server_no_context_takeover: server_nct,
                        client_no_context_takeover: client_nct,
                        server_max_window_bits: Some(bits),
                        client_max_window_bits: Some(bits),
                    };
                    let mut srv = server(params);
                    let mut cli = client(params);
                    for seed in 0..4 {
                        let message = sample(seed, 100 + seed * 3000);
                        let down = deflate(&mut srv, &message);
                        assert_eq!(inflate(&mut cli, &down).unwrap(), message, "{params:?}");
                        let up = deflate(&mut cli, &message);
                        assert_eq!(inflate(&mut srv, &up).unwrap(), message, "{params:?}");
                        assert_eq!(srv.deflater.is_some(), !server_nct);
                        assert_eq!(srv.inflater.is_some(), !client_nct);
                        assert_eq!(cli.deflater.is_some(), !client_nct);
                        assert_eq!(cli.inflater.is_some(), !server_nct);
                    }
                }
            }
        }
    }

    #[test]
    fn no_context_takeover_makes_each_message_stand_alone() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut tx = server(params);
        let message = sample(1, 500);
        let first = deflate(&mut tx, &message);
        let second = deflate(&mut tx, &message);
        assert_eq!(first, second);
        // A fresh decompressor reads the second one alone.
        assert_eq!(inflate(&mut client(params), &second).unwrap(), message);
        // With context takeover the repeat is a back-reference and far shorter.
        let mut shared = server(DeflateParams::default());
        deflate(&mut shared, &message);
        assert!(deflate(&mut shared, &message).len() < second.len() / 4);
    }

    /// Data that repeats `distance` bytes back compresses to about half only when the
    /// compressor may refer that far. zlib refers at most its window less 262 bytes back, so
    /// the 9-bit window that stands in for 8 bits never reaches past 256 bytes.
    #[test]
    fn compressor_honours_the_negotiated_window() {
        let repeat_compresses = |bits: u8, distance: usize| {
            let params = DeflateParams {
                server_max_window_bits: Some(bits),
                ..DeflateParams::default()
            };
            let block = noise(distance);
            let message = [&block[..], &block[..]].concat();
            let compressed = deflate(&mut server(params), &message);
            assert_eq!(inflate(&mut client(params), &compressed).unwrap(), message);
            compressed.len() < distance * 3 / 2
        };
        assert!(!repeat_compresses(8, 257));
        assert!(repeat_compresses(8, 250));
        for bits in 9..=15 {
            let window = 1 << bits;
            assert!(!repeat_compresses(bits, window + 1), "{bits} bits");
            assert!(repeat_compresses(bits, window - 262), "{bits} bits");
        }
    }

    #[test]
    fn stops_a_decompression_bomb_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let best = DeflateConfig {
            level: 9,
            ..DeflateConfig::default()
        };
        let bomb = PerMessageDeflate::new(Role::Client, DeflateParams::default(), &best);
        let bomb = deflate(&mut { bomb }, &zeros);
        assert!(bomb.len() < 12 << 10, "{} bytes", bomb.len());
        let max = 1 << 20;
        let mut rx = server(DeflateParams::default());
        let mut out = Vec::new();
        assert_eq!(
            rx.inflate(&bomb, max, &mut out, &mut SharedStreams::default()),
            Err(ProtocolError::MessageTooBig)
        );
        assert!(out.is_empty());
        assert!(out.capacity() <= max + 1, "capacity {}", out.capacity());
        assert!(rx.inflater.is_none());
    }

    #[test]
    fn the_limit_is_inclusive_and_counts_only_this_message() {
        let message = sample(3, 5000);
        let compressed = deflate(&mut client(DeflateParams::default()), &message);
        let mut out = b"earlier".to_vec();
        server(DeflateParams::default())
            .inflate(
                &compressed,
                message.len(),
                &mut out,
                &mut SharedStreams::default(),
            )
            .unwrap();
        assert_eq!(&out[7..], &message[..]);
        let mut out = b"earlier".to_vec();
        assert_eq!(
            server(DeflateParams::default()).inflate(
                &compressed,
                message.len() - 1,
                &mut out,
                &mut SharedStreams::default(),
            ),
            Err(ProtocolError::MessageTooBig)
        );
        assert_eq!(out, b"earlier");
    }

    #[test]
    fn corrupt_data_fails_and_drops_the_decompressor() {
        let mut rx = server(DeflateParams::default());
        // BTYPE 11 is reserved (RFC 1951 section 3.2.3).
        assert_eq!(
            inflate(&mut rx, &[0xff, 0xff]),
            Err(ProtocolError::BadCompression)
        );
        assert!(rx.inflater.is_none());
        // A stored block whose NLEN is not the complement of LEN.
        assert_eq!(
            inflate(&mut rx, &[0x00, 0x05, 0x00, 0x00, 0x00, b'H']),
            Err(ProtocolError::BadCompression)
        );
        // A stream that ended, then garbage.
        assert_eq!(
            inflate(&mut rx, &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff]),
            Err(ProtocolError::BadCompression)
        );
    }

    #[test]
    fn zlib_state_is_made_on_first_use_only() {
        let mut pmd = server(DeflateParams::default());
        assert!(pmd.inflater.is_none() && pmd.deflater.is_none());
        inflate(&mut pmd, HELLO).unwrap();
        assert!(pmd.inflater.is_some() && pmd.deflater.is_none());
        deflate(&mut pmd, b"Hello");
        assert!(pmd.deflater.is_some());
    }

    #[test]
    fn inflate_message_validates_text() {
        let mut tx = client(DeflateParams::default());
        let mut rx = server(DeflateParams::default());
        let good = deflate(&mut tx, "héllo".as_bytes());
        assert_eq!(
            rx.inflate_message(true, &good, 100, &mut SharedStreams::default()),
            Ok(Event::Text("héllo".into()))
        );
        let bad = deflate(&mut tx, &[b'a', 0xff]);
        assert_eq!(
            rx.inflate_message(true, &bad, 100, &mut SharedStreams::default()),
            Err(ProtocolError::InvalidUtf8)
        );
        let binary = deflate(&mut tx, &[b'a', 0xff]);
        assert_eq!(
            rx.inflate_message(false, &binary, 100, &mut SharedStreams::default()),
            Ok(Event::Binary(vec![b'a', 0xff].into()))
        );
    }

    #[test]
    fn threshold_decides_what_is_compressed() {
        let config = DeflateConfig {
            threshold: 10,
            ..DeflateConfig::default()
        };
        let pmd = PerMessageDeflate::new(Role::Server, DeflateParams::default(), &config);
        assert!(!pmd.should_compress(9));
        assert!(pmd.should_compress(10));
    }

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
        let mut headers = [httparse::EMPTY_HEADER; super::super::MAX_HEADERS];
        let Ok(super::super::Status::Complete((super::super::Parsed::Upgrade(req), _))) =
            super::super::parse_request(bytes, &mut headers)
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
