//! Connection ids: a slab index plus a generation, so an id (or a poll token) that outlives
//! its connection never reaches the connection that reuses the slot.

use std::fmt;

use mio::Token;

/// Identifies one connection for its whole life; never reused for another while the server
/// runs (until the 32-bit generation wraps around, at four billion connections).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn new(index: usize, generation: u32) -> ConnId {
        debug_assert!(index < u32::MAX as usize - 1);
        ConnId((u64::from(generation) << 32) | index as u64)
    }

    pub(crate) fn index(self) -> usize {
        (self.0 & 0xFFFF_FFFF) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
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
        (token != LISTENER && token != WAKER).then_some(ConnId(token.0 as u64))
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({}#{})", self.index(), self.generation())
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.index(), self.generation())
    }
}

/// The listening socket's token: index bits all ones, which no slab index reaches.
pub(crate) const LISTENER: Token = Token(u32::MAX as usize);
/// The cross-thread waker's token.
pub(crate) const WAKER: Token = Token(u32::MAX as usize - 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_token() {
        let id = ConnId::new(12345, 0xDEAD_BEEF);
        assert_eq!(ConnId::from_token(id.token()), Some(id));
        assert_eq!((id.index(), id.generation()), (12345, 0xDEAD_BEEF));
        assert_ne!(ConnId::new(7, 1), ConnId::new(7, 2));
        assert_eq!(ConnId::from_token(LISTENER), None);
        assert_eq!(ConnId::from_token(WAKER), None);
    }
}
