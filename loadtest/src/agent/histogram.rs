//! Histograms on the wire: HdrHistogram's V2 format in base64, so that the controller merges
//! agents' histograms exactly (`Histogram::add`) rather than averaging their percentiles.
//!
//! Used as `#[serde(with = "...")]` on histogram fields. The V2 header is checked before the
//! decoder sees it: it would otherwise allocate whatever length and value range a peer
//! claims.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer as V2Reader, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serializer};

use crate::stats::new_histogram;

/// The V2 format's first four bytes (uncompressed, 64-bit counts).
const V2_COOKIE: u32 = 0x1c84_9313;
/// Cookie, payload length, normalizing offset, significant digits, lowest and highest
/// trackable values, integer-to-double ratio.
const HEADER_LEN: usize = 40;
/// The highest value an agent's histogram may claim to track: about 12 days in
/// microseconds. Ours start at 60 s and grow only to hold what was recorded.
const MAX_TRACKABLE: u64 = 1 << 40;

/// `histogram` in V2 form, base64-encoded.
pub fn encode(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .expect("a histogram serializes into memory");
    BASE64.encode(bytes)
}

/// Reads back what [`encode`] wrote, into a histogram like the workers' (auto-resizing, so
/// that others can be added to it); `Err` says what was wrong with it.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    check_header(&bytes)?;
    let decoded: Histogram<u64> = V2Reader::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not decode: {e}"))?;
    let mut histogram = new_histogram();
    histogram
        .add(&decoded)
        .map_err(|e| format!("histogram does not merge: {e:?}"))?;
    Ok(histogram)
}

/// Accepts only the shape [`new_histogram`] makes, with a payload exactly as long as the
/// bytes that follow the header.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or("histogram shorter than its header")?;
    let u32_at = |i: usize| u32::from_be_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_be_bytes(header[i..i + 8].try_into().expect("8 bytes"));
    let reference = new_histogram();
    if u32_at(0) != V2_COOKIE {
        return Err("not an uncompressed V2 histogram".into());
    }
    if u32_at(4) as usize != bytes.len() - HEADER_LEN {
        return Err("histogram payload length does not match".into());
    }
    if u32_at(12) != u32::from(reference.sigfig()) || u64_at(16) != reference.low() {
        return Err("histogram precision or lowest value is not the generator's".into());
    }
    if u64_at(24) > MAX_TRACKABLE {
        return Err(format!(
            "histogram tracks values up to {}, more than {MAX_TRACKABLE}",
            u64_at(24)
        ));
    }
    Ok(())
}

/// Serde: a histogram field as its [`encode`]d text.
pub fn serialize<S: Serializer>(
    histogram: &Histogram<u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&encode(histogram))
}

/// Serde: a histogram field from its [`encode`]d text.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Histogram<u64>, D::Error> {
    let text = String::deserialize(deserializer)?;
    decode(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record;
    use std::time::Duration;

    /// The same samples recorded once into one histogram and once spread over three
    /// "agents", whose histograms go through the wire and are merged: the two are equal,
    /// count for count, so every percentile of the merge is the union's.
    #[test]
    fn merged_agents_equal_the_union() {
        let mut union = new_histogram();
        let mut agents = [new_histogram(), new_histogram(), new_histogram()];
        let mut state = 0x9e37_79b9_u64;
        for i in 0..30_000u64 {
            // A long tail: mostly tens of microseconds, now and then seconds (beyond the
            // initial 60 s bound once, to cover a resized histogram).
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let micros = match i {
                0 => 90_000_000,
                _ if state >> 60 == 0 => (state >> 20) % 3_000_000,
                _ => (state >> 40) % 500,
            };
            let sample = Duration::from_micros(micros);
            record(&mut union, sample);
            record(&mut agents[(state >> 33) as usize % 3], sample);
        }
        let mut merged = new_histogram();
        for agent in &agents {
            assert!(!agent.is_empty());
            merged.add(decode(&encode(agent)).unwrap()).unwrap();
        }
        assert_eq!(merged, union);
        assert_eq!(merged.len(), 30_000);
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                union.value_at_quantile(q),
                "{q}"
            );
        }
        // An empty histogram travels too.
        assert!(decode(&encode(&new_histogram())).unwrap().is_empty());
    }

    fn header(payload_len: u32, sigfig: u32, low: u64, high: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&V2_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&sigfig.to_be_bytes());
        bytes.extend_from_slice(&low.to_be_bytes());
        bytes.extend_from_slice(&high.to_be_bytes());
        bytes.extend_from_slice(&1.0f64.to_be_bytes());
        bytes
    }

    #[test]
    fn refuses_histograms_that_would_allocate_what_they_claim() {
        let decode_bytes = |bytes: &[u8]| decode(&BASE64.encode(bytes));
        // A payload of 4 GiB announced, none sent.
        let err = decode_bytes(&header(u32::MAX, 3, 1, 60_000_000)).unwrap_err();
        assert!(err.contains("payload length"), "{err}");
        // Five significant digits up to u64::MAX would be a 100 MB counts array.
        let err = decode_bytes(&header(0, 5, 1, u64::MAX)).unwrap_err();
        assert!(err.contains("precision"), "{err}");
        let err = decode_bytes(&header(0, 3, 1, u64::MAX)).unwrap_err();
        assert!(err.contains("tracks values up to"), "{err}");
        assert!(decode_bytes(&header(0, 3, 1, 60_000_000)).is_ok());
        assert!(decode_bytes(&[0x1c, 0x84]).is_err());
        assert!(decode("not base64!").is_err());
        let mut compressed = header(0, 3, 1, 60_000_000);
        compressed[3] = 0x14;
        assert!(decode_bytes(&compressed)
            .unwrap_err()
            .contains("uncompressed"));
    }
}
