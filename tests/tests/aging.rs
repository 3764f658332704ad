//! FDB aging at its shortest (`fdb_aging_secs = 1`): a station that keeps speaking never ages
//! out, although the datapath refreshes an entry's time at most once a second; a silent one
//! ages out no sooner than its aging time after its last frame, and not much later. Real
//! agent, real frames, the learning counters.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use xennet_tests::{
    Netns, RawSocket,
    counters::get,
    fdb::FdbRow,
    frame::{BROADCAST, Mac, format_mac, test_frame},
    require_root, set_mac,
    topo::{Agent, BpfFs},
    veth,
};

const G1: Mac = [0x02, 0x1a, 0, 0, 0, 1];
const G2: Mac = [0x02, 0x1a, 0, 0, 0, 2];

struct Bed {
    agent: Agent,
    _fs: BpfFs,
    g: Vec<RawSocket>,
    _guests: Vec<Netns>,
    _dom0: Netns,
    cfg: PathBuf,
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cfg);
    }
}

impl Bed {
    fn new(tag: &str) -> Bed {
        let dom0 = Netns::new(&format!("{tag}-d0")).expect("dom0");
        let mut guests = Vec::new();
        for (i, mac) in [G1, G2].into_iter().enumerate() {
            let g = Netns::new(&format!("{tag}-g{}", i + 1)).expect("guest");
            veth(&dom0, &format!("vif{}", i + 1), &g, "eth0").expect("veth");
            set_mac(&g, "eth0", mac).expect("guest MAC");
            guests.push(g);
        }
        let fs = BpfFs::new(dom0.name()).expect("mounting a bpffs");
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
        std::fs::write(
            &cfg,
            "[[bridge]]\nname = \"br\"\nfdb_aging_secs = 1\n\n\
             [[bridge.port]]\ninterface = \"vif1\"\naccess = 10\nattach = \"tc\"\n\n\
             [[bridge.port]]\ninterface = \"vif2\"\naccess = 10\nattach = \"tc\"\n",
        )
        .expect("writing the config");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("starting the agent");
        let g = guests
            .iter()
            .map(|n| RawSocket::open(n, "eth0").expect("guest socket"))
            .collect();
        Bed {
            agent,
            _fs: fs,
            g,
            _guests: guests,
            _dom0: dom0,
            cfg,
        }
    }

    fn knows(&self, mac: Mac) -> bool {
        let rows: Vec<FdbRow> = self.agent.fdb(None).expect("fdb show");
        rows.iter().any(|r| r.mac == format_mac(&mac))
    }

    fn learned_new(&self, port: &str) -> u64 {
        get(&self.agent.counters().expect("stats"), port, "learn_new")
    }
}

#[test]
fn a_speaking_station_stays_and_a_silent_one_ages_on_time() {
    if !require_root() {
        return;
    }
    let bed = Bed::new("age1");
    // g1 speaks every 600 ms for 4 s: its entry's time is refreshed only every other frame
    // (at most once a second), so it looks up to 1.2 s old to an agent that ages after 1 s.
    // It must stay learned all along: one learn_new, never gone from the FDB.
    let start = Instant::now();
    let mut n = 0;
    let mut next = start;
    let mut last_frame = start;
    while start.elapsed() < Duration::from_secs(4) {
        if Instant::now() >= next {
            bed.g[0]
                .send(&test_frame(BROADCAST, G1, &[], n))
                .expect("sending");
            last_frame = Instant::now();
            n += 1;
            next += Duration::from_millis(600);
        }
        if n > 0 {
            assert!(
                bed.knows(G1),
                "g1 aged out after {:?} although it speaks every 600 ms (aging 1 s)\n{}",
                start.elapsed(),
                bed.agent.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        bed.learned_new("vif1"),
        1,
        "g1 learned once, never aged out and learned again"
    );

    // Now g1 is silent: gone no sooner than 1 s after its last frame, and within the refresh
    // interval (1 s) plus an aging pass (250 ms) plus slack after that.
    let gone = loop {
        let since = last_frame.elapsed();
        if !bed.knows(G1) {
            break since;
        }
        assert!(
            since < Duration::from_millis(3500),
            "g1 still learned {since:?} after its last frame (aging 1 s)"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("silent g1 aged out {gone:?} after its last frame (fdb_aging_secs = 1)");
    assert!(
        gone >= Duration::from_secs(1),
        "aged out {gone:?} after the last frame, before the aging time"
    );
}
