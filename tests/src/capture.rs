//! Capture points: what arrived where. Draining raw sockets, collecting the frames that
//! arrived after a quiet period, waiting for one marked frame, and asserting arrivals.

use std::{collections::BTreeMap, time::Duration, time::Instant};

use crate::{
    RawSocket,
    frame::{find_marker, vlan_of},
};

/// How long to wait for stragglers after sending, or to watch for a frame that should not
/// arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// How long to wait for a frame that should arrive.
pub const ARRIVE: Duration = Duration::from_secs(2);

/// The frames that arrived at each capture point: name → frames, in order.
pub type Got = BTreeMap<String, Vec<Vec<u8>>>;

/// Drop whatever is queued on each socket.
pub fn drain(socks: &[(&str, &RawSocket)]) {
    for (_, s) in socks {
        let _ = s.collect(Duration::ZERO);
    }
}

/// Wait [`QUIET`], then take every frame queued at each socket that passes `keep`.
///
/// # Panics
/// When a socket cannot be read.
#[must_use]
pub fn collect_quiet<K: Fn(&[u8]) -> bool>(socks: &[(&str, &RawSocket)], keep: K) -> Got {
    std::thread::sleep(QUIET);
    socks
        .iter()
        .map(|(name, s)| {
            let frames = s
                .collect(Duration::ZERO)
                .expect("collecting")
                .into_iter()
                .filter(|f| keep(f))
                .collect();
            ((*name).to_string(), frames)
        })
        .collect()
}

/// [`collect_quiet`] keeping the test frames (those with a marker).
#[must_use]
pub fn collect_marked(socks: &[(&str, &RawSocket)]) -> Got {
    collect_quiet(socks, |f| find_marker(f).is_some())
}

/// Wait up to [`ARRIVE`] for the frame carrying marker `id` on `s`; other frames are
/// dropped.
///
/// # Panics
/// When the socket cannot be read.
#[must_use]
pub fn wait_marker(s: &RawSocket, id: u32) -> Option<Vec<u8>> {
    let deadline = Instant::now() + ARRIVE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = s.recv_timeout(left).expect("recv")?;
        if find_marker(&f) == Some(id) {
            return Some(f);
        }
    }
}

/// Assert that no capture point got anything.
///
/// # Panics
/// When one did.
pub fn nowhere(got: &Got) {
    for (name, frames) in got {
        assert!(
            frames.is_empty(),
            "nothing expected at {name}, got {frames:02x?}"
        );
    }
}

/// Assert that exactly one frame arrived, at `at`, and nothing anywhere else; return it.
///
/// # Panics
/// When anything else arrived.
#[must_use]
pub fn only(got: &Got, at: &str) -> Vec<u8> {
    for (name, frames) in got {
        if name == at {
            assert_eq!(
                frames.len(),
                1,
                "exactly one frame expected at {at}, got {frames:02x?}"
            );
        } else {
            assert!(
                frames.is_empty(),
                "nothing expected at {name}, got {frames:02x?}"
            );
        }
    }
    got[at][0].clone()
}

/// Assert that exactly the capture points in `want` got exactly one frame each, with the
/// given VLAN tag (None: untagged), and every other capture point got nothing.
///
/// # Panics
/// When that is not what arrived.
pub fn arrived(got: &Got, want: &[(&str, Option<u16>)], what: &str) {
    for (name, frames) in got {
        match want.iter().find(|(n, _)| n == name) {
            Some((_, vlan)) => {
                assert_eq!(
                    frames.len(),
                    1,
                    "{what}: exactly one frame expected at {name}, got {frames:02x?}"
                );
                assert_eq!(
                    vlan_of(&frames[0]),
                    *vlan,
                    "{what}: wrong tagging at {name}: {:02x?}",
                    frames[0]
                );
            }
            None => assert!(
                frames.is_empty(),
                "{what}: nothing expected at {name}, got {frames:02x?}"
            ),
        }
    }
    for (n, _) in want {
        assert!(got.contains_key(*n), "{what}: no capture point {n}");
    }
}

/// The (TPID, TCI) tags of every frame in `got`, by endpoint (endpoints that received
/// nothing left out).
///
/// # Panics
/// When a frame is too short to parse.
#[must_use]
pub fn tags_at(got: &Got) -> BTreeMap<String, Vec<Vec<(u16, u16)>>> {
    got.iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(n, fs)| {
            let tags = fs
                .iter()
                .map(|f| crate::frame::parse_eth(f).expect("parse").tags)
                .collect();
            (n.clone(), tags)
        })
        .collect()
}
