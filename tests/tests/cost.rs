//! Per-frame costs through `BPF_PROG_TEST_RUN`, measured, not checked (every test here is
//! `#[ignore]`d: run by hand, as root, with `-- --ignored --nocapture`): what port security
//! adds to a frame, and what a port's bandwidth limit lookup costs (issue 13). Each compares two
//! runs interleaved in one lab and reports medians with the load average: the machines are
//! shared and noisy, so only differences measured side by side mean anything.

use xennet_common::{
    fwd::fixtures::{Program, portsec, rate},
    maps::PORT_F_RATE,
};
use xennet_tests::{
    require_root,
    testrun::{Lab, with_lab},
};

/// The test-namespace tag of `program`'s variant of a measurement.
fn tag(program: Program, what: &str) -> String {
    let p = if program == Program::Tc { "tc" } else { "xdp" };
    format!("co{p}-{what}")
}

/// Per-frame cost of the port security checks through `BPF_PROG_TEST_RUN` (issue 13): the same
/// frame shapes from a secured guest (`g0`) and from an unsecured one (`g4`), each forwarded
/// to the other guest untagged (the buffer is not changed, so every repeat sees the same
/// frame). The kernel's mean time per run (`duration`) of batches of 100 000, the two
/// interleaved (which goes first alternates) for [`COST_ROUNDS`] rounds; the cost is the median
/// of the rounds' differences, so that load from other processes, which comes and goes,
/// falls on both sides of most rounds. A measurement, not a check: run by hand with
/// `cargo test -p xennet-tests --test cost portsec_cost -- --ignored --nocapture` (as root; it
/// prints the load average beside it).
#[test]
#[ignore = "a measurement, run by hand"]
fn portsec_cost() {
    use portsec::{IP_G0, IP6_G0, SG0, SG4, arp, ipv4, ipv6, udp};
    if !require_root() {
        return;
    }
    let eth = |dst, src, et, payload: &[u8]| {
        xennet_common::fwd::fixtures::lab::build_eth(dst, src, &[], et, payload)
    };
    let v4 = ipv4(IP_G0, [192, 0, 2, 4], 17, 0, false, &udp(5000, 53));
    let v6 = ipv6(IP6_G0, portsec::IP6_RT, 17, &udp(5000, 53));
    let a = arp(2, SG0, IP_G0, SG4, [192, 0, 2, 4]);
    let mut a4 = a.clone();
    a4[8..14].copy_from_slice(&SG4);
    let cases = [
        (
            "IPv4 UDP",
            eth(SG4, SG0, 0x0800, &v4),
            eth(SG0, SG4, 0x0800, &v4),
        ),
        (
            "IPv6 UDP",
            eth(SG4, SG0, 0x86dd, &v6),
            eth(SG0, SG4, 0x86dd, &v6),
        ),
        (
            "ARP reply",
            eth(SG4, SG0, 0x0806, &a),
            eth(SG0, SG4, 0x0806, &a4),
        ),
    ];
    for program in [Program::Xdp, Program::Tc] {
        let fixture = portsec::PORTSEC;
        with_lab(
            &tag(program, "pscost"),
            &fixture,
            program == Program::Tc,
            |lab| {
                for (what, secured, plain) in &cases {
                    let (s, p, d) = interleaved(|first| {
                        if first {
                            batch(lab, program, "g0", secured)
                        } else {
                            batch(lab, program, "g4", plain)
                        }
                    });
                    println!(
                        "portsec cost {program:?} {what}: secured {s:.1} ns, unsecured {p:.1} ns, \
                     checks {d:.1} ns (medians of {COST_ROUNDS} rounds; load {})",
                        load_average()
                    );
                }
            },
        );
    }
}

/// What a port's bandwidth limit lookup costs per frame (issue 13): frames from `r1` (no
/// limit) of [`rate::RATED`], with and without `PORT_F_RATE` set on it past the agent. With the
/// flag the program looks the port's buckets up in `XN_RATES` (an empty entry: nothing is
/// limited, nothing charged); without it, as the agent leaves a port without a limit, it does
/// not. The frames go to `r0`, whose egress limit refuses most of them: the same in both
/// variants, so the difference is `r1`'s lookup alone. Run by hand: `cargo test -p xennet-tests --test cost rate_lookup_cost -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn rate_lookup_cost() {
    if !require_root() {
        return;
    }
    let frame = xennet_common::fwd::fixtures::lab::frame(rate::RA, rate::RB, &[], 1);
    for program in [Program::Xdp, Program::Tc] {
        with_lab(
            &tag(program, "ratecost"),
            &rate::RATED,
            program == Program::Tc,
            |lab| {
                let (with, without, d) = interleaved(|flagged| {
                    lab.set_port_flags("r1", |f| {
                        if flagged {
                            f | PORT_F_RATE
                        } else {
                            f & !PORT_F_RATE
                        }
                    });
                    batch(lab, program, "r1", &frame)
                });
                println!(
                    "rate lookup cost {program:?}: flagged {with:.1} ns, unflagged {without:.1} ns, \
                 lookup {d:.1} ns (medians of {COST_ROUNDS} rounds; load {})",
                    load_average()
                );
            },
        );
    }
}

/// Interleaved rounds of each measurement.
const COST_ROUNDS: usize = 41;

/// The kernel's mean time per run of `frame` from `port`, in a batch of 100 000.
fn batch(lab: &mut Lab, program: Program, port: &str, frame: &[u8]) -> f64 {
    let (r, _) = lab.run(program, port, frame, 100_000);
    f64::from(r.expect("test run").duration_ns)
}

/// `run(true)` and `run(false)` alternately (which goes first alternates too) for
/// [`COST_ROUNDS`] rounds: the medians of each and of the rounds' differences.
fn interleaved(mut run: impl FnMut(bool) -> f64) -> (f64, f64, f64) {
    let (mut va, mut vb, mut vd) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..COST_ROUNDS {
        let (x, y) = if round % 2 == 0 {
            let x = run(true);
            (x, run(false))
        } else {
            let y = run(false);
            (run(true), y)
        };
        va.push(x);
        vb.push(y);
        vd.push(x - y);
    }
    (median(&mut va), median(&mut vb), median(&mut vd))
}

/// The median of `v` (not empty).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 1-minute load average, as `/proc/loadavg` says it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
