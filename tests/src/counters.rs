//! Per-port counter snapshots (`stats --json`) and the deltas between two of them, as the
//! namespace tests compare them with what a step should have moved.

use std::collections::BTreeMap;

use xennet_common::fwd::fixtures::host;

/// Per-port counters from `stats --json`: interface → counter → value.
pub type Counters = BTreeMap<String, BTreeMap<String, u64>>;

/// Counter deltas: (port, counter) → how much it moved. Counters that did not move are absent.
pub type Deltas = BTreeMap<(String, String), u64>;

/// One counter of a snapshot (0 when the port or counter is absent).
#[must_use]
pub fn get(counters: &Counters, port: &str, counter: &str) -> u64 {
    counters
        .get(port)
        .and_then(|c| c.get(counter))
        .copied()
        .unwrap_or(0)
}

/// Every counter that changed between two snapshots: (port, counter) → delta. A counter absent
/// from `before` counts from 0; one absent from `after` (a port removed) is left out. The
/// arithmetic is the fixtures' [`xennet_common::fwd::fixtures::host::delta`], which the kernel
/// test runs and the host runner use too.
///
/// # Panics
/// When a counter went backwards: counters only grow while a port exists, so that is a bug
/// (of the agent or of the test), never a delta.
#[must_use]
pub fn delta(before: &Counters, after: &Counters) -> Deltas {
    host::delta(&by_port_and_name(before), &by_port_and_name(after))
}

/// A snapshot keyed as the deltas are: (port, counter) → value.
fn by_port_and_name(c: &Counters) -> Deltas {
    c.iter()
        .flat_map(|(port, cs)| cs.iter().map(|(n, v)| ((port.clone(), n.clone()), *v)))
        .collect()
}

/// The expected deltas, written as (port, counter, delta) rows.
#[must_use]
pub fn expect(rows: &[(&str, &str, u64)]) -> Deltas {
    rows.iter()
        .map(|(p, c, v)| (((*p).to_string(), (*c).to_string()), *v))
        .collect()
}

/// Only the deltas of `ports`.
#[must_use]
pub fn only_ports(d: &Deltas, ports: &[&str]) -> Deltas {
    d.iter()
        .filter(|((p, _), _)| ports.contains(&p.as_str()))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// One counter delta (0 when it did not move).
#[must_use]
pub fn at(d: &Deltas, port: &str, counter: &str) -> u64 {
    d.get(&(port.to_string(), counter.to_string()))
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(rows: &[(&str, &str, u64)]) -> Counters {
        let mut c = Counters::new();
        for (p, n, v) in rows {
            c.entry((*p).to_string())
                .or_default()
                .insert((*n).to_string(), *v);
        }
        c
    }

    #[test]
    fn delta_lists_what_moved() {
        let before = snap(&[("a", "rx", 5), ("a", "tx", 7), ("gone", "rx", 3)]);
        let after = snap(&[("a", "rx", 5), ("a", "tx", 9), ("new", "rx", 2)]);
        let d = delta(&before, &after);
        assert_eq!(d, expect(&[("a", "tx", 2), ("new", "rx", 2)]));
        assert_eq!(at(&d, "a", "tx"), 2);
        assert_eq!(at(&d, "a", "rx"), 0);
        assert_eq!(only_ports(&d, &["new"]), expect(&[("new", "rx", 2)]));
        assert_eq!(get(&after, "a", "tx"), 9);
        assert_eq!(get(&after, "b", "tx"), 0);
    }

    #[test]
    #[should_panic(expected = "counter rx of a went backwards: 5 before, 4 after")]
    fn delta_refuses_a_counter_going_backwards() {
        let _ = delta(&snap(&[("a", "rx", 5)]), &snap(&[("a", "rx", 4)]));
    }
}
