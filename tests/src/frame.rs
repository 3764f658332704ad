//! Building and parsing Ethernet frames (with up to two VLAN tags) from
//! userspace, plus a recognisable test payload ("marker").
//!
//! Frames are plain bytes as they appear on the wire, without FCS. Nothing is
//! padded to the 60-byte Ethernet minimum: veth carries short frames as-is,
//! so pushing or popping a tag keeps frames byte-for-byte comparable.

use anyhow::{Context, Result, bail};

/// A 48-bit MAC address.
pub type Mac = [u8; 6];

/// The broadcast MAC address `ff:ff:ff:ff:ff:ff`.
pub const BROADCAST: Mac = [0xff; 6];

// The TPIDs (802.1Q, 802.1ad), the test ethertype (0x88b5, "local experimental ethertype
// 1"), the TCI and the frame builder are the fixture table's, so that the namespace tests and
// the fixture rows build frames one way.
pub use xennet_common::{
    ETH_P_8021AD, ETH_P_8021Q,
    fwd::fixtures::lab::{ETH_P_TEST, build_eth, tci},
};

/// Bytes that start every [`marker`] payload (the fixtures' `lab::frame` writes the same).
const MARKER_MAGIC: [u8; 8] = *b"XNmark\x5a\xa5";

/// Length of a [`marker`] payload: magic, id, and the id's complement.
pub const MARKER_LEN: usize = MARKER_MAGIC.len() + 8;

/// Parses a MAC address written as six hex bytes separated by `:` or `-`,
/// e.g. `"02:00:00:00:00:01"`.
pub fn parse_mac(s: &str) -> Result<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut mac {
        let part = parts
            .next()
            .with_context(|| format!("MAC address {s:?} has fewer than 6 bytes"))?;
        if part.is_empty() || part.len() > 2 {
            bail!("MAC address {s:?}: bad byte {part:?}");
        }
        *byte = u8::from_str_radix(part, 16)
            .with_context(|| format!("MAC address {s:?}: bad byte {part:?}"))?;
    }
    if parts.next().is_some() {
        bail!("MAC address {s:?} has more than 6 bytes");
    }
    Ok(mac)
}

/// Formats a MAC address as lowercase `aa:bb:cc:dd:ee:ff` (the form `ip`
/// accepts).
#[must_use]
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The VLAN id (low 12 bits) of a TCI.
#[must_use]
pub fn tci_vid(tci: u16) -> u16 {
    tci & 0x0fff
}

/// The priority code point (top 3 bits) of a TCI.
#[must_use]
pub fn tci_pcp(tci: u16) -> u8 {
    // The shifted value is at most 7, so the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let pcp = (tci >> 13) as u8;
    pcp
}

/// Builds a test frame: ethertype [`ETH_P_TEST`] carrying [`marker`]`(id)` (the fixture
/// table's `lab::frame`; the `markers` test checks that [`find_marker`] reads its id).
#[must_use]
pub fn test_frame(dst: Mac, src: Mac, tags: &[(u16, u16)], id: u32) -> Vec<u8> {
    xennet_common::fwd::fixtures::lab::frame(dst, src, tags, id)
}

/// Length of a [`test_frame`] with `tags` VLAN tags.
#[must_use]
pub fn test_frame_len(tags: u64) -> u64 {
    14 + 4 * tags + MARKER_LEN as u64
}

/// An IEEE 802.1Q tag for VLAN `vid` (PCP 0, DEI 0), as `(tpid, tci)`.
#[must_use]
pub fn q_tag(vid: u16) -> (u16, u16) {
    (ETH_P_8021Q, tci(0, false, vid))
}

/// The 802.1Q tag list for `vid` (PCP 0), or none for `None`.
#[must_use]
pub fn q_tags(vid: Option<u16>) -> Vec<(u16, u16)> {
    vid.map(|v| vec![q_tag(v)]).unwrap_or_default()
}

/// The header of an Ethernet frame as decoded by [`parse_eth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// VLAN tags as `(tpid, tci)`, outermost first (at most two).
    pub tags: Vec<(u16, u16)>,
    /// The ethertype after the tags.
    pub ethertype: u16,
    /// Offset of the first payload byte after the ethertype.
    pub payload_offset: usize,
}

impl Parsed {
    /// The payload part of `frame` (the frame this header was parsed from).
    #[must_use]
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.payload_offset..).unwrap_or_default()
    }
}

