//! A connection's send queue, and the pool its buffers come from.
//!
//! A connection that has nothing queued holds no buffer: the buffer goes back to the loop's
//! pool when it drains, so idle connections cost no send memory and a busy loop does not
//! allocate per message.

use std::io::{self, IoSlice, Write};

/// Buffers larger than this are freed rather than pooled, so one burst does not pin memory.
const POOLED_CAPACITY_MAX: usize = 256 << 10;
/// Buffers kept at most; more are freed.
const POOL_SIZE_MAX: usize = 1024;

/// Spare send buffers shared by all connections of one loop.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

impl BufPool {
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_default()
    }

    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0
            && buf.capacity() <= POOLED_CAPACITY_MAX
            && self.free.len() < POOL_SIZE_MAX
        {
            buf.clear();
            self.free.push(buf);
        }
    }
}

/// Bytes waiting for the socket: `buf[start..]`.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    buf: Vec<u8>,
    start: usize,
}

impl OutQueue {
    /// The browser's `bufferedAmount`: bytes queued and not yet taken by the kernel.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer to append frames to, taken from the pool if the queue holds none.
    pub(crate) fn writer(&mut self, pool: &mut BufPool) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = pool.take();
        }
        &mut self.buf
    }

    /// The queue's buffer as it is, for replies that are rare enough (pongs, close frames) to
    /// not need a pooled one.
    pub(crate) fn raw_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes as much as the socket takes. Returns `Ok(true)` when the queue is now empty
    /// (its buffer back in the pool), `Ok(false)` when the kernel refused the rest.
    pub(crate) fn flush<W: Write>(
        &mut self,
        socket: &mut W,
        pool: &mut BufPool,
    ) -> io::Result<bool> {
        while self.start < self.buf.len() {
            match socket.write(&self.buf[self.start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.compact();
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.release(pool);
        Ok(true)
    }

    /// Sends a frame with nothing queued ahead of it: header and payload in one vectored
    /// write straight from the caller's memory, queueing only what the kernel refused.
    pub(crate) fn write_direct<W: Write>(
        &mut self,
        socket: &mut W,
        header: &[u8],
        payload: &[u8],
        pool: &mut BufPool,
    ) -> io::Result<()> {
        debug_assert!(self.is_empty());
        let total = header.len() + payload.len();
        let mut written = 0;
        while written < total {
            let result = if written < header.len() {
                socket.write_vectored(&[IoSlice::new(&header[written..]), IoSlice::new(payload)])
            } else {
                socket.write(&payload[written - header.len()..])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if written < header.len() {
            self.writer(pool).extend_from_slice(&header[written..]);
            written = header.len();
        }
        if written < total {
            self.writer(pool)
                .extend_from_slice(&payload[written - header.len()..]);
        }
        Ok(())
    }

    /// Hands the buffer back to the pool (connection closing or queue drained).
    pub(crate) fn release(&mut self, pool: &mut BufPool) {
        self.start = 0;
        pool.give(std::mem::take(&mut self.buf));
    }

    /// Moves the unsent bytes to the front so appends do not grow the buffer without end.
    fn compact(&mut self) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes, then would block.
    struct Trickle {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room).min(3);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queues_what_the_kernel_refuses_and_keeps_order() {
        let mut pool = BufPool::default();
        let mut queue = OutQueue::default();
        let mut socket = Trickle {
            taken: Vec::new(),
            room: 5,
        };
        queue
            .write_direct(&mut socket, b"HEAD", b"payload", &mut pool)
            .unwrap();
        assert_eq!(queue.len(), 6);
        queue.writer(&mut pool).extend_from_slice(b"+next");
        socket.room = 100;
        assert!(queue.flush(&mut socket, &mut pool).unwrap());
        assert_eq!(socket.taken, b"HEADpayload+next");
        assert!(queue.is_empty());
        assert_eq!(queue.buf.capacity(), 0, "an empty queue holds no buffer");
        assert_eq!(pool.free.len(), 1, "the buffer went back to the pool");
    }
}
