//! The guest-to-guest scenarios on every path: TCP bulk with and without the guests' tx
//! checksum offload (iperf3), and ping RTT.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{
    Setting, interrupted, log,
    paths::{self, PathKind},
    report::Sample,
    scenarios::{NO_DUT, SCN_RTT, SCN_TCP, SCN_TCP_NOCSUM},
    topo::Topo,
};

/// What the guest scenarios produced: their samples, and the paths whose TCP with checksum
/// offload failed (path → why), which are not tried again.
pub struct Guests {
    pub samples: Vec<Sample>,
    pub tcp_broken: BTreeMap<String, String>,
}

/// TCP and ping between the guests of each path (`paths`: DUT index and kind), at most 5
/// rounds in rotating order.
pub fn rounds(cfg: &Setting, t: &Topo, paths: &[(usize, PathKind)]) -> Result<Guests> {
    let mut samples = Vec::new();
    let mut tcp_broken: BTreeMap<String, String> = BTreeMap::new();
    let want = |scn: &str| cfg.args.wants(scn);
    if !(want(SCN_TCP) || want(SCN_TCP_NOCSUM) || want(SCN_RTT)) {
        return Ok(Guests {
            samples,
            tcp_broken,
        });
    }
    for round in 0..cfg.p.rounds.min(5) {
        let mut order = paths.to_vec();
        let n = order.len();
        order.rotate_left(round % n);
        log(&format!(
            "tcp, rtt: round {}/{}",
            round + 1,
            cfg.p.rounds.min(5)
        ));
        if want(SCN_RTT) {
            interrupted()?;
            let (median, min) = paths::ping_rtt(&t.rtt_null.0, cfg.p.pings, 0.005, cfg.gen_cpu)?;
            samples.push(Sample {
                scenario: SCN_RTT,
                path: NO_DUT.into(),
                round,
                value: median,
                extra: BTreeMap::from([("min_us".into(), min)]),
            });
        }
        for (k, kind) in order {
            let d = &t.duts[k];
            let name = kind.name();
            let mut push_extra = |scn: &'static str, value: f64, extra: BTreeMap<String, f64>| {
                samples.push(Sample {
                    scenario: scn,
                    path: name.into(),
                    round,
                    value,
                    extra,
                });
            };
            let mut push = |scn: &'static str, value: f64| push_extra(scn, value, BTreeMap::new());
            if want(SCN_TCP) && !tcp_broken.contains_key(name) {
                interrupted()?;
                match paths::iperf(d, cfg.p.iperf_secs) {
                    Ok(bps) => push(SCN_TCP, bps),
                    Err(e) => {
                        let why = format!("{e:#}");
                        log(&format!("{name}: TCP with checksum offload failed: {why}"));
                        tcp_broken.insert(name.to_string(), why);
                    }
                }
            }
            if want(SCN_TCP_NOCSUM) {
                interrupted()?;
                paths::guest_tx_csum(d, false)?;
                let r = paths::iperf(d, cfg.p.iperf_secs);
                paths::guest_tx_csum(d, true)?;
                push(SCN_TCP_NOCSUM, r?);
            }
            if want(SCN_RTT) {
                interrupted()?;
                let (median, min) =
                    paths::ping_rtt(d.guests()?.0, cfg.p.pings, 0.005, cfg.gen_cpu)?;
                push_extra(SCN_RTT, median, BTreeMap::from([("min_us".into(), min)]));
            }
        }
    }
    Ok(Guests {
        samples,
        tcp_broken,
    })
}
