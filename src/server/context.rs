//! What a handler can do from inside a callback: send, ping, close, and ask about any
//! connection by id.

use std::net::SocketAddr;
use std::time::Duration;

use super::app::ConnData;
use super::core::{Core, Published, SendStatus};
use super::timers::TimerId;
use super::token::ConnId;
use crate::client::{ConnectError, ConnectOptions};
use crate::handler::Message;
use crate::proto::{CloseCode, OpCode, ReadyState, SendError};

/// The server as seen from a [`Handler`](crate::Handler) callback.
///
/// Sends are queued and go out in one write per connection at the end of the loop turn (or
/// straight away for large payloads on an idle connection). Ids of closed connections are
/// safe to use: the calls answer [`SendError::NotOpen`] or [`ReadyState::Closed`].
///
/// With several loops ([`Cluster`](crate::Cluster)), a context is its own loop's: `send`,
/// `send_text`, `send_binary`, `ping`, `pong` and `close` reach a connection of another loop
/// by handing the work to that loop ([`SendStatus::Forwarded`]), and `publish` reaches
/// subscribers on every loop. What reads a connection's state (`ready_state`,
/// `buffered_amount`, `peer_addr`, `topics`, `subscribe`) sees only this loop's
/// connections: for another loop's id it answers as for a closed connection. Events about a
/// connection always come to the handler of the loop that holds it.
pub struct Context<'a, D = ()> {
    core: &'a mut Core,
    data: &'a mut ConnData<D>,
}

