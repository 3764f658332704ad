//! What a device does with the VLAN tags it receives: whether its driver takes them out of the
//! frame (ethtool's rx-vlan offload; veth always, when its peer sends skbs carrying a tag in
//! `vlan_tci`) and whether it reports them to XDP (the netdev family's XDP rx metadata
//! features, `vlan-tag`: the `bpf_xdp_metadata_rx_vlan_tag` kfunc).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, bail};

/// How received tags reach an XDP program on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RxTags {
    /// In the frame's bytes: the driver leaves them there.
    Inline,
    /// Taken out of the frame, and reported to XDP through the driver's VLAN hint.
    Hint,
    /// Taken out of the frame without a hint (the reason): XDP cannot see them.
    Stripped(String),
}

/// Environment knob for the tests: `inline`, `hint` or `stripped` overrides what
/// [`probe`] finds on every device (a device without the hint cannot be made here).
pub const TEST_KNOB: &str = "XENNET_TEST_RX_VLAN";

/// What `name` (ifindex `idx`) does with received tags.
#[must_use]
pub fn probe(name: &str, idx: u32) -> RxTags {
    match std::env::var(TEST_KNOB).as_deref() {
        Ok("inline") => return RxTags::Inline,
        Ok("hint") => return RxTags::Hint,
        Ok("stripped") => {
            return RxTags::Stripped(format!("{TEST_KNOB}=stripped (test knob)"));
        }
        _ => {}
    }
    let driver = ethtool_driver(name).unwrap_or_default();
    let strips = if driver == "veth" {
        // rx-vlan offload is a flag without effect on veth: the tag is wherever the peer's
        // skb had it, in `vlan_tci` when the peer has tx-vlan offload (any bridge behind it).
        Some("veth keeps the tag its peer sends in vlan_tci".to_string())
    } else {
        // An interface ethtool cannot ask is taken to leave the tags in the frame.
        ethtool_rxvlan(name)
            .is_ok_and(|on| on)
            .then(|| format!("{driver} rx-vlan offload on"))
    };
    let Some(why) = strips else {
        return RxTags::Inline;
    };
    match xdp_rx_metadata(idx) {
        Ok(f) if f & NETDEV_XDP_RX_METADATA_VLAN_TAG != 0 => RxTags::Hint,
        Ok(_) => RxTags::Stripped(format!("{why}, and the driver has no XDP VLAN hint")),
        Err(e) => RxTags::Stripped(format!("{why}; XDP rx metadata features unknown: {e:#}")),
    }
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One `SIOCETHTOOL` call on `name` with `data` (an ethtool command structure).
fn ethtool(name: &str, data: &mut [u8]) -> io::Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut u8,
        _pad: [u8; 16],
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: data.as_mut_ptr(),
        _pad: [0; 16],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    req.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let sock = dgram_socket()?;
    // SAFETY: `req` is an ifreq whose data points at `data`, a buffer of the command's size.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The driver's name (`ETHTOOL_GDRVINFO`).
fn ethtool_driver(name: &str) -> io::Result<String> {
    let mut info = [0u8; 196];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    ethtool(name, &mut info)?;
    let drv = &info[4..36];
    let end = drv.iter().position(|&b| b == 0).unwrap_or(drv.len());
    Ok(String::from_utf8_lossy(&drv[..end]).into_owned())
}

/// Whether rx-vlan offload (`rxvlan`) is on (`ETHTOOL_GFLAGS`).
fn ethtool_rxvlan(name: &str) -> io::Result<bool> {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&ETHTOOL_GFLAGS.to_ne_bytes());
    ethtool(name, &mut v)?;
    let flags = u32::from_ne_bytes([v[4], v[5], v[6], v[7]]);
    Ok(flags & ETH_FLAG_RXVLAN != 0)
}

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_RX_METADATA_FEATURES: u16 = 5;
const NETDEV_XDP_RX_METADATA_VLAN_TAG: u64 = 4;

