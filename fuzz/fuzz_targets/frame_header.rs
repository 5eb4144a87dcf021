//! `FrameHeader::parse` on arbitrary bytes.
//!
//! Never panics, and when it parses a header:
//! - the length it reports is what the first two bytes announce (2, plus 2 or 8 length bytes,
//!   plus 4 mask bytes) and no more than the input;
//! - the rules it promises hold: no reserved opcode, the 64-bit length's top bit clear, control
//!   frames final and at most 125 bytes;
//! - every shorter prefix is `Partial` (a read boundary anywhere inside a header only asks
//!   for more bytes), and the header alone parses the same;
//! - encoding the header and parsing it back gives the same header, in `encoded_len` bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsloop::proto::{FrameHeader, Status, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let parsed = FrameHeader::parse(data);
    let (header, len) = match parsed {
        Ok(Status::Complete(parsed)) => parsed,
        Ok(Status::Partial) => {
            // Partial only when the announced header is longer than the input.
            if data.len() >= 2 {
                let len_bytes = match data[1] & 0x7f {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                let need = 2 + len_bytes + if data[1] & 0x80 != 0 { 4 } else { 0 };
                assert!(data.len() < need, "Partial with the whole header present");
            }
            return;
        }
        Err(err) => {
            // An error is decided by the header bytes alone: more input cannot undo it.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0u8; MAX_HEADER_LEN]);
            assert_eq!(FrameHeader::parse(&longer), Err(err));
            return;
        }
    };

    let len_bytes = match data[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let announced = 2 + len_bytes + if header.mask.is_some() { 4 } else { 0 };
    assert_eq!(len, announced);
    assert!(len <= data.len() && len <= MAX_HEADER_LEN);
    assert_eq!(header.payload_len >> 63, 0);
    if header.opcode.is_control() {
        assert!(header.fin);
        assert!(header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
    }
    assert_eq!(header.rsv & !0x70, 0);

    for cut in 0..len {
        assert_eq!(
            FrameHeader::parse(&data[..cut]),
            Ok(Status::Partial),
            "cut {cut}"
        );
    }
    assert_eq!(
        FrameHeader::parse(&data[..len]),
        Ok(Status::Complete((header, len)))
    );

    let mut out = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut out);
    assert_eq!(n, header.encoded_len());
    assert!(n <= len, "the encoder's form is the shortest");
    assert_eq!(
        FrameHeader::parse(&out[..n]),
        Ok(Status::Complete((header, n)))
    );
});
