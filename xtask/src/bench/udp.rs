//! The benchmark's test frame: Ethernet, optional 802.1Q tag, IPv4 and UDP, with a valid IPv4
//! header (`br_netfilter` checks it).

use xennet_tests::frame::Mac;

/// An Ethernet/IPv4/UDP frame of `len` bytes (no FCS), optionally 802.1Q-tagged; IPv4 header
/// valid (`br_netfilter` checks it).
#[must_use]
pub fn udp_frame(len: usize, dst: Mac, src: Mac, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let l3 = len.saturating_sub(f.len()).max(28);
    #[expect(clippy::cast_possible_truncation, reason = "frames are < 4 KiB")]
    let tot = l3 as u16;
    let mut ip = [
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2,
    ];
    ip[2..4].copy_from_slice(&tot.to_be_bytes());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits")]
    let csum = !(sum as u16);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = tot - 20;
    f.extend_from_slice(&9000u16.to_be_bytes());
    f.extend_from_slice(&9001u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + usize::from(udp_len) - 8, 0x5a);
    f
}

#[cfg(test)]
mod tests {
    use super::udp_frame;

    fn ip_checksum_ok(ip: &[u8]) -> bool {
        let mut sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn frames_have_the_size_and_a_valid_ipv4_header() {
        let (d, s) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        for (len, vlan) in [(60, None), (64, Some(100)), (1514, None)] {
            let f = udp_frame(len, d, s, vlan);
            assert_eq!(f.len(), len);
            let l3 = if vlan.is_some() { 18 } else { 14 };
            assert_eq!(&f[l3 - 2..l3], &[0x08, 0x00]);
            let ip = &f[l3..l3 + 20];
            assert!(ip_checksum_ok(ip), "bad IPv4 checksum for {len}");
            assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), len - l3);
            let udp_len = u16::from_be_bytes([f[l3 + 24], f[l3 + 25]]);
            assert_eq!(usize::from(udp_len), len - l3 - 20);
        }
        let t = udp_frame(64, d, s, Some(100));
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x00, 100]);
    }
}
