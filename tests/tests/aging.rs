//! FDB aging at its shortest (`fdb_aging_secs = 1`): a station that keeps speaking never ages
//! out, although the datapath does not refresh an entry's time on every frame (nor read the
//! clock for a calm station); a silent one ages out no sooner than its aging time after its
//! last frame, and not much later. Real agent, real frames, the learning counters.

use std::time::{Duration, Instant};

use xennet_tests::{
    bed::Bed,
    counters::get,
    frame::{BROADCAST, Mac, format_mac, test_frame},
    require_root,
};

const G1: Mac = [0x02, 0x1a, 0, 0, 0, 1];
const G2: Mac = [0x02, 0x1a, 0, 0, 0, 2];

/// dom0 with two guests; the agent on an access bridge with the shortest aging, in TC.
fn bed() -> Bed {
    Bed::new(
        "age1",
        &[("vif1", G1), ("vif2", G2)],
        &[],
        "[[bridge]]\nname = \"br\"\nfdb_aging_secs = 1\n\n\
         [[bridge.port]]\ninterface = \"vif1\"\naccess = 10\nattach = \"tc\"\n\n\
         [[bridge.port]]\ninterface = \"vif2\"\naccess = 10\nattach = \"tc\"\n",
    )
}

/// Whether the FDB holds `mac`.
fn knows(bed: &Bed, mac: Mac) -> bool {
    bed.fdb().iter().any(|e| e.0 == format_mac(&mac))
}

#[test]
fn a_speaking_station_stays_and_a_silent_one_ages_on_time() {
    if !require_root() {
        return;
    }
    let bed = bed();
    let g1 = bed.socket("vif1");
    // g1 speaks every 600 ms for 4 s: its entry's time is refreshed only every other frame
    // (at most once a second), so it looks up to 1.2 s old to an agent that ages after 1 s.
    // It must stay learned all along: one learn_new, never gone from the FDB.
    let start = Instant::now();
    let mut n = 0;
    let mut next = start;
    let mut last_frame = start;
    while start.elapsed() < Duration::from_secs(4) {
        if Instant::now() >= next {
            g1.send(&test_frame(BROADCAST, G1, &[], n))
                .expect("sending");
            last_frame = Instant::now();
            n += 1;
            next += Duration::from_millis(600);
        }
        if n > 0 {
            assert!(
                knows(&bed, G1),
                "g1 aged out after {:?} although it speaks every 600 ms (aging 1 s)\n{}",
                start.elapsed(),
                bed.agent.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        get(&bed.agent.counters().expect("stats"), "vif1", "learn_new"),
        1,
        "g1 learned once, never aged out and learned again"
    );

    // Now g1 is silent: gone no sooner than 1 s after its last frame, and within the refresh
    // interval (1 s) plus an aging pass (250 ms) plus slack after that.
    let gone = loop {
        let since = last_frame.elapsed();
        if !knows(&bed, G1) {
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

/// Whether the FDB holds both `a` and `b`.
fn knows_both(bed: &Bed, a: Mac, b: Mac) -> bool {
    let fdb = bed.fdb();
    [a, b]
        .iter()
        .all(|m| fdb.iter().any(|e| e.0 == format_mac(m)))
}

#[test]
fn busy_stations_stay_learned_through_their_calm_windows() {
    if !require_root() {
        return;
    }
    // One guest behind an XDP port, one behind a TC port.
    let bed = Bed::new(
        "age2",
        &[("vif1", G1), ("vif2", G2)],
        &[],
        "[[bridge]]\nname = \"br\"\nfdb_aging_secs = 1\n\n\
         [[bridge.port]]\ninterface = \"vif1\"\naccess = 10\nattach = \"xdp\"\n\n\
         [[bridge.port]]\ninterface = \"vif2\"\naccess = 10\nattach = \"tc\"\n",
    );
    let (g1, g2) = (bed.socket("vif1"), bed.socket("vif2"));
    // Both send a frame every 2 ms for 5 s. Most frames find their station calm (found on
    // its port, young enough: no clock read) and refresh nothing; only a frame after a calm
    // window ends can refresh the entry. Were a window never to end in the kernel (ticks
    // that stop, a wrong bound), the entries would stop being refreshed and age out after
    // about 2 s (aging 1 s plus the agent's slack).
    let start = Instant::now();
    let (mut n, mut checked) = (0u32, start);
    while start.elapsed() < Duration::from_secs(5) {
        g1.send(&test_frame(BROADCAST, G1, &[], n))
            .expect("sending from g1");
        g2.send(&test_frame(BROADCAST, G2, &[], n))
            .expect("sending from g2");
        n += 1;
        if n > 1 && checked.elapsed() >= Duration::from_millis(100) {
            assert!(
                knows_both(&bed, G1, G2),
                "a busy station aged out after {:?} (aging 1 s, a frame every 2 ms)\n{:?}\n{}",
                start.elapsed(),
                bed.fdb(),
                bed.agent.log_text()
            );
            checked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let c = bed.agent.counters().expect("stats");
    assert_eq!(
        (get(&c, "vif1", "learn_new"), get(&c, "vif2", "learn_new")),
        (1, 1),
        "each station learned once, never aged out and learned again ({n} frames each)"
    );
}
