//! The access log ([`Config::access_log`](crate::Config::access_log)): one line per
//! connection when it ends, with who it was, what it asked for and what it exchanged.
//!
//! Records are kept by slab index beside the slab, and only when the log is on: a server
//! without it spends no memory per connection on it. Lines go to the `log` facade at `info`
//! under the target [`TARGET`], with their fields as key-values (`log`'s `kv`), so a logger
//! can print them as text or JSON.

use std::net::SocketAddr;
use std::time::Instant;

use crate::proto::CloseCode;

/// The `log` target of access lines.
pub const TARGET: &str = "wsloop::access";

/// Who started the closing handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closer {
    /// The peer's close frame came first.
    Peer,
    /// The server sent its close first (the application, a protocol error, shutdown).
    Server,
}

impl Closer {
    fn name(closer: Option<Closer>) -> &'static str {
        match closer {
            Some(Closer::Peer) => "peer",
            Some(Closer::Server) => "server",
            // The TCP connection ended without a closing handshake.
            None => "none",
        }
    }
}

/// One connection's line, filled in as it goes.
#[derive(Debug)]
struct Record {
    peer: SocketAddr,
    accepted: Instant,
    /// The request's path, once read; without the query, which may carry secrets.
    path: Box<str>,
    /// 101 for a WebSocket, else the HTTP status answered; 0 if no answer was sent.
    status: u16,
    protocol: Option<Box<str>>,
    messages_in: u64,
    bytes_in: u64,
    messages_out: u64,
    bytes_out: u64,
    code: Option<CloseCode>,
    closer: Option<Closer>,
}

/// The records of one loop's connections, by slab index.
#[derive(Debug, Default)]
pub(crate) struct AccessLog {
    records: Vec<Option<Record>>,
}

impl AccessLog {
    /// A connection was taken into slot `index`.
    pub(crate) fn open(&mut self, index: usize, peer: SocketAddr) {
        if index >= self.records.len() {
            self.records.resize_with(index + 1, || None);
        }
        self.records[index] = Some(Record {
            peer,
            accepted: Instant::now(),
            path: "".into(),
            status: 0,
            protocol: None,
            messages_in: 0,
            bytes_in: 0,
            messages_out: 0,
            bytes_out: 0,
            code: None,
            closer: None,
        });
    }

    fn get(&mut self, index: usize) -> Option<&mut Record> {
        self.records.get_mut(index)?.as_mut()
    }

    /// The request for `path` was read.
    pub(crate) fn requested(&mut self, index: usize, path: &str) {
        if let Some(record) = self.get(index) {
            record.path = path.into();
        }
    }

    /// The request was answered with `status`: 101 and the subprotocol for an upgrade.
    pub(crate) fn answered(&mut self, index: usize, status: u16, protocol: Option<&str>) {
        if let Some(record) = self.get(index) {
            record.status = status;
            record.protocol = protocol.map(Into::into);
        }
    }

    /// Counts a message received, of `len` payload bytes.
    #[inline]
    pub(crate) fn received(&mut self, index: usize, len: usize) {
        if let Some(record) = self.get(index) {
            record.messages_in += 1;
            record.bytes_in += len as u64;
        }
    }

    /// Counts a message sent, of `len` payload bytes.
    #[inline]
    pub(crate) fn sent(&mut self, index: usize, len: usize) {
        if let Some(record) = self.get(index) {
            record.messages_out += 1;
            record.bytes_out += len as u64;
        }
    }

    /// A close frame went out or came in: the first one decides who closed.
    pub(crate) fn closing(&mut self, index: usize, by: Closer) {
        if let Some(record) = self.get(index) {
            record.closer.get_or_insert(by);
        }
    }

    /// The close `on_close` reported.
    pub(crate) fn closed(&mut self, index: usize, code: CloseCode) {
        if let Some(record) = self.get(index) {
            record.code = Some(code);
        }
    }

    /// The connection left slot `index`: its line is written.
    pub(crate) fn finish(&mut self, index: usize) {
        let Some(record) = self.records.get_mut(index).and_then(Option::take) else {
            return;
        };
        let duration_ms = record.accepted.elapsed().as_secs_f64() * 1e3;
        log::info!(
            target: TARGET,
            peer:% = record.peer,
            path = &*record.path,
            status = record.status,
            protocol = record.protocol.as_deref().unwrap_or(""),
            duration_ms = (duration_ms * 1e3).round() / 1e3,
            messages_in = record.messages_in,
            bytes_in = record.bytes_in,
            messages_out = record.messages_out,
            bytes_out = record.bytes_out,
            close_code = record.code.map_or(0, |code| code.0),
            closed_by = Closer::name(record.closer);
            "connection ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_stays_small() {
        // What `--access-log` costs per connection (README): keep the figure true.
        assert!(std::mem::size_of::<Option<Record>>() <= 128);
    }
}
