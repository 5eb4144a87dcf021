//! Source addresses for outgoing connections (`--source 127.0.0.1-127.0.0.50`).
//!
//! One source address can hold only as many connections to one server port as there are
//! ephemeral ports (about 28,000 by default), so large runs spread connections over several
//! loopback addresses; all of 127.0.0.0/8 answers on Linux without configuration.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::share::Share;

/// An inclusive range of IPv4 addresses, or one IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRange {
    first: IpAddr,
    count: u32,
}

impl SourceRange {
    /// Parses `A` or `A-B` (IPv4, `A <= B`).
    pub fn parse(text: &str) -> Result<SourceRange, String> {
        let bad = |e: std::net::AddrParseError| format!("bad source address in {text:?}: {e}");
        match text.split_once('-') {
            None => Ok(SourceRange {
                first: text.trim().parse().map_err(bad)?,
                count: 1,
            }),
            Some((a, b)) => {
                let a: Ipv4Addr = a.trim().parse().map_err(bad)?;
                let b: Ipv4Addr = b.trim().parse().map_err(bad)?;
                let (lo, hi) = (u32::from(a), u32::from(b));
                if hi < lo {
                    return Err(format!("source range {text:?} runs backwards"));
                }
                Ok(SourceRange {
                    first: IpAddr::V4(a),
                    count: hi - lo + 1,
                })
            }
        }
    }

    /// How many addresses the range holds.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// The `i`-th address, wrapping around: connection `i` binds to `nth(i)`, spreading
    /// connections evenly.
    pub fn nth(&self, i: u64) -> IpAddr {
        match self.first {
            IpAddr::V4(v4) => {
                let offset = (i % u64::from(self.count)) as u32;
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) + offset))
            }
            v6 => v6,
        }
    }

    /// Whether every address is loopback (remote sources only make sense with remote targets).
    pub fn is_loopback(&self) -> bool {
        self.nth(0).is_loopback() && self.nth(u64::from(self.count) - 1).is_loopback()
    }

    /// An agent's part of the range: consecutive addresses, as many for each agent as can be
    /// (one address each when there are fewer addresses than agents).
    pub fn part(&self, share: Share) -> SourceRange {
        let (len, count, index) = (
            u64::from(self.count),
            share.count as u64,
            share.index as u64,
        );
        if len < count {
            return SourceRange {
                first: self.nth(index),
                count: 1,
            };
        }
        let (lo, hi) = (index * len / count, (index + 1) * len / count);
        SourceRange {
            first: self.nth(lo),
            count: (hi - lo) as u32,
        }
    }
}

/// As `--source` takes it: `A` or `A-B`.
impl fmt::Display for SourceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.count {
            1 => write!(f, "{}", self.first),
            n => write!(f, "{}-{}", self.first, self.nth(u64::from(n) - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_spread_round_robin() {
        let r = SourceRange::parse("127.0.0.1-127.0.0.3").unwrap();
        assert_eq!(r.len(), 3);
        let picked: Vec<String> = (0..4).map(|i| r.nth(i).to_string()).collect();
        assert_eq!(picked, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert!(r.is_loopback());
    }

    #[test]
    fn single_addresses_and_errors() {
        let r = SourceRange::parse("::1").unwrap();
        assert_eq!((r.len(), r.nth(5).to_string()), (1, "::1".to_string()));
        assert!(SourceRange::parse("127.0.0.9-127.0.0.1").is_err());
        assert!(SourceRange::parse("localhost").is_err());
        assert!(!SourceRange::parse("10.0.0.1").unwrap().is_loopback());
    }

    #[test]
    fn agents_get_consecutive_parts() {
        let r = SourceRange::parse("127.0.0.1-127.0.0.10").unwrap();
        let parts: Vec<String> = (0..3)
            .map(|index| r.part(Share { index, count: 3 }).to_string())
            .collect();
        assert_eq!(
            parts,
            [
                "127.0.0.1-127.0.0.3",
                "127.0.0.4-127.0.0.6",
                "127.0.0.7-127.0.0.10"
            ]
        );
        let two = SourceRange::parse("127.0.0.1-127.0.0.2").unwrap();
        assert_eq!(
            two.part(Share { index: 2, count: 3 }).to_string(),
            "127.0.0.1"
        );
        for text in ["127.0.0.1-127.0.0.50", "::1", "10.0.0.7"] {
            let r = SourceRange::parse(text).unwrap();
            assert_eq!(r.to_string(), text);
            assert_eq!(r.part(Share::WHOLE), r);
        }
    }
}