/// The device's XDP rx metadata features (`netdev` generic netlink family, `dev-get`).
fn xdp_rx_metadata(idx: u32) -> anyhow::Result<u64> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_GENERIC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("generic netlink socket");
    }
    // SAFETY: a fresh descriptor of ours.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut name = b"netdev\0".to_vec();
    name.resize(8, 0);
    let reply = genl(
        &sock,
        GENL_ID_CTRL,
        CTRL_CMD_GETFAMILY,
        &[(CTRL_ATTR_FAMILY_NAME, &name[..7])],
    )
    .context("resolving the netdev netlink family (Linux ≥ 6.3)")?;
    let family = attr(&reply, CTRL_ATTR_FAMILY_ID)
        .filter(|a| a.len() >= 2)
        .map(|a| u16::from_ne_bytes([a[0], a[1]]))
        .context("no family id in the reply")?;
    let reply = genl(
        &sock,
        family,
        NETDEV_CMD_DEV_GET,
        &[(NETDEV_A_DEV_IFINDEX, &idx.to_ne_bytes())],
    )
    .context("netdev dev-get")?;
    // Absent on kernels before the attribute existed (6.3–6.7): no hint.
    Ok(attr(&reply, NETDEV_A_DEV_XDP_RX_METADATA_FEATURES)
        .filter(|a| a.len() >= 8)
        .map_or(0, |a| {
            u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]])
        }))
}

/// One generic netlink request (`cmd` of `family`, version 1, with `attrs`); the payload of
/// the reply after its generic header.
fn genl(sock: &OwnedFd, family: u16, cmd: u8, attrs: &[(u16, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut msg = vec![0u8; 16];
    msg.extend_from_slice(&[cmd, 1, 0, 0]);
    for (ty, data) in attrs {
        let len = u16::try_from(4 + data.len()).context("attribute too long")?;
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(data);
        msg.resize(msg.len().next_multiple_of(4), 0);
    }
    let total = u32::try_from(msg.len()).context("message too long")?;
    msg[..4].copy_from_slice(&total.to_ne_bytes());
    msg[4..6].copy_from_slice(&family.to_ne_bytes());
    // No NLM_F_ACK: an error still comes back, and no stray acknowledgement is left queued
    // for the next request to read.
    let flags = u16::try_from(libc::NLM_F_REQUEST).unwrap_or(1);
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // SAFETY: sending our own buffer on our socket (to the kernel: a zeroed sockaddr_nl).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = u16::try_from(libc::AF_NETLINK).unwrap_or(16);
    // SAFETY: as above; sizes are those of the buffers given.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const sa).cast(),
            u32::try_from(std::mem::size_of::<libc::sockaddr_nl>()).unwrap_or(12),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error()).context("sending to netlink");
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: receiving into our own buffer of the given size.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    buf.truncate(n);
    if buf.len() < 20 {
        bail!("short netlink reply");
    }
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    if ty == u16::try_from(libc::NLMSG_ERROR).unwrap_or(2) {
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        return Err(io::Error::from_raw_os_error(-code)).context("netlink error");
    }
    let len = usize::try_from(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]))
        .unwrap_or(0)
        .min(buf.len());
    Ok(buf[20.min(len)..len].to_vec())
}

/// The payload of attribute `ty` in a run of netlink attributes.
fn attr(mut b: &[u8], ty: u16) -> Option<&[u8]> {
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let t = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        if t == ty {
            return Some(&b[4..len]);
        }
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_found_past_padding() {
        let b = [6, 0, 2, 0, b'a', b'b', 0, 0, 8, 0, 1, 0, 7, 0, 0, 0];
        assert_eq!(attr(&b, 1), Some(&[7, 0, 0, 0][..]));
        assert_eq!(attr(&b, 2), Some(&b"ab"[..]));
        assert_eq!(attr(&b, 3), None);
        assert_eq!(attr(&[9, 0, 1, 0], 1), None);
    }
}
