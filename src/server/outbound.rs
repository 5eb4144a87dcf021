//! A connection's send queue, and the pool its buffers come from.
//!
//! A connection that has nothing queued holds no buffer: the buffer goes back to the loop's
//! pool when it drains, so idle connections cost no send memory and a busy loop does not
//! allocate per message.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use crate::proto::{FrameSpec, OpCode};

/// Buffers larger than this are freed rather than pooled, so one burst does not pin memory.
/// Large enough for a turn's batched replies to one connection (up to a read buffer's worth,
/// 256 KiB by default, plus headers): a queue that outgrew a smaller cap was freed after
/// every flush and its next buffer, allocated by mmap, page-faulted in anew (a quarter of
/// the server's time in a 16 KiB echo, by `perf`).
const POOLED_CAPACITY_MAX: usize = 512 << 10;
/// The most memory the pool keeps in all; past it, returned buffers are freed. Enough for
/// the send queues of hundreds of busy connections, little next to what they cost anyway.
const POOL_BYTES_MAX: usize = 4 << 20;

/// Spare send buffers shared by all connections of one loop.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    /// Total capacity of `free`.
    bytes: usize,
}

impl BufPool {
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let buf = self.free.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }

    /// Keeps `buf` for the next [`take`](BufPool::take), the larger of it and the previous
    /// one on top: a small buffer taken for a large batch would grow while the large one
    /// idled beneath it, and the pool would swell towards its cap for nothing.
    pub(crate) fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity > 0
            && capacity <= POOLED_CAPACITY_MAX
            && self.bytes + capacity <= POOL_BYTES_MAX
        {
            buf.clear();
            self.bytes += capacity;
            self.free.push(buf);
            let n = self.free.len();
            if n >= 2 && self.free[n - 2].capacity() > capacity {
                self.free.swap(n - 2, n - 1);
            }
        }
    }
}

/// A frame built once and queued for many connections (a publish to a topic).
pub(crate) type SharedFrame = Arc<[u8]>;

/// Encodes a server frame once, to be shared by every loop and subscriber it goes to.
pub(crate) fn shared_frame(opcode: OpCode, payload: &[u8]) -> SharedFrame {
    let (header, header_len) = FrameSpec::server(opcode).header(payload.len());
    let mut bytes = Vec::with_capacity(header_len + payload.len());
    bytes.extend_from_slice(&header[..header_len]);
    bytes.extend_from_slice(payload);
    bytes.into()
}

/// Bytes waiting for the socket, oldest first: `chunks`, then `tail`.
///
/// Small frames are copied into `tail`, so a turn's replies go out in one write; a published
/// frame is queued by reference, so fan-out to many connections costs no copy each.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Chunk>,
    chunks_len: usize,
    tail: Vec<u8>,
    /// Bytes already written of the first chunk (of `tail` when there are no chunks).
    written: usize,
}

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(SharedFrame),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(bytes) => bytes,
            Chunk::Shared(frame) => frame,
        }
    }
}

/// Chunks handed to one vectored write at most.
const MAX_IOVECS: usize = 64;

