//! Connection ids: the loop that owns the connection, a slab index and a generation, so an
//! id (or a poll token) that outlives its connection never reaches the connection that
//! reuses the slot, and any thread can tell which loop to ask about it.

use std::fmt;

use mio::Token;

/// Bits of a [`ConnId`] that hold the slab index: up to 16,777,214 connections per loop.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// The most event loops one server runs: what the 8 loop bits of a [`ConnId`] can name.
pub const MAX_LOOPS: usize = 256;
/// Slab indexes from this one up are reserved for the listener and waker tokens.
pub(crate) const MAX_INDEX: usize = INDEX_MASK as usize - 1;

/// Identifies one connection for its whole life; never reused for another while the server
/// runs (until a loop's 32-bit generation wraps around, at four billion connections).
///
/// Layout: generation (32 bits), loop (8 bits), slab index (24 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn new(loop_index: usize, index: usize, generation: u32) -> ConnId {
        debug_assert!(index < MAX_INDEX && loop_index < MAX_LOOPS);
        ConnId((u64::from(generation) << 32) | ((loop_index as u64) << INDEX_BITS) | index as u64)
    }

    pub(crate) fn index(self) -> usize {
        (self.0 & INDEX_MASK) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The event loop that owns the connection, from 0 to the number of loops less one.
    pub fn loop_index(self) -> usize {
        ((self.0 >> INDEX_BITS) & 0xFF) as usize
    }

    /// The id as a number, for logs and maps.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub(crate) fn token(self) -> Token {
        Token(self.0 as usize)
    }

    /// The connection a poll token stands for, unless it is one of the reserved tokens.
    pub(crate) fn from_token(token: Token) -> Option<ConnId> {
        let id = ConnId(token.0 as u64);
        (id.index() < MAX_INDEX).then_some(id)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({self})")
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}#{}",
            self.loop_index(),
            self.index(),
            self.generation()
        )
    }
}

/// The listening socket's token: index bits all ones, which no slab index reaches.
pub(crate) const LISTENER: Token = Token(INDEX_MASK as usize);
/// The cross-thread waker's token.
pub(crate) const WAKER: Token = Token(INDEX_MASK as usize - 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_token() {
        let id = ConnId::new(200, 12345, 0xDEAD_BEEF);
        assert_eq!(ConnId::from_token(id.token()), Some(id));
        assert_eq!(
            (id.loop_index(), id.index(), id.generation()),
            (200, 12345, 0xDEAD_BEEF)
        );
        assert_ne!(ConnId::new(0, 7, 1), ConnId::new(0, 7, 2));
        assert_ne!(ConnId::new(0, 7, 1), ConnId::new(1, 7, 1));
        let last = ConnId::new(MAX_LOOPS - 1, MAX_INDEX - 1, u32::MAX);
        assert_eq!(
            (last.loop_index(), last.index(), last.generation()),
            (MAX_LOOPS - 1, MAX_INDEX - 1, u32::MAX)
        );
        assert_eq!(ConnId::from_token(LISTENER), None);
        assert_eq!(ConnId::from_token(WAKER), None);
    }
}
