//! The upstream router, played by a test: answers ARP and ICMP echo requests for its
//! addresses on their VLANs and records everything it saw.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Result, anyhow};

use crate::{
    arp_icmp::{Arp, arp_frame, echo_reply, ipv4, parse_arp, parse_echo},
    frame::{ETH_P_8021Q, parse_eth, q_tags},
    seedfull::SeedFull,
    topo::UPSTREAM_MAC,
};

/// What the [`Responder`] saw: the frame's outer VLAN (None: untagged) and what it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// An ARP request for `tpa`; whether it was answered.
    ArpRequest {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Target address asked for.
        tpa: [u8; 4],
        /// Answered.
        answered: bool,
    },
    /// An ICMP echo request to `dst`; whether it was answered.
    EchoRequest {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Destination address.
        dst: [u8; 4],
        /// Answered.
        answered: bool,
    },
    /// Anything else (ethertype after the tags).
    Other {
        /// VLAN of the frame.
        vlan: Option<u16>,
        /// Ethertype.
        ethertype: u16,
    },
}

/// The upstream router, played by the test: on the upstream switch's `eth0`, answers ARP
/// requests and ICMP echo requests for its addresses, each only on its VLAN (tagged 802.1Q),
/// from [`UPSTREAM_MAC`]. Runs on a thread until [`Responder::finish`] (or drop).
#[derive(Debug)]
pub struct Responder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<Seen>>>>,
}

impl Responder {
    /// Start answering for `answers`: (VLAN, IPv4 address).
    pub fn start(sim: &SeedFull, answers: &[(u16, &str)]) -> Result<Responder> {
        let sock = sim.socket("up")?;
        let answers: Vec<(u16, [u8; 4])> = answers.iter().map(|(v, a)| (*v, ipv4(a))).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::spawn(move || -> Result<Vec<Seen>> {
            let mut seen = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let Some(f) = sock.recv_timeout(Duration::from_millis(20))? else {
                    continue;
                };
                let Some(h) = parse_eth(&f) else { continue };
                let vlan = match h.tags.first() {
                    Some((ETH_P_8021Q, t)) => Some(t & 0xfff),
                    Some(_) => continue,
                    None => None,
                };
                let mine = |ip: [u8; 4]| vlan.is_some_and(|v| answers.contains(&(v, ip)));
                if let Some((_, a)) = parse_arp(&f) {
                    if a.op == 1 {
                        let answered = mine(a.tpa);
                        if answered {
                            let reply = Arp {
                                op: 2,
                                sha: UPSTREAM_MAC,
                                spa: a.tpa,
                                tha: a.sha,
                                tpa: a.spa,
                            };
                            sock.send(&arp_frame(a.sha, &q_tags(vlan), &reply))?;
                        }
                        seen.push(Seen::ArpRequest {
                            vlan,
                            tpa: a.tpa,
                            answered,
                        });
                        continue;
                    }
                }
                if let Some((_, e)) = parse_echo(&f) {
                    if e.icmp_type == 8 {
                        let answered = mine(e.dst) && h.dst == UPSTREAM_MAC;
                        if answered {
                            if let Some(r) = echo_reply(&f, UPSTREAM_MAC) {
                                sock.send(&r)?;
                            }
                        }
                        seen.push(Seen::EchoRequest {
                            vlan,
                            dst: e.dst,
                            answered,
                        });
                        continue;
                    }
                }
                seen.push(Seen::Other {
                    vlan,
                    ethertype: h.ethertype,
                });
            }
            Ok(seen)
        });
        Ok(Responder {
            stop,
            handle: Some(handle),
        })
    }

    /// Stop and return what it saw, in order.
    pub fn finish(mut self) -> Result<Vec<Seen>> {
        self.join()
    }

    fn join(&mut self) -> Result<Vec<Seen>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h.join().map_err(|_| anyhow!("responder panicked"))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