impl OutQueue {
    /// The browser's `bufferedAmount`: bytes queued and not yet taken by the kernel.
    pub(crate) fn len(&self) -> usize {
        self.chunks_len + self.tail.len() - self.written
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer to append frames to, taken from the pool if the queue holds none.
    pub(crate) fn writer(&mut self, pool: &mut BufPool) -> &mut Vec<u8> {
        if self.tail.capacity() == 0 {
            self.tail = pool.take();
        }
        &mut self.tail
    }

    /// The tail as it is, for replies rare enough (pongs, close frames) to not need a pooled
    /// buffer.
    pub(crate) fn raw_buf(&mut self) -> &mut Vec<u8> {
        &mut self.tail
    }

    /// Copies a frame, header then payload, behind everything queued so far. A function of
    /// its own, not inlined: inlined into the much larger `Core::send`, the two copies became
    /// calls of the generic slice append (906 against 888 instructions per 20 B echo under
    /// callgrind).
    pub(crate) fn push_frame(&mut self, header: &[u8], payload: &[u8], pool: &mut BufPool) {
        let out = self.writer(pool);
        out.reserve(header.len() + payload.len());
        out.extend_from_slice(header);
        out.extend_from_slice(payload);
    }

    /// Queues a shared frame behind everything queued so far.
    pub(crate) fn push_shared(&mut self, frame: SharedFrame) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.chunks_len += tail.len();
            self.chunks.push_back(Chunk::Owned(tail));
        }
        self.chunks_len += frame.len();
        self.chunks.push_back(Chunk::Shared(frame));
    }

    /// Writes as much as the socket takes, in vectored writes. Returns `Ok(true)` when the
    /// queue is now empty (its buffers back in the pool), `Ok(false)` when the kernel refused
    /// the rest.
    pub(crate) fn flush<W: Write>(
        &mut self,
        socket: &mut W,
        pool: &mut BufPool,
    ) -> io::Result<bool> {
        while !self.is_empty() {
            let result = if self.chunks.is_empty() {
                socket.write(&self.tail[self.written..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let pieces = self.chunks.iter().map(Chunk::bytes).chain([&self.tail[..]]);
                let mut count = 0;
                for (slot, piece) in slices.iter_mut().zip(pieces) {
                    let skip = if count == 0 { self.written } else { 0 };
                    *slot = IoSlice::new(&piece[skip..]);
                    count += 1;
                }
                socket.write_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n, pool),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.release(pool);
        Ok(true)
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize, pool: &mut BufPool) {
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                self.written += n;
                return;
            };
            let left = front.bytes().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.chunks_len -= front.bytes().len();
            if let Some(Chunk::Owned(buf)) = self.chunks.pop_front() {
                pool.give(buf);
            }
        }
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

    /// Empties the queue and hands its buffers back to the pool (queue drained, or the
    /// connection closing).
    pub(crate) fn release(&mut self, pool: &mut BufPool) {
        // Taken, not drained: an idle connection keeps no chunk list either.
        for chunk in std::mem::take(&mut self.chunks) {
            if let Chunk::Owned(buf) = chunk {
                pool.give(buf);
            }
        }
        self.chunks_len = 0;
        self.written = 0;
        pool.give(std::mem::take(&mut self.tail));
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
        assert_eq!(queue.tail.capacity(), 0, "an empty queue holds no buffer");
        assert_eq!(pool.free.len(), 1, "the buffer went back to the pool");
    }

    #[test]
    fn the_larger_buffer_is_taken_first() {
        let mut pool = BufPool::default();
        pool.give(Vec::with_capacity(64 << 10));
        pool.give(Vec::with_capacity(64));
        assert!(pool.take().capacity() >= 64 << 10);
        assert!(pool.take().capacity() >= 64);
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn shared_frames_keep_their_place_in_line() {
        let mut pool = BufPool::default();
        let mut queue = OutQueue::default();
        let mut socket = Trickle {
            taken: Vec::new(),
            room: 4,
        };
        let frame: SharedFrame = Arc::from(&b"SHARED"[..]);
        queue.push_shared(frame.clone());
        assert!(
            !queue.flush(&mut socket, &mut pool).unwrap(),
            "room for 4 bytes only"
        );
        queue.writer(&mut pool).extend_from_slice(b"-a-");
        queue.push_shared(frame.clone());
        queue.writer(&mut pool).extend_from_slice(b"-b");
        assert_eq!(queue.len(), 2 + 3 + 6 + 2);
        socket.room = 100;
        assert!(queue.flush(&mut socket, &mut pool).unwrap());
        assert_eq!(socket.taken, b"SHARED-a-SHARED-b");
        assert_eq!(
            Arc::strong_count(&frame),
            1,
            "queued references are released"
        );
    }
}
