//! A dom0 with guests behind veths and an agent on a configuration file the test writes: the
//! test bed of the tests that bring their own configuration.

use std::{collections::BTreeSet, path::PathBuf, process::Output};

use crate::{
    Netns, RawSocket,
    fdb::{FdbEntry, FdbRow},
    frame::Mac,
    set_gro, set_mac,
    topo::{Agent, BpfFs},
};

/// A guest: its vif's name in dom0, the ifindex to create the vif with (`None`: the kernel's
/// choice), and the MAC of its `eth0`.
#[derive(Clone, Copy, Debug)]
pub struct Guest {
    pub vif: &'static str,
    pub index: Option<u32>,
    pub mac: Mac,
}

/// dom0 with guests behind veths (`vifN` in dom0, `eth0` in the guest, GRO on: native-XDP
/// redirects into a veth need NAPI on the receiving end), a private bpffs and an agent on a
/// configuration file kept at `cfg` (for reloads, removed on drop). Fields drop in order:
/// agent, bpffs, guests, dom0.
pub struct Bed {
    pub agent: Agent,
    _fs: BpfFs,
    /// (namespace, vif, MAC) of each guest, in the order given.
    pub guests: Vec<(Netns, &'static str, Mac)>,
    pub dom0: Netns,
    pub cfg: PathBuf,
}

impl Bed {
    /// Build dom0 and `guests` (vif name, MAC), run `setup` (commands in dom0), write
    /// `config` and start the agent on it.
    ///
    /// # Panics
    /// When any of that fails.
    #[must_use]
    pub fn new(tag: &str, guests: &[(&'static str, Mac)], setup: &[&[&str]], config: &str) -> Bed {
        let guests: Vec<Guest> = guests
            .iter()
            .map(|&(vif, mac)| Guest {
                vif,
                index: None,
                mac,
            })
            .collect();
        Bed::with(tag, &guests, setup, config)
    }

    /// [`Bed::new`] with each vif's ifindex chosen by the test where given.
    ///
    /// # Panics
    /// When any of that fails.
    #[must_use]
    pub fn with(tag: &str, guests: &[Guest], setup: &[&[&str]], config: &str) -> Bed {
        let dom0 = Netns::new(&format!("{tag}-d0")).expect("dom0");
        let mut gs = Vec::new();
        for (i, g) in guests.iter().enumerate() {
            let ns = Netns::new(&format!("{tag}-g{}", i + 1)).expect("guest");
            let index = g.index.map(|x| x.to_string());
            let mut args = vec!["ip", "link", "add", g.vif];
            if let Some(x) = &index {
                args.extend(["index", x.as_str()]);
            }
            args.extend(["type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
            dom0.exec_ok(&args).expect("creating the vif");
            dom0.exec_ok(&["ip", "link", "set", g.vif, "up"])
                .expect("vif up");
            ns.exec_ok(&["ip", "link", "set", "eth0", "up"])
                .expect("guest up");
            set_mac(&ns, "eth0", g.mac).expect("guest MAC");
            set_gro(&ns, "eth0", true).expect("GRO");
            gs.push((ns, g.vif, g.mac));
        }
        for cmd in setup {
            dom0.exec_ok(cmd).expect("dom0 setup");
        }
        let fs = BpfFs::new(dom0.name()).expect("mounting a bpffs");
        let cfg = std::env::temp_dir().join(format!("xennet-{}.toml", dom0.name()));
        std::fs::write(&cfg, config).expect("writing the config");
        let agent = Agent::start(&dom0, &cfg, &fs.pin_dir()).expect("starting the agent");
        Bed {
            agent,
            _fs: fs,
            guests: gs,
            dom0,
            cfg,
        }
    }

    /// A raw socket on the `eth0` of the guest behind `vif`.
    ///
    /// # Panics
    /// When there is no such guest or the socket cannot be opened.
    #[must_use]
    pub fn socket(&self, vif: &str) -> RawSocket {
        let (ns, _, _) = self
            .guests
            .iter()
            .find(|(_, v, _)| *v == vif)
            .expect("a guest behind the vif");
        RawSocket::open(ns, "eth0").expect("raw socket")
    }

    /// `xennet-agent ARGS` against this bed's agent.
    ///
    /// # Panics
    /// When the command cannot be run.
    #[must_use]
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.agent.ctl(args).expect("running xennet-agent")
    }

    /// `ports` as one line per port: interface, bridge, ifindex, slot, VLANs, attach mode,
    /// host.
    ///
    /// # Panics
    /// When `ports` fails.
    #[must_use]
    pub fn ports(&self) -> BTreeSet<String> {
        self.agent
            .ports()
            .unwrap_or_else(|e| panic!("ports: {e:#}"))
            .iter()
            .map(|p| {
                format!(
                    "{} {} ifindex {} slot {} {} {} host {}",
                    p["interface"],
                    p["bridge"],
                    p["ifindex"],
                    p["slot"],
                    p["vlans"],
                    p["attached"],
                    p["host"]
                )
            })
            .collect()
    }

    /// The interfaces `ports` lists.
    ///
    /// # Panics
    /// When `ports` fails.
    #[must_use]
    pub fn port_names(&self) -> BTreeSet<String> {
        self.agent
            .ports()
            .unwrap_or_else(|e| panic!("ports: {e:#}"))
            .iter()
            .map(|p| p["interface"].as_str().expect("interface").to_string())
            .collect()
    }

    /// The FDB as `fdb show` lists it.
    ///
    /// # Panics
    /// When `fdb show` fails.
    #[must_use]
    pub fn fdb(&self) -> BTreeSet<FdbEntry> {
        self.agent
            .fdb(None)
            .unwrap_or_else(|e| panic!("fdb show: {e:#}"))
            .iter()
            .map(FdbRow::entry)
            .collect()
    }

    /// The static entries of [`Bed::fdb`].
    ///
    /// # Panics
    /// When `fdb show` fails.
    #[must_use]
    pub fn statics(&self) -> BTreeSet<FdbEntry> {
        self.fdb().into_iter().filter(|e| e.3).collect()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cfg);
    }
}
