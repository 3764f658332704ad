//! The seed's dom0 seen from its edges while an agent runs: raw sockets on the upstream and
//! on the three guests, and "do this, then say what arrived where and which counters moved".
//! Test support: a failing step panics with its context.

use crate::{
    RawSocket,
    capture::{Got, collect_marked, drain},
    counters::{Counters, Deltas, delta},
    frame::Mac,
    topo::{Agent, BpfFs, SeedDom0},
};

/// A running seed dom0 with an agent and a socket on every edge.
///
/// Fields drop in declaration order: the agent stops (and `down` runs in dom0) before the
/// bpffs goes and before the namespaces do.
pub struct SeedWorld {
    /// The agent (stopped and its datapath removed on drop).
    pub agent: Agent,
    /// The bpffs the agent pins into.
    pub fs: BpfFs,
    /// The upstream's `eth0`.
    pub up: RawSocket,
    /// Guests 1–3 (`vif1.0`–`vif3.0`).
    pub g: Vec<RawSocket>,
    /// dom0, the upstream and the guests.
    pub sim: SeedDom0,
}

impl SeedWorld {
    /// Start an agent on `sim` with the configuration text `config`.
    ///
    /// # Panics
    /// When the bpffs, the config file, the agent or a socket cannot be set up.
    #[must_use]
    pub fn start(sim: SeedDom0, config: &str) -> SeedWorld {
        let fs = BpfFs::new(sim.dom0.name()).expect("mounting a bpffs");
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", sim.dom0.name()));
        std::fs::write(&cfg, config).expect("writing the config");
        let agent = Agent::start(&sim.dom0, &cfg, &fs.pin_dir());
        let _ = std::fs::remove_file(&cfg);
        SeedWorld::with(sim, fs, agent.expect("starting the agent"))
    }

    /// Open the edge sockets of a seed dom0 whose agent runs already.
    ///
    /// # Panics
    /// When a socket cannot be opened.
    #[must_use]
    pub fn with(sim: SeedDom0, fs: BpfFs, agent: Agent) -> SeedWorld {
        let up = sim.upstream_socket().expect("upstream socket");
        let g = ["vif1.0", "vif2.0", "vif3.0"]
            .iter()
            .map(|v| sim.guest_socket(v).expect("guest socket"))
            .collect();
        SeedWorld {
            agent,
            fs,
            up,
            g,
            sim,
        }
    }

    /// Guest `i`'s MAC (0-based).
    #[must_use]
    pub fn mac(&self, i: usize) -> Mac {
        self.sim.guests[i].mac
    }

    /// The agent's counters now.
    ///
    /// # Panics
    /// When `stats` fails.
    #[must_use]
    pub fn stats(&self) -> Counters {
        self.agent.stats(&self.sim.dom0).expect("reading stats")
    }

    /// Every edge, by name: `g1`–`g3`, `up`.
    #[must_use]
    pub fn points(&self) -> [(&str, &RawSocket); 4] {
        [
            ("g1", &self.g[0]),
            ("g2", &self.g[1]),
            ("g3", &self.g[2]),
            ("up", &self.up),
        ]
    }

    /// Run `f`, then collect what every edge received (frames with a marker) and the
    /// counters' change. Anything stale is drained first.
    pub fn observe<F: FnOnce(&SeedWorld)>(&self, f: F) -> (Got, Deltas) {
        drain(&self.points());
        let before = self.stats();
        f(self);
        let got = collect_marked(&self.points());
        (got, delta(&before, &self.stats()))
    }

    /// Send `frames` from `from`, then [`SeedWorld::observe`] what came of them.
    ///
    /// # Panics
    /// When a frame cannot be sent.
    #[must_use]
    pub fn send(&self, from: &RawSocket, frames: &[Vec<u8>]) -> (Got, Deltas) {
        self.observe(|_| {
            for f in frames {
                from.send(f).expect("send");
            }
        })
    }
}
