//! Raw `AF_PACKET` sockets that send and receive whole Ethernet frames on
//! one interface of a namespace, with VLAN tags shown as on the wire.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::frame::ETH_P_8021Q;
use crate::netns::{Netns, ifindex};

/// Receive buffer size: larger than any frame a veth can carry (64 KiB MTU).
const RECV_BUF: usize = 65_536 + 64;

/// How long [`RawSocket::send`] waits for room in the socket send queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface in a namespace.
///
/// Receiving returns only frames that arrived on the interface: frames this
/// or any other socket sends out of it (`PACKET_OUTGOING`) are skipped. A
/// VLAN tag the kernel moved into skb metadata on receive is put back at
/// offset 12, so every received frame reads as it was on the wire. The
/// socket is non-blocking; all waits are bounded.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl RawSocket {
    /// Opens a raw socket on `ifname` inside `ns` (all ethertypes, with
    /// `PACKET_AUXDATA` enabled).
    pub fn open(ns: &Netns, ifname: &str) -> Result<RawSocket> {
        let idx = ifindex(ns, ifname)?;
        let ifindex = i32::try_from(idx).context("interface index out of range")?;
        let fd = ns
            .run_in(|| open_bound(ifindex))?
            .with_context(|| format!("opening raw socket on {}:{ifname}", ns.name()))?;
        Ok(RawSocket { fd, ifindex })
    }

    /// Makes the receive buffer `bytes` large (`SO_RCVBUFFORCE`, root), so that a receiver
    /// descheduled for a while on a loaded machine does not overflow under a fast flow.
    pub fn set_rcvbuf(&self, bytes: libc::c_int) -> Result<()> {
        // SAFETY: `bytes` is a live c_int of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const bytes).cast(),
                socklen::<libc::c_int>(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("setsockopt(SO_RCVBUFFORCE)");
        }
        Ok(())
    }

    /// Sends one complete Ethernet frame (no FCS) out of the interface.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        ensure!(frame.len() >= 14, "frame too short: {} bytes", frame.len());
        let deadline = Instant::now() + SEND_TIMEOUT;
        loop {
            // SAFETY: `frame` is valid for reads of `frame.len()` bytes.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if let Ok(n) = usize::try_from(n) {
                ensure!(n == frame.len(), "short send: {n} of {} bytes", frame.len());
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN | libc::ENOBUFS) if Instant::now() < deadline => {
                    self.poll(libc::POLLOUT, Duration::from_millis(10))?;
                }
                _ => return Err(err).context("sending frame"),
            }
        }
    }

    /// Waits up to `d` for a frame to arrive and returns it, or `None` on
    /// timeout. `Duration::ZERO` only looks at what is already queued.
    pub fn recv_timeout(&self, d: Duration) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(frame) = self.try_recv()? {
                return Ok(Some(frame));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.poll(libc::POLLIN, left)?;
        }
    }

    /// Returns every frame that arrives within `d` (including any already
    /// queued), in order. `collect(Duration::ZERO)` drains the queue.
    pub fn collect(&self, d: Duration) -> Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + d;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_timeout(left)? {
                Some(f) => frames.push(f),
                None => return Ok(frames),
            }
        }
    }

    /// Waits up to `d` for `events` on the socket (returns early on EINTR).
    fn poll(&self, events: libc::c_short, d: Duration) -> Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // Round up so a sub-millisecond remainder still waits.
        let ms = d.as_nanos().div_ceil(1_000_000);
        let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err).context("poll on raw socket");
            }
        }
        Ok(())
    }

    /// Reads queued frames until one that arrived on our interface turns up
    /// (returned with its VLAN tag restored) or the queue is empty (`None`).
    fn try_recv(&self) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            // SAFETY: all-zero is valid for these plain C structs.
            let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
            // u64 elements keep the control buffer aligned for cmsghdr.
            let mut cmsg_buf = [0u64; 16];
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: as above.
            let mut msg: libc::msghdr = unsafe { zeroed() };
            msg.msg_name = (&raw mut addr).cast();
            msg.msg_namelen = socklen::<libc::sockaddr_ll>();
            msg.msg_iov = &raw mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = size_of::<[u64; 16]>();

            // SAFETY: `msg` points at live buffers of the stated sizes.
            let n = unsafe {
                libc::recvmsg(
                    self.fd.as_raw_fd(),
                    &raw mut msg,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            let Ok(len) = usize::try_from(n) else {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return Ok(None),
                    _ => return Err(err).context("recvmsg on raw socket"),
                }
            };
            if addr.sll_pkttype == libc::PACKET_OUTGOING || addr.sll_ifindex != self.ifindex {
                continue;
            }
            // With MSG_TRUNC, `len` is the real frame length.
            ensure!(len <= buf.len(), "received frame of {len} bytes truncated");
            ensure!(
                msg.msg_flags & libc::MSG_CTRUNC == 0,
                "control data truncated"
            );
            let mut frame = buf[..len].to_vec();
            // SAFETY: `msg` was filled in by recvmsg.
            if let Some(aux) = unsafe { auxdata(&msg) } {
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        ETH_P_8021Q
                    };
                    if frame.len() < 12 {
                        bail!("{len}-byte frame with a VLAN tag in metadata");
                    }
                    let mut tag = [0u8; 4];
                    tag[..2].copy_from_slice(&tpid.to_be_bytes());
                    tag[2..].copy_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    frame.splice(12..12, tag);
                }
            }
            return Ok(Some(frame));
        }
    }
}

