//! How a run's connections are dealt out: to agents, and within a process to its threads.
//!
//! Connections are numbered over the whole run and dealt round-robin, so part `i` of `n`
//! holds connections `i`, `i + n`, `i + 2n`... Every schedule (open-loop send slots, the
//! publishers, the connection ramp) is computed from these run-wide numbers, which is why the
//! sends of all agents interleave as evenly as those of one process.

use serde::{Deserialize, Serialize};

/// Part `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub index: usize,
    pub count: usize,
}

impl Share {
    /// The whole run, in one part.
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    /// Part `index` of this part, split `count` ways again (a thread of an agent).
    pub fn split(self, index: usize, count: usize) -> Share {
        Share {
            index: self.index + self.count * index,
            count: self.count * count,
        }
    }

    /// How many of `total` connections or messages, dealt round-robin, fall to this part.
    pub fn of(self, total: u64) -> u64 {
        let (index, count) = (self.index as u64, self.count as u64);
        total / count + u64::from(index < total % count)
    }

    /// The run-wide numbers of this part's connections, out of `total`.
    pub fn ids(self, total: u64) -> impl Iterator<Item = u64> {
        (self.index as u64..total).step_by(self.count)
    }

    /// The position of run-wide connection `id` among this part's (`id` must be one of
    /// them): what picks its source address from the part's own range.
    pub fn position(self, id: u64) -> u64 {
        id / self.count as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_of_agents_deal_every_connection_once() {
        let (total, agents, threads) = (23u64, 3, 2);
        let mut seen = Vec::new();
        for agent in 0..agents {
            let share = Share {
                index: agent,
                count: agents,
            };
            let mut own = 0;
            for thread in 0..threads {
                let lane = share.split(thread, threads);
                let ids: Vec<u64> = lane.ids(total).collect();
                assert_eq!(ids.len() as u64, lane.of(total));
                // A thread's connections are consecutive positions within its agent.
                for (k, &id) in ids.iter().enumerate() {
                    assert_eq!(share.position(id), (thread + threads * k) as u64);
                }
                own += ids.len() as u64;
                seen.extend(ids);
            }
            assert_eq!(own, share.of(total));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..total).collect::<Vec<_>>());
        assert_eq!(Share::WHOLE.of(total), total);
        assert_eq!(Share::WHOLE.split(1, 4), Share { index: 1, count: 4 });
    }
}
