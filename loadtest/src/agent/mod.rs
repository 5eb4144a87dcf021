//! Load from several machines: `wsloop-load agent` on each, and any mode run with `--agents`
//! as their controller. Each agent runs its share of the connections and rate on a start time
//! shared through measured clock offsets; the controller merges their histograms exactly.

pub mod clock;
pub mod controller;
pub mod histogram;
pub mod protocol;
pub mod row;
pub mod serve;
