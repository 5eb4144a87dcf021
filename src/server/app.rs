//! The application as a loop holds it: the handler, and the data it keeps per connection
//! ([`Handler::Data`]), apart from the loop's own state so both can be borrowed at once.

use crate::handler::Handler;

pub(crate) struct App<H: Handler> {
    pub(crate) handler: H,
    pub(crate) data: ConnData<H::Data>,
}

impl<H: Handler> App<H> {
    pub(crate) fn new(handler: H) -> App<H> {
        App {
            handler,
            data: ConnData::default(),
        }
    }
}

/// Each connection's [`Handler::Data`], by slab index: set when the upgrade is accepted,
/// dropped when the connection leaves the slab. Callers check the id's generation against
/// the slab first, so a reused slot never shows the previous connection's data.
pub(crate) struct ConnData<D> {
    slots: Vec<Option<D>>,
}

impl<D> Default for ConnData<D> {
    fn default() -> ConnData<D> {
        ConnData { slots: Vec::new() }
    }
}

impl<D> ConnData<D> {
    pub(crate) fn get(&self, index: usize) -> Option<&D> {
        self.slots.get(index)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut D> {
        self.slots.get_mut(index)?.as_mut()
    }

    pub(crate) fn set(&mut self, index: usize, data: Option<D>) {
        if index >= self.slots.len() {
            if data.is_none() {
                return;
            }
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = data;
    }

    /// Drops the slot's data, when its connection has gone.
    pub(crate) fn clear(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = None;
        }
    }
}
