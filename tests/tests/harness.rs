//! Self-tests of the harness: namespaces, veth pairs and raw sockets.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use xennet_tests::capture::{QUIET, wait_marker};
use xennet_tests::frame::{
    BROADCAST, ETH_P_8021AD, ETH_P_8021Q, Mac, find_marker, hex, parse_eth, tci, test_frame,
};
use xennet_tests::{
    Netns, RawSocket, add_addr, add_neigh, ifindex, require_root, set_gro, set_mac, veth,
};

const MAC_A: Mac = [0x02, 0x78, 0x6e, 0, 0, 0x0a];
const MAC_B: Mac = [0x02, 0x78, 0x6e, 0, 0, 0x0b];

/// Two namespaces joined by veth `a0` <-> `b0`, with a raw socket on each end.
struct Pair {
    // Sockets first: fields drop in order, sockets before their namespaces.
    sa: RawSocket,
    sb: RawSocket,
    a: Netns,
    b: Netns,
}

fn pair(tag: &str) -> Pair {
    let a = Netns::new(&format!("{tag}a")).expect("netns a");
    let b = Netns::new(&format!("{tag}b")).expect("netns b");
    veth(&a, "a0", &b, "b0").expect("veth");
    set_mac(&a, "a0", MAC_A).expect("mac a0");
    set_mac(&b, "b0", MAC_B).expect("mac b0");
    let sa = RawSocket::open(&a, "a0").expect("raw socket a0");
    let sb = RawSocket::open(&b, "b0").expect("raw socket b0");
    Pair { sa, sb, a, b }
}

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(out.status.success(), "ip netns list: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn listed(list: &str, name: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

/// Sends `frame` from a0 and checks it arrives on b0 byte for byte.
fn assert_passes_unchanged(p: &Pair, frame: &[u8]) {
    let id = find_marker(frame).expect("test frame has a marker");
    p.sa.send(frame).expect("send");
    let got = wait_marker(&p.sb, id).unwrap_or_else(|| panic!("frame {id} did not arrive"));
    assert_eq!(hex(&got), hex(frame), "frame {id} changed in flight");
}

#[test]
fn untagged_frame_arrives_as_sent() {
    if !require_root() {
        return;
    }
    let p = pair("untag");
    assert_passes_unchanged(&p, &test_frame(MAC_B, MAC_A, &[], 1));
    assert_passes_unchanged(&p, &test_frame(BROADCAST, MAC_A, &[], 2));
}

#[test]
fn vlan_tagged_frame_arrives_with_tag() {
    if !require_root() {
        return;
    }
    let p = pair("tag");
    let tag = (ETH_P_8021Q, tci(3, false, 4094));
    let frame = test_frame(MAC_B, MAC_A, &[tag], 10);
    assert_passes_unchanged(&p, &frame);
    let got = parse_eth(&frame).expect("parse");
    assert_eq!(got.tags, [(0x8100, 0x6ffe)]);
}

#[test]
fn other_tags_arrive_as_sent() {
    if !require_root() {
        return;
    }
    let p = pair("tags");
    // Priority tag (VLAN 0), 802.1ad single tag, QinQ, DEI set, VLAN 1.
    let cases: [&[(u16, u16)]; 5] = [
        &[(ETH_P_8021Q, tci(5, false, 0))],
        &[(ETH_P_8021AD, tci(0, false, 100))],
        &[
            (ETH_P_8021AD, tci(1, false, 300)),
            (ETH_P_8021Q, tci(2, false, 42)),
        ],
        &[(ETH_P_8021Q, tci(0, true, 7))],
        &[(ETH_P_8021Q, tci(0, false, 1))],
    ];
    for (i, tags) in (20..).zip(cases) {
        assert_passes_unchanged(&p, &test_frame(MAC_B, MAC_A, tags, i));
    }
}

#[test]
fn frames_flow_both_ways_and_sender_sees_nothing() {
    if !require_root() {
        return;
    }
    let p = pair("echo");
    let tag = (ETH_P_8021Q, tci(3, false, 4094));
    p.sa.send(&test_frame(MAC_B, MAC_A, &[], 30)).expect("send");
    p.sa.send(&test_frame(MAC_B, MAC_A, &[tag], 31))
        .expect("send");
    assert!(wait_marker(&p.sb, 30).is_some(), "30 did not arrive");
    assert!(wait_marker(&p.sb, 31).is_some(), "31 did not arrive");
    let seen = p.sa.collect(QUIET).expect("collect");
    assert!(
        seen.is_empty(),
        "sender saw frames: {:?}",
        seen.iter().map(|f| hex(f)).collect::<Vec<_>>()
    );

    // And the other way round.
    p.sb.send(&test_frame(MAC_A, MAC_B, &[tag], 32))
        .expect("send");
    assert!(wait_marker(&p.sa, 32).is_some(), "32 did not arrive");
    assert!(p.sb.collect(QUIET).expect("collect").is_empty());
}

#[test]
fn nothing_arrives_unasked() {
    if !require_root() {
        return;
    }
    // IPv6 is off in harness namespaces: fresh links must stay silent.
    let p = pair("quiet");
    std::thread::sleep(Duration::from_millis(500));
    let a = p.sa.collect(QUIET).expect("collect");
    let b = p.sb.collect(Duration::ZERO).expect("collect");
    assert!(
        a.is_empty() && b.is_empty(),
        "unexpected frames: {a:?} {b:?}"
    );
}

#[test]
fn ip_traffic_with_static_neighbours() {
    if !require_root() {
        return;
    }
    let p = pair("ping");
    add_addr(&p.a, "a0", "10.99.0.1/24").expect("addr a");
    add_addr(&p.b, "b0", "10.99.0.2/24").expect("addr b");
    add_neigh(&p.a, "a0", "10.99.0.2", MAC_B).expect("neigh a");
    add_neigh(&p.b, "b0", "10.99.0.1", MAC_A).expect("neigh b");
    p.a.exec_ok(&["ping", "-c", "1", "-W", "2", "10.99.0.2"])
        .expect("ping");
    // With static neighbours there is no ARP: b0 sees exactly one IPv4 echo
    // request from MAC_A.
    let frames = p.sb.collect(QUIET).expect("collect");
    let parsed: Vec<_> = frames.iter().filter_map(|f| parse_eth(f)).collect();
    assert!(
        parsed
            .iter()
            .all(|h| h.ethertype == 0x0800 && h.src == MAC_A),
        "unexpected frames: {parsed:?}"
    );
    assert_eq!(parsed.len(), 1, "{parsed:?}");
}

#[test]
fn run_in_enters_the_namespace() {
    if !require_root() {
        return;
    }
    let p = pair("runin");
    let idx = ifindex(&p.b, "b0").expect("ifindex b0");
    let in_b =
        p.b.run_in(|| {
            // SAFETY: valid NUL-terminated string.
            unsafe { libc::if_nametoindex(c"b0".as_ptr()) }
        })
        .expect("run_in");
    assert_eq!(in_b, idx);
    assert!(ifindex(&p.a, "b0").is_err(), "b0 must not be visible in a");
    let err =
        p.a.run_in(|| panic!("boom"))
            .expect_err("panic is an error");
    assert!(format!("{err:#}").contains("boom"), "{err:#}");
}

#[test]
fn netns_gone_after_drop_and_processes_killed() {
    if !require_root() {
        return;
    }
    let ns = Netns::new("drop").expect("netns");
    let name = ns.name().to_owned();
    assert!(listed(&netns_list(), &name), "{name} not listed");
    let out = ns.exec(&["ip", "-o", "link"]).expect("exec");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("lo:"));
    assert!(
        ns.exec_ok(&["false"]).is_err(),
        "exec_ok must fail on false"
    );
    let mut child = ns.spawn(&["sleep", "1000"]).expect("spawn sleep");
    // Let `ip netns exec` switch namespaces and exec sleep.
    std::thread::sleep(Duration::from_millis(200));

    let start = Instant::now();
    drop(ns);
    let status = child.wait().expect("wait");
    assert!(!status.success(), "sleep should have been killed: {status}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!listed(&netns_list(), &name), "{name} still listed");
}

#[test]
fn parallel_netns_names_are_distinct() {
    if !require_root() {
        return;
    }
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| Netns::new("par").expect("netns")))
        .collect();
    let all: Vec<Netns> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let names: HashSet<&str> = all.iter().map(Netns::name).collect();
    assert_eq!(names.len(), all.len(), "duplicate names: {names:?}");
    let pid = format!("-{}-", std::process::id());
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("xn-par") && n.contains(&pid))
    );
}

#[test]
fn gro_can_be_toggled() {
    if !require_root() {
        return;
    }
    let p = pair("gro");
    let gro = |ns: &Netns| {
        let out = ns.exec_ok(&["ethtool", "-k", "b0"]).expect("ethtool -k");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("generic-receive-offload: "))
            .map(ToOwned::to_owned)
            .expect("gro line")
    };
    set_gro(&p.b, "b0", true).expect("gro on");
    assert_eq!(gro(&p.b), "on");
    set_gro(&p.b, "b0", false).expect("gro off");
    assert_eq!(gro(&p.b), "off");
    // Frames still pass with GRO on.
    set_gro(&p.b, "b0", true).expect("gro on");
    let tag = (ETH_P_8021Q, tci(3, false, 4094));
    assert_passes_unchanged(&p, &test_frame(MAC_B, MAC_A, &[tag], 40));
}