/// `size_of::<T>()` as a `socklen_t`.
fn socklen<T>() -> libc::socklen_t {
    // Only used for small C structs, far below u32::MAX.
    #[allow(clippy::cast_possible_truncation)]
    let len = size_of::<T>() as libc::socklen_t;
    len
}

/// The `PACKET_AUXDATA` control message of `msg`, if any.
///
/// # Safety
/// `msg` must have been filled in by a successful `recvmsg`.
unsafe fn auxdata(msg: &libc::msghdr) -> Option<libc::tpacket_auxdata> {
    // SAFETY: the caller guarantees `msg` and its control buffer are valid.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == libc::SOL_PACKET && c.cmsg_type == libc::PACKET_AUXDATA {
                let data = libc::CMSG_DATA(cmsg);
                return Some(data.cast::<libc::tpacket_auxdata>().read_unaligned());
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// Creates a raw socket in the calling thread's namespace, bound to
/// `ifindex` for all protocols, with `PACKET_AUXDATA` on.
fn open_bound(ifindex: i32) -> Result<OwnedFd> {
    // Protocol 0: the socket receives nothing until bound, so no frame from
    // another interface can sneak in before `bind`.
    // SAFETY: plain syscall.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("socket(AF_PACKET, SOCK_RAW)");
    }
    // SAFETY: `raw` is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    set_int_opt(&fd, libc::PACKET_AUXDATA, 1).context("setsockopt(PACKET_AUXDATA)")?;
    // Best effort: outgoing frames are also filtered in userspace.
    let _ = set_int_opt(&fd, libc::PACKET_IGNORE_OUTGOING, 1);

    // SAFETY: all-zero is valid for sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
    addr.sll_family = libc::sa_family_t::try_from(libc::AF_PACKET).context("AF_PACKET")?;
    addr.sll_protocol = u16::try_from(libc::ETH_P_ALL).context("ETH_P_ALL")?.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: `addr` is a valid sockaddr_ll of the given length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            socklen::<libc::sockaddr_ll>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("bind(AF_PACKET)");
    }
    Ok(fd)
}

/// `setsockopt(SOL_PACKET, opt, value)`.
fn set_int_opt(fd: &OwnedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a live c_int of the stated size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (&raw const value).cast(),
            socklen::<libc::c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