impl<'a, D> Context<'a, D> {
    pub(crate) fn new(core: &'a mut Core, data: &'a mut ConnData<D>) -> Context<'a, D> {
        Context { core, data }
    }

    /// The connection's [`Handler::Data`](crate::Handler::Data), as
    /// [`Upgrade::data`](crate::Upgrade::data) set it; `None` if it set none, or for a
    /// connection that is gone or belongs to another loop. Copy out what you need before
    /// sending: `let room = ctx.data(id)?.room.clone();`
    pub fn data(&self, id: ConnId) -> Option<&D> {
        self.core.get(id)?;
        self.data.get(id.index())
    }

    /// The connection's data, to change it.
    pub fn data_mut(&mut self, id: ConnId) -> Option<&mut D> {
        self.core.get(id)?;
        self.data.get_mut(id.index())
    }

    /// Sets (or replaces) the data of a connection of this loop, such as one just opened
    /// with [`connect`](Self::connect); false if it is gone or belongs to another loop.
    pub fn set_data(&mut self, id: ConnId, data: D) -> bool {
        if self.core.get(id).is_none() {
            return false;
        }
        self.data.set(id.index(), Some(data));
        true
    }

    /// Opens an outgoing connection to a `ws://` or `wss://` `url` on this loop, the
    /// browser's `new WebSocket(url, protocols)` (see [`client`](crate::client)). The id is
    /// CONNECTING at once; events follow through the handler: `on_upgrade_response` and
    /// `on_open`, or `on_error` and `on_close` (1006) if it cannot open. Only what can be
    /// told without waiting is an `Err` here: a bad URL or header, `wss://` without TLS
    /// settings, a full server.
    ///
    /// ```no_run
    /// use wsloop::client::ConnectOptions;
    /// use wsloop::{ConnId, Context, Handler, Message};
    ///
    /// /// Forwards what its clients say to an upstream server.
    /// struct Forward {
    ///     upstream: Option<ConnId>,
    /// }
    ///
    /// impl Handler for Forward {
    ///     type Data = ();
    ///
    ///     fn on_start(&mut self, ctx: &mut Context<'_>) {
    ///         let options = ConnectOptions::new().header("Authorization", "Bearer abc");
    ///         self.upstream = ctx.connect("ws://upstream.example:9001/feed", &options).ok();
    ///     }
    ///
    ///     fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
    ///         match self.upstream {
    ///             Some(upstream) if upstream != id => { let _ = ctx.send(upstream, msg); }
    ///             _ => {}
    ///         }
    ///     }
    /// }
    /// ```
    pub fn connect(&mut self, url: &str, options: &ConnectOptions) -> Result<ConnId, ConnectError> {
        self.core.connect(url, options)
    }

    /// Sends a text or binary message.
    ///
    /// `Ok(SendStatus::Backpressure)` means the message was queued but the connection's
    /// buffered amount passed the backpressure limit; `Ok(SendStatus::Dropped)` means it
    /// was over `max_buffered` and the message was not queued.
    pub fn send(&mut self, id: ConnId, message: Message<'_>) -> Result<SendStatus, SendError> {
        match message {
            Message::Text(text) => self.core.send(id, OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => self.core.send(id, OpCode::Binary, bytes),
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<SendStatus, SendError> {
        self.core.send(id, OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, id: ConnId, bytes: &[u8]) -> Result<SendStatus, SendError> {
        self.core.send(id, OpCode::Binary, bytes)
    }

    /// Sends a ping (at most 125 bytes of payload).
    pub fn ping(&mut self, id: ConnId, payload: &[u8]) -> Result<SendStatus, SendError> {
        self.core.send(id, OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong (a heartbeat that expects no answer).
    pub fn pong(&mut self, id: ConnId, payload: &[u8]) -> Result<SendStatus, SendError> {
        self.core.send(id, OpCode::Pong, payload)
    }

    /// Starts the closing handshake with `code` and `reason` (cut to 123 bytes). The
    /// connection is CLOSING until the peer answers, then closed; `on_close` follows.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.core.close(id, code, reason)
    }

    /// Drops the connection now, without a closing handshake (`ws`'s `terminate()`, for a
    /// peer that misbehaves or does not answer): no more events but `on_close` with 1006 at
    /// the end of this loop turn, and what was queued for it is discarded. A connection of
    /// another loop is terminated by that loop. Returns false if it was already gone.
    pub fn terminate(&mut self, id: ConnId) -> bool {
        self.core.terminate(id)
    }

    /// The open connections of this loop (`ws`'s `wss.clients`), in no promised order.
    /// Collect them before sending to them:
    /// `let ids: Vec<ConnId> = ctx.connections().collect();`
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.core
            .conns
            .iter()
            .filter(|(_, conn)| conn.ready_state() == ReadyState::Open)
            .map(|(index, conn)| self.core.id(index, conn.generation))
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) once, `after` from now (never
    /// sooner, to the millisecond), with `tag` to tell it apart. With `conn`, the timer belongs to that
    /// connection of this loop: it is dropped, unfired, once the connection is no longer
    /// open. Refused with [`SendError::NotOpen`] for a connection that is not open here.
    ///
    /// Timers share the loop's heap with the server's own deadlines: one entry each, no
    /// thread. A timer fires on its loop's thread, after the loop turn's I/O.
    pub fn set_timeout(
        &mut self,
        after: Duration,
        conn: Option<ConnId>,
        tag: u64,
    ) -> Result<TimerId, SendError> {
        self.add_timer(after, None, conn, tag)
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) every `every` (at least 1 ms)
    /// until cleared, or until `conn`, if given, is no longer open. A loop that falls behind
    /// skips the beats it missed instead of firing them in a burst.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use wsloop::{Context, Handler, Message, Timer};
    ///
    /// /// Tells every connection of the loop the time, once a second.
    /// struct Clock;
    ///
    /// impl Handler for Clock {
    ///     type Data = ();
    ///
    ///     fn on_open(&mut self, ctx: &mut Context<'_>, id: wsloop::ConnId) {
    ///         let _ = ctx.set_interval(Duration::from_secs(1), Some(id), 0);
    ///     }
    ///
    ///     fn on_timer(&mut self, ctx: &mut Context<'_>, timer: Timer) {
    ///         if let Some(id) = timer.conn {
    ///             let _ = ctx.send(id, Message::Text("tick"));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_interval(
        &mut self,
        every: Duration,
        conn: Option<ConnId>,
        tag: u64,
    ) -> Result<TimerId, SendError> {
        let every = every.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        self.add_timer(Duration::from_millis(every), Some(every), conn, tag)
    }

    /// Clears a timer; false if it already fired (once), was cleared, or was dropped with
    /// its connection.
    pub fn clear_timer(&mut self, timer: TimerId) -> bool {
        self.core.timers.clear(timer)
    }

    fn add_timer(
        &mut self,
        after: Duration,
        every: Option<u64>,
        conn: Option<ConnId>,
        tag: u64,
    ) -> Result<TimerId, SendError> {
        if let Some(id) = conn {
            if self.ready_state(id) != ReadyState::Open {
                return Err(SendError::NotOpen);
            }
        }
        // Loop time is whole milliseconds, truncated: one more keeps a timer from firing
        // before its delay has passed.
        let at = self.core.after(after).saturating_add(1);
        self.core
            .timers
            .add(at, every, conn, tag)
            .ok_or(SendError::TooManyTimers)
    }

    /// The browser's `readyState`; `Closed` for a connection that is gone.
    pub fn ready_state(&self, id: ConnId) -> ReadyState {
        self.core
            .get(id)
            .map_or(ReadyState::Closed, |c| c.ready_state())
    }

    /// The browser's `bufferedAmount`: bytes queued for the connection and not yet taken by
    /// the kernel.
    pub fn buffered_amount(&self, id: ConnId) -> usize {
        self.core.get(id).map_or(0, |c| c.buffered())
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.core
            .get(id)
            .and_then(|c| c.socket.as_ref()?.peer_addr().ok())
    }

    /// Subscribes an open connection of this loop to `topic`. Returns false if it is not
    /// open, was subscribed already, or is an outgoing connection (published frames are
    /// encoded once, as a server's, and a client must mask its own). Connections leave
    /// their topics when they close.
    pub fn subscribe(&mut self, id: ConnId, topic: &str) -> bool {
        self.core.subscribe(id, topic)
    }

    /// Unsubscribes the connection from `topic`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, id: ConnId, topic: &str) -> bool {
        self.core.unsubscribe(id, topic)
    }

    /// The topics the connection is subscribed to.
    pub fn topics(&self, id: ConnId) -> impl Iterator<Item = &str> + '_ {
        let topics = self.core.get(id).map_or(&[][..], |c| &c.topics[..]);
        topics.iter().filter_map(|&t| self.core.topics.name(t))
    }

    /// How many connections of this loop are subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.core
            .topics
            .find(topic)
            .map_or(0, |t| self.core.topics.subscribers(t).len())
    }

    /// Sends `message` to every subscriber of `topic` except `exclude` (typically the
    /// sender). The frame is encoded once and shared by all of them; published messages are
    /// never compressed, so one frame serves every subscriber. Subscribers see a topic's
    /// messages in publish order. Slow subscribers get the configured
    /// [`SlowSubscriber`](crate::SlowSubscriber) policy and never hold up the others.
    pub fn publish(
        &mut self,
        topic: &str,
        message: Message<'_>,
        exclude: Option<ConnId>,
    ) -> Published {
        match message {
            Message::Text(text) => self
                .core
                .publish(topic, OpCode::Text, text.as_bytes(), exclude),
            Message::Binary(bytes) => self.core.publish(topic, OpCode::Binary, bytes, exclude),
        }
    }

    /// Connections this loop holds (in any state).
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// This loop's index: 0 for a single [`Server`](crate::Server).
    pub fn loop_index(&self) -> usize {
        self.core.loop_index
    }

    /// The figures of every loop of this server, for `/metrics` or a dashboard.
    pub fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(self.core.hub.clone())
    }
}
