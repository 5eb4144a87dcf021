//! How far an agent's clock is from its controller's, measured as NTP does: the controller
//! notes when it sent a probe and when the answer came back, the agent when it read its
//! clock in between. The probe with the shortest round trip bounds the error best.

/// One probe's three readings, nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The controller's clock when the probe left.
    pub sent_ns: u64,
    /// The agent's clock when it answered.
    pub agent_ns: u64,
    /// The controller's clock when the answer arrived.
    pub received_ns: u64,
}

/// The agent's clock against the controller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// Agent minus controller: positive when the agent's clock is ahead.
    pub offset_ns: i64,
    /// The round trip of the probe it comes from; the offset is right to within half of it
    /// (however the trip divided between the two directions).
    pub rtt_ns: u64,
}

/// The offset from the probe with the shortest round trip, taking the agent's reading as made
/// halfway through it; `None` without probes.
pub fn estimate(probes: &[Probe]) -> Option<Offset> {
    let best = probes
        .iter()
        .min_by_key(|p| p.received_ns.saturating_sub(p.sent_ns))?;
    let rtt_ns = best.received_ns.saturating_sub(best.sent_ns);
    let midpoint = i128::from(best.sent_ns) + i128::from(rtt_ns / 2);
    let offset = (i128::from(best.agent_ns) - midpoint).clamp(i64::MIN.into(), i64::MAX.into());
    Some(Offset {
        offset_ns: offset as i64,
        rtt_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_round_trip_wins() {
        let t = 1_700_000_000_000_000_000u64;
        let probes = [
            // 400 us round trip, answered late in it: would say +150 us.
            Probe {
                sent_ns: t,
                agent_ns: t + 5_000_350_000,
                received_ns: t + 400_000,
            },
            // 40 us round trip, the agent 5 s ahead.
            Probe {
                sent_ns: t + 1_000_000,
                agent_ns: t + 5_001_020_000,
                received_ns: t + 1_040_000,
            },
        ];
        let offset = estimate(&probes).unwrap();
        assert_eq!(
            offset,
            Offset {
                offset_ns: 5_000_000_000,
                rtt_ns: 40_000
            }
        );
        // An agent behind the controller.
        let behind = Probe {
            sent_ns: t,
            agent_ns: t - 2_000_000 + 500,
            received_ns: t + 1_000,
        };
        assert_eq!(estimate(&[behind]).unwrap().offset_ns, -2_000_000);
        assert_eq!(estimate(&[]), None);
    }
}
