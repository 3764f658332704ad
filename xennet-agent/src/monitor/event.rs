//! One event as the monitor shows it: the datapath's record resolved to names (port, reason,
//! verdict), the filters of the command line, and the two printers (text, JSON).

use serde::Serialize;
use xennet_common::{
    monitor::{Event, verdict_name},
    stats::Stat,
};

use crate::stats::ifname;

/// An event with names, as `monitor --json` prints it (one object a line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// Wall-clock time the monitor read it (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// `forward`, `flood`, `pass` or `drop`.
    pub verdict: &'static str,
    /// The outcome counter: a drop reason (`drop_tagged_on_access`…) or an action.
    pub reason: String,
    /// Ingress interface name (`ifindex N` when it has none here).
    pub port: String,
    /// Ingress ifindex.
    pub ifindex: u32,
    /// Classified VLAN (0: dropped before classification).
    pub vlan: u16,
    /// Source MAC.
    pub src: String,
    /// Destination MAC.
    pub dst: String,
    /// Ethertype behind the tags, `0x0800`.
    pub ethertype: String,
    /// Egress interface of a forward, else empty.
    pub egress: String,
    /// Frame length in bytes.
    pub len: u32,
}

fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The name of counter number `stat`, or `stat_N` for a number this build does not know.
#[must_use]
pub fn stat_name(stat: u32) -> String {
    Stat::ALL
        .iter()
        .find(|s| **s as u32 == stat)
        .map_or_else(|| format!("stat_{stat}"), |s| s.name().to_owned())
}

impl Shown {
    /// `e` with names, read at `time`.
    #[must_use]
    pub fn new(e: &Event, time: String) -> Shown {
        Shown {
            time,
            verdict: verdict_name(e.verdict),
            reason: stat_name(e.stat),
            port: ifname(e.ifindex),
            ifindex: e.ifindex,
            vlan: e.vlan,
            src: mac(e.src),
            dst: mac(e.dst),
            ethertype: format!("{:#06x}", e.ethertype),
            egress: if e.egress == 0 {
                String::new()
            } else {
                ifname(e.egress)
            },
            len: e.len,
        }
    }

    /// One line of text.
    #[must_use]
    pub fn text(&self) -> String {
        let out = if self.egress.is_empty() {
            String::new()
        } else {
            format!(" -> {}", self.egress)
        };
        format!(
            "{} {:<7} {:<24} port {} vlan {} {} > {} type {} len {}{out}",
            self.time,
            self.verdict,
            self.reason,
            self.port,
            self.vlan,
            self.src,
            self.dst,
            self.ethertype,
            self.len
        )
    }
}

/// Which events to show (each list empty: any).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Ingress interface names.
    pub ports: Vec<String>,
    /// Counter names (`drop_static_mac`, `forward`…).
    pub reasons: Vec<String>,
    /// VLAN ids.
    pub vlans: Vec<u16>,
}

impl Filter {
    /// Check the reasons against the counters this build knows.
    pub fn check(&self) -> anyhow::Result<()> {
        for r in &self.reasons {
            if !Stat::ALL.iter().any(|s| s.name() == r) {
                let known: Vec<&str> = Stat::ALL
                    .iter()
                    .filter(|s| !matches!(s.kind(), xennet_common::stats::StatKind::Traffic))
                    .map(|s| s.name())
                    .collect();
                anyhow::bail!("--reason {r}: no such reason; known: {}", known.join(", "));
            }
        }
        Ok(())
    }

    /// Whether `e` passes.
    #[must_use]
    pub fn passes(&self, e: &Shown) -> bool {
        (self.ports.is_empty() || self.ports.contains(&e.port))
            && (self.reasons.is_empty() || self.reasons.contains(&e.reason))
            && (self.vlans.is_empty() || self.vlans.contains(&e.vlan))
    }
}

/// Now as RFC 3339 UTC with milliseconds (`2026-12-02T12:22:01.412Z`).
#[must_use]
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_millis() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.as_bytes()[19] == b'.',
            "{t}"
        );
    }

    #[test]
    fn filters() {
        let e = Event {
            verdict: 3,
            stat: Stat::DropTaggedOnAccess as u32,
            ifindex: 0,
            vlan: 10,
            src: [2, 0, 0, 0, 0, 1],
            dst: [0xff; 6],
            ethertype: 0x0800,
            egress: 0,
            len: 64,
        };
        let s = Shown::new(&e, "t".into());
        assert_eq!(s.reason, "drop_tagged_on_access");
        assert_eq!(s.verdict, "drop");
        assert_eq!(s.src, "02:00:00:00:00:01");
        assert_eq!(s.ethertype, "0x0800");
        assert!(Filter::default().passes(&s));
        let f = |ports: &[&str], reasons: &[&str], vlans: &[u16]| Filter {
            ports: ports.iter().map(|p| (*p).to_owned()).collect(),
            reasons: reasons.iter().map(|p| (*p).to_owned()).collect(),
            vlans: vlans.to_vec(),
        };
        assert!(f(&[], &["drop_tagged_on_access"], &[10]).passes(&s));
        assert!(!f(&[], &["drop_static_mac"], &[]).passes(&s));
        assert!(!f(&[], &[], &[11]).passes(&s));
        assert!(!f(&["vif9.0"], &[], &[]).passes(&s));
        assert!(f(&[], &["drop_nope"], &[]).check().is_err());
        assert!(f(&[], &["drop_static_mac"], &[]).check().is_ok());
    }
}
