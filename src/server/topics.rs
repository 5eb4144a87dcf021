//! Pub/sub topics: which connections are subscribed to what, both ways, so a publish finds its
//! subscribers and a closing connection leaves all its topics.

use std::collections::HashMap;

use slab::Slab;

use super::token::ConnId;

/// A topic's index in the table; a connection keeps these rather than names.
pub(crate) type TopicId = usize;

#[derive(Debug, Default)]
pub(crate) struct Topics {
    by_name: HashMap<Box<str>, TopicId>,
    topics: Slab<Topic>,
}

/// What [`Topics::unsubscribe`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Left {
    NotSubscribed,
    /// Unsubscribed; others remain.
    Subscribed,
    /// Unsubscribed the last subscriber: the topic, named here, is gone.
    LastSubscriber(Box<str>),
}

#[derive(Debug)]
struct Topic {
    name: Box<str>,
    /// In subscription order; removal swaps the last one in (`positions` follows).
    subscribers: Vec<ConnId>,
    positions: HashMap<ConnId, usize>,
}

impl Topics {
    /// Adds `id` to `name`, creating the topic. Returns the topic and whether `id` is its
    /// first subscriber, or `None` if `id` was already subscribed.
    pub(crate) fn subscribe(&mut self, name: &str, id: ConnId) -> Option<(TopicId, bool)> {
        let topic_id = match self.by_name.get(name) {
            Some(&topic_id) => topic_id,
            None => {
                let topic_id = self.topics.insert(Topic {
                    name: name.into(),
                    subscribers: Vec::new(),
                    positions: HashMap::new(),
                });
                self.by_name.insert(name.into(), topic_id);
                topic_id
            }
        };
        let topic = &mut self.topics[topic_id];
        if topic.positions.contains_key(&id) {
            return None;
        }
        topic.positions.insert(id, topic.subscribers.len());
        topic.subscribers.push(id);
        Some((topic_id, topic.subscribers.len() == 1))
    }

    /// Removes `id` from the topic, dropping the topic when it is left empty.
    pub(crate) fn unsubscribe(&mut self, topic_id: TopicId, id: ConnId) -> Left {
        let Some(topic) = self.topics.get_mut(topic_id) else {
            return Left::NotSubscribed;
        };
        let Some(position) = topic.positions.remove(&id) else {
            return Left::NotSubscribed;
        };
        topic.subscribers.swap_remove(position);
        if let Some(&moved) = topic.subscribers.get(position) {
            topic.positions.insert(moved, position);
        }
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(topic_id);
            self.by_name.remove(&topic.name);
            return Left::LastSubscriber(topic.name);
        }
        Left::Subscribed
    }

    pub(crate) fn find(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn name(&self, topic_id: TopicId) -> Option<&str> {
        self.topics.get(topic_id).map(|t| &*t.name)
    }

    /// The subscribers of a topic, in no promised order.
    pub(crate) fn subscribers(&self, topic_id: TopicId) -> &[ConnId] {
        self.topics.get(topic_id).map_or(&[], |t| &t.subscribers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_and_unsubscribe_keep_both_sides_right() {
        let mut topics = Topics::default();
        let (a, b, c) = (
            ConnId::new(0, 1, 1),
            ConnId::new(0, 2, 1),
            ConnId::new(0, 3, 1),
        );
        let (room, first) = topics.subscribe("room", a).unwrap();
        assert!(first);
        assert_eq!(topics.subscribe("room", b), Some((room, false)));
        assert_eq!(topics.subscribe("room", c), Some((room, false)));
        assert_eq!(topics.subscribe("room", a), None, "already subscribed");
        assert_eq!(topics.unsubscribe(room, a), Left::Subscribed);
        assert_eq!(topics.unsubscribe(room, a), Left::NotSubscribed);
        let mut left = topics.subscribers(room).to_vec();
        left.sort();
        assert_eq!(left, [b, c]);
        assert_eq!(topics.unsubscribe(room, c), Left::Subscribed);
        assert_eq!(
            topics.unsubscribe(room, b),
            Left::LastSubscriber("room".into())
        );
        assert_eq!(topics.find("room"), None, "an empty topic is dropped");
    }
}
