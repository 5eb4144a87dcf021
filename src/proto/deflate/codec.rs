//! Compressing and decompressing whole messages (RFC 7692 section 7.2) with the negotiated
//! windows (section 7.1.2), the no-context-takeover resets (section 7.1.1) and a bound on
//! what a message may inflate to.

use std::borrow::Cow;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::negotiation::{DeflateConfig, DeflateParams, MAX_WINDOW_BITS};
use crate::proto::error::ProtocolError;
use crate::proto::receiver::{Event, Role};

/// RFC 7692 section 7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end";
/// section 7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload of
/// the message." These are LEN and NLEN of the empty stored block a sync flush ends with.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The smallest window zlib (and zlib-rs) will deflate with; see [`zlib_window_bits`].
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

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
}
