//! Parsing: the Ethernet header and up to two VLAN tags, at constant offsets.

use super::Frame;
use crate::{ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, VLAN_VID_MASK};

/// A VLAN tag as it appears on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tag {
    /// Tag protocol identifier (0x8100 or 0x88a8).
    pub tpid: u16,
    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    pub tci: u16,
}

impl Tag {
    /// The VLAN id.
    #[must_use]
    pub const fn vid(self) -> u16 {
        self.tci & VLAN_VID_MASK
    }
}

/// A tag that may be absent, whose bytes are always written (zero when absent). Not an
/// `Option<Tag>`: LLVM leaves the payload of `None` undefined and may compute with it before
/// testing the discriminant; once such a register was spilled, the verifier refused the
/// program (`R3 !read_ok`). [`MaybeTag::get`] gives the `Option`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaybeTag {
    present: bool,
    tag: Tag,
}

impl MaybeTag {
    /// No tag.
    pub const NONE: MaybeTag = MaybeTag {
        present: false,
        tag: Tag { tpid: 0, tci: 0 },
    };

    /// Tag `tag`.
    #[must_use]
    pub const fn some(tag: Tag) -> MaybeTag {
        MaybeTag { present: true, tag }
    }

    /// The tag, if present.
    #[inline(always)]
    #[must_use]
    pub const fn get(self) -> Option<Tag> {
        if self.present { Some(self.tag) } else { None }
    }

    /// Whether a tag is present.
    #[inline(always)]
    #[must_use]
    pub const fn is_some(self) -> bool {
        self.present
    }

    /// Whether a tag is present and `f` holds for it.
    #[inline(always)]
    pub fn is_some_and(self, f: impl FnOnce(Tag) -> bool) -> bool {
        self.present && f(self.tag)
    }

    /// `f` of the tag, if present.
    #[inline(always)]
    pub fn map<U>(self, f: impl FnOnce(Tag) -> U) -> Option<U> {
        self.get().map(f)
    }
}

/// The Ethernet header of a frame, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHdr {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// Outer tag (from the bytes, or from metadata when offloaded).
    pub outer: MaybeTag,
    /// Inner tag (`QinQ`), if any.
    pub inner: MaybeTag,
    /// Ethertype after the tags.
    pub proto: u16,
    /// Whether `outer` lives in metadata rather than in the bytes.
    pub outer_offloaded: bool,
}

/// Why a frame could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than an Ethernet header.
    Runt,
    /// Ends inside a VLAN tag.
    Truncated,
}

impl EthHdr {
    /// Offset of the L3 header: after the MACs, the in-band tags and the ethertype (14, 18 or
    /// 22).
    #[must_use]
    pub const fn l3_off(&self) -> usize {
        let mut off = crate::ETH_HLEN;
        if self.outer.is_some() && !self.outer_offloaded {
            off += crate::VLAN_HLEN;
        }
        if self.inner.is_some() {
            off += crate::VLAN_HLEN;
        }
        off
    }
}

const fn is_vlan_tpid(t: u16) -> bool {
    t == ETH_P_8021Q || t == ETH_P_8021AD
}

/// Parse the Ethernet header and up to two VLAN tags (802.1Q or 802.1ad).
#[inline(always)]
pub fn parse<F: Frame>(f: &F) -> Result<EthHdr, ParseError> {
    let Some(h) = f.load::<ETH_HLEN>(0) else {
        return Err(ParseError::Runt);
    };
    let mut hdr = EthHdr {
        dst: [h[0], h[1], h[2], h[3], h[4], h[5]],
        src: [h[6], h[7], h[8], h[9], h[10], h[11]],
        outer: MaybeTag::NONE,
        inner: MaybeTag::NONE,
        proto: u16::from_be_bytes([h[12], h[13]]),
        outer_offloaded: false,
    };
    // Where the first in-band tag would sit.
    let mut off = 12;
    if let Some((tpid, tci)) = f.offloaded_tag() {
        hdr.outer = MaybeTag::some(Tag { tpid, tci });
        hdr.outer_offloaded = true;
    } else if is_vlan_tpid(hdr.proto) {
        let Some(t) = f.load::<4>(14) else {
            return Err(ParseError::Truncated);
        };
        hdr.outer = MaybeTag::some(Tag {
            tpid: hdr.proto,
            tci: u16::from_be_bytes([t[0], t[1]]),
        });
        hdr.proto = u16::from_be_bytes([t[2], t[3]]);
        off = 16;
    }
    if hdr.outer.is_some() && is_vlan_tpid(hdr.proto) {
        // Constant offsets for both cases keep the verifier's bounds simple.
        let t = if off == 12 {
            f.load::<4>(14)
        } else {
            f.load::<4>(18)
        };
        let Some(t) = t else {
            return Err(ParseError::Truncated);
        };
        hdr.inner = MaybeTag::some(Tag {
            tpid: hdr.proto,
            tci: u16::from_be_bytes([t[0], t[1]]),
        });
        hdr.proto = u16::from_be_bytes([t[2], t[3]]);
    }
    Ok(hdr)
}