/// Parses an Ethernet header with up to two VLAN tags (TPID 0x8100 or
/// 0x88a8). A third tag is reported as the ethertype. Returns `None` if the
/// frame is too short.
#[must_use]
pub fn parse_eth(frame: &[u8]) -> Option<Parsed> {
    let be16 = |off: usize| -> Option<u16> {
        let b = frame.get(off..off + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let dst: Mac = frame.get(0..6)?.try_into().ok()?;
    let src: Mac = frame.get(6..12)?.try_into().ok()?;
    let mut off = 12;
    let mut tags = Vec::new();
    let mut ethertype = be16(off)?;
    while tags.len() < 2 && (ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD) {
        tags.push((ethertype, be16(off + 2)?));
        off += 4;
        ethertype = be16(off)?;
    }
    Some(Parsed {
        dst,
        src,
        tags,
        ethertype,
        payload_offset: off + 2,
    })
}

/// A recognisable [`MARKER_LEN`]-byte payload carrying `id`, so a test can
/// tell which of its frames arrived (see [`find_marker`]).
#[must_use]
pub fn marker(id: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(MARKER_LEN);
    m.extend_from_slice(&MARKER_MAGIC);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(!id).to_be_bytes());
    m
}

/// Finds a [`marker`] anywhere in `frame` (whatever tags or headers precede
/// it) and returns its id.
#[must_use]
pub fn find_marker(frame: &[u8]) -> Option<u32> {
    frame.windows(MARKER_LEN).find_map(|w| {
        if w[..MARKER_MAGIC.len()] != MARKER_MAGIC {
            return None;
        }
        let id = u32::from_be_bytes(w[8..12].try_into().ok()?);
        let check = u32::from_be_bytes(w[12..16].try_into().ok()?);
        (check == !id).then_some(id)
    })
}

/// The VLAN of a frame with one 802.1Q tag (`None`: untagged).
///
/// # Panics
/// On a frame that does not parse, or with any other tagging (a test expects one of the two).
#[must_use]
pub fn vlan_of(f: &[u8]) -> Option<u16> {
    let p = parse_eth(f).expect("parse");
    match p.tags.as_slice() {
        [] => None,
        [(ETH_P_8021Q, t)] => Some(t & 0xfff),
        other => panic!("unexpected tags {other:04x?} on {f:02x?}"),
    }
}

/// The bytes of `f` in hex, without separators (for comparing frames in assertion messages).
#[must_use]
pub fn hex(f: &[u8]) -> String {
    use std::fmt::Write as _;
    f.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
    const B: Mac = [0x02, 0, 0, 0, 0, 0x0b];

    #[test]
    fn mac_round_trip() {
        let e = parse_mac("02:ab:cd:00:01").unwrap_err();
        assert!(e.to_string().contains("fewer"), "{e}");
        let m = parse_mac("02:AB:cd:00:01:ff").unwrap();
        assert_eq!(m, [0x02, 0xab, 0xcd, 0x00, 0x01, 0xff]);
        assert_eq!(format_mac(&m), "02:ab:cd:00:01:ff");
        assert_eq!(parse_mac("02-ab-cd-00-01-ff").unwrap(), m);
        assert!(parse_mac("02:ab:cd:00:01:ff:00").is_err());
        assert!(parse_mac("02:ab:cd:00:01:fff").is_err());
        assert!(parse_mac("02:ab:cd:00:01:").is_err());
        assert!(parse_mac("02:ab:cd:00:01:gg").is_err());
    }

    #[test]
    fn tci_fields() {
        let t = tci(3, false, 4094);
        assert_eq!(t, 0x6ffe);
        assert_eq!(tci_vid(t), 4094);
        assert_eq!(tci_pcp(t), 3);
        assert_eq!(tci(7, true, 0xffff), 0xffff);
    }

    #[test]
    fn build_and_parse_untagged() {
        let f = build_eth(A, B, &[], ETH_P_TEST, b"hello");
        assert_eq!(f.len(), 14 + 5);
        let p = parse_eth(&f).unwrap();
        assert_eq!(p.dst, A);
        assert_eq!(p.src, B);
        assert!(p.tags.is_empty());
        assert_eq!(p.ethertype, ETH_P_TEST);
        assert_eq!(p.payload(&f), b"hello");
    }

    #[test]
    fn build_and_parse_qinq() {
        let tags = [(ETH_P_8021AD, tci(1, false, 100)), (ETH_P_8021Q, 200)];
        let f = build_eth(A, B, &tags, 0x0800, &[1, 2, 3]);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        let p = parse_eth(&f).unwrap();
        assert_eq!(p.tags, tags);
        assert_eq!(p.ethertype, 0x0800);
        assert_eq!(p.payload_offset, 22);
        assert_eq!(p.payload(&f), &[1, 2, 3]);
    }

    #[test]
    fn third_tag_is_ethertype() {
        let tags = [(ETH_P_8021Q, 1), (ETH_P_8021Q, 2), (ETH_P_8021Q, 3)];
        let f = build_eth(A, B, &tags, ETH_P_TEST, &[]);
        let p = parse_eth(&f).unwrap();
        assert_eq!(p.tags, &tags[..2]);
        assert_eq!(p.ethertype, ETH_P_8021Q);
        assert_eq!(p.payload_offset, 22);
    }

    #[test]
    fn parse_truncated() {
        assert!(parse_eth(&[0; 13]).is_none());
        assert!(parse_eth(&[0; 14]).is_some());
        let f = build_eth(A, B, &[(ETH_P_8021Q, 5)], ETH_P_TEST, &[]);
        assert!(parse_eth(&f[..17]).is_none());
        assert!(parse_eth(&f).is_some());
        // A header-only frame has an empty payload.
        assert!(parse_eth(&f).unwrap().payload(&f).is_empty());
    }

    #[test]
    fn markers() {
        for id in [0, 1, 0xdead_beef, u32::MAX] {
            let f = test_frame(A, B, &[(ETH_P_8021Q, tci(3, false, 4094))], id);
            assert_eq!(f.len(), 18 + MARKER_LEN);
            assert_eq!(find_marker(&f), Some(id));
        }
        let mut f = test_frame(A, B, &[], 7);
        let last = f.len() - 1;
        f[last] ^= 1;
        assert_eq!(find_marker(&f), None, "corrupted check must not match");
        assert_eq!(find_marker(&build_eth(A, B, &[], ETH_P_TEST, b"x")), None);
    }
}
