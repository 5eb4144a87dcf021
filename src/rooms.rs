//! The binary's handler: echo, plus chat rooms for fan-out.
//!
//! A connection to `/chat/ROOM` joins topic `ROOM`; every message it sends is published to
//! everyone else in the room. Any other path echoes, like [`Echo`](crate::Echo). This is what
//! `wsloop-load broadcast` drives.

use crate::handler::{Handler, Message, Upgrade};
use crate::proto::Request;
use crate::server::{ConnId, Context};

/// The path prefix of the chat rooms.
pub const ROOM_PREFIX: &str = "/chat/";

/// Echo on every path, chat rooms under [`ROOM_PREFIX`].
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoRooms;

impl Handler for EchoRooms {
    fn on_upgrade(&mut self, req: &Request<'_, '_>) -> Upgrade {
        match room_of(req.path()) {
            Some("") => Upgrade::reject(404, "a room needs a name: /chat/NAME"),
            Some(room) => Upgrade::accept().subscribe(room),
            None => Upgrade::accept(),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, id: ConnId, msg: Message<'_>) {
        // A room member is subscribed to exactly its room.
        let room = ctx.topics(id).next().map(str::to_owned);
        match room {
            Some(room) => {
                ctx.publish(&room, msg, Some(id));
            }
            None => {
                let _ = ctx.send(id, msg);
            }
        }
    }
}

/// The room a request path names, without any query string.
fn room_of(path: &str) -> Option<&str> {
    let path = path.split('?').next().unwrap_or(path);
    path.strip_prefix(ROOM_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_come_from_the_path() {
        assert_eq!(room_of("/chat/lobby"), Some("lobby"));
        assert_eq!(room_of("/chat/lobby?token=1"), Some("lobby"));
        assert_eq!(room_of("/chat/"), Some(""));
        assert_eq!(room_of("/"), None);
        assert_eq!(room_of("/chatroom"), None);
    }
}
