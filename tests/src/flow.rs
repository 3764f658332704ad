//! A numbered steady flow of test frames between two raw sockets, counted at the far end
//! (lost, duplicated), to show that something did not disturb traffic.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};

use crate::{
    RawSocket,
    frame::{Mac, find_marker, test_frame},
};

/// The outcome of a [`Flow`].
#[derive(Clone, Debug)]
pub struct FlowResult {
    /// Frames sent.
    pub sent: u32,
    /// Distinct frames of the flow received.
    pub received: u32,
    /// Ids sent but never received.
    pub missing: Vec<u32>,
    /// Frames received more than once (counting each extra copy).
    pub duplicates: u32,
}

/// Test frames numbered `base`, `base + 1`, … sent from one raw socket at a fixed rate while
/// a collector counts them on another.
#[derive(Debug)]
pub struct Flow {
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    sender: Option<JoinHandle<Result<u32>>>,
    receiver: Option<JoinHandle<Result<Vec<u32>>>>,
    base: u32,
}

impl Flow {
    /// Start sending `test_frame(dst, src, [], base + i)` out of `from` every `1/rate_hz`
    /// seconds, and collecting the flow's frames on `to`.
    #[must_use]
    pub fn start(
        from: RawSocket,
        to: RawSocket,
        dst: Mac,
        src: Mac,
        rate_hz: u32,
        base: u32,
    ) -> Flow {
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop_recv = Arc::new(AtomicBool::new(false));
        let (ss, sr) = (Arc::clone(&stop_send), Arc::clone(&stop_recv));
        let receiver = std::thread::spawn(move || -> Result<Vec<u32>> {
            let mut got = Vec::new();
            while !sr.load(Ordering::Relaxed) {
                if let Some(f) = to.recv_timeout(Duration::from_millis(20))? {
                    if let Some(id) = find_marker(&f).filter(|id| *id >= base) {
                        got.push(id);
                    }
                }
            }
            // Whatever is still queued.
            for f in to.collect(Duration::ZERO)? {
                if let Some(id) = find_marker(&f).filter(|id| *id >= base) {
                    got.push(id);
                }
            }
            Ok(got)
        });
        let sender = std::thread::spawn(move || -> Result<u32> {
            let period = Duration::from_secs(1) / rate_hz.max(1);
            let start = Instant::now();
            let mut i: u32 = 0;
            while !ss.load(Ordering::Relaxed) {
                from.send(&test_frame(dst, src, &[], base + i))?;
                i += 1;
                let next = start + period * i;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
            Ok(i)
        });
        Flow {
            stop_send,
            stop_recv,
            sender: Some(sender),
            receiver: Some(receiver),
            base,
        }
    }

    /// Stop sending, give the last frames `grace` to arrive, and count.
    pub fn finish(mut self, grace: Duration) -> Result<FlowResult> {
        self.stop_send.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .ok_or_else(|| anyhow!("flow already finished"))?
            .join()
            .map_err(|_| anyhow!("flow sender panicked"))??;
        std::thread::sleep(grace);
        self.stop_recv.store(true, Ordering::Relaxed);
        let got = self
            .receiver
            .take()
            .ok_or_else(|| anyhow!("flow already finished"))?
            .join()
            .map_err(|_| anyhow!("flow receiver panicked"))??;
        let distinct: BTreeSet<u32> = got.iter().copied().collect();
        let missing = (self.base..self.base + sent)
            .filter(|id| !distinct.contains(id))
            .collect();
        Ok(FlowResult {
            sent,
            received: u32::try_from(distinct.len()).unwrap_or(u32::MAX),
            missing,
            duplicates: u32::try_from(got.len() - distinct.len()).unwrap_or(u32::MAX),
        })
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_recv.store(true, Ordering::Relaxed);
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        if let Some(h) = self.receiver.take() {
            let _ = h.join();
        }
    }
}
