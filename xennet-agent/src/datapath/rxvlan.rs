//! The VLAN prologue of a port whose driver reports received tags only in its XDP hint: a
//! small device-bound XDP program, made here instruction by instruction, that reads the tag
//! with the `bpf_xdp_metadata_rx_vlan_tag` kfunc, writes it back into the frame, marks the
//! frame ([`XDP_META_TAG_RESTORED`]) and tail-calls the shared `xennet_xdp`.
//!
//! Why a prologue and not `xennet_xdp` itself: metadata kfuncs need a device-bound load
//! (`prog_ifindex`, `BPF_F_XDP_DEV_BOUND_ONLY`), which aya 0.14 cannot do, nor relocate a
//! kfunc call; a device-bound program attaches to its device only and cannot sit in a program
//! array, but it may tail-call an ordinary one (`bpf_check_tail_call`; checked on 6.18). So one
//! `xennet_xdp` still serves every port, and each hinted port has its own 30-instruction
//! prologue and a one-slot program array holding `xennet_xdp`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
    sync::OnceLock,
};

use anyhow::{Context as _, anyhow};
use xennet_common::maps::XDP_META_TAG_RESTORED;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
const BPF_F_XDP_DEV_BOUND_ONLY: u32 = 1 << 6;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// The kfunc, looked up by name in the kernel's BTF.
const KFUNC: &str = "bpf_xdp_metadata_rx_vlan_tag";

/// `bpf(cmd, attr)` with `attr` a zero-padded `union bpf_attr`; the returned descriptor, if any.
fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<i64> {
    // SAFETY: `attr` is a bpf_attr of the size given; the pointers in it point at live buffers
    // of the sizes the command reads.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn fd_of(rc: i64) -> anyhow::Result<OwnedFd> {
    let raw = i32::try_from(rc).context("descriptor out of range")?;
    // SAFETY: a descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn fd32(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// The kfunc's BTF id in vmlinux (parsed once).
fn kfunc_id() -> anyhow::Result<u32> {
    static ID: OnceLock<Result<u32, String>> = OnceLock::new();
    ID.get_or_init(|| {
        let btf = aya_obj::btf::Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
        btf.id_by_type_name_kind(KFUNC, aya_obj::btf::BtfKind::Func)
            .map_err(|e| format!("{KFUNC} not in the kernel's BTF (Linux ≥ 6.8): {e}"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One instruction: opcode, registers, offset, immediate.
const fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    (code as u64)
        | (((dst | (src << 4)) as u64) << 8)
        | ((off.cast_unsigned() as u64) << 16)
        | ((imm.cast_unsigned() as u64) << 32)
}

/// The prologue: `map_fd` is its program array (slot 0: `xennet_xdp`).
fn prologue(kfunc: u32, map_fd: u32) -> Vec<u64> {
    const PASS: i16 = 32; // index of the `r0 = XDP_PASS` instruction
    const TAIL: i16 = 26; // index of the tail call sequence
    let kfunc = i32::try_from(kfunc).unwrap_or(0);
    let magic = i32::from_ne_bytes(XDP_META_TAG_RESTORED.to_ne_bytes());
    let p: [u64; 34] = [
        ins(0xbf, 6, 1, 0, 0),         // 0: r6 = ctx
        ins(0x7a, 10, 0, -8, 0),       // 1: *(u64 *)(fp - 8) = 0
        ins(0xbf, 2, 10, 0, 0),        // 2: r2 = fp
        ins(0x07, 2, 0, 0, -8),        // 3: r2 -= 8 (__be16 *vlan_proto)
        ins(0xbf, 3, 10, 0, 0),        // 4: r3 = fp
        ins(0x07, 3, 0, 0, -6),        // 5: r3 -= 6 (u16 *vlan_tci)
        ins(0x85, 0, 2, 0, kfunc),     // 6: call the kfunc (BPF_PSEUDO_KFUNC_CALL)
        ins(0x55, 0, 0, TAIL - 8, 0),  // 7: no tag in the hint: on to xennet_xdp
        ins(0xbf, 1, 6, 0, 0),         // 8: r1 = ctx
        ins(0xb7, 2, 0, 0, -4),        // 9: r2 = -4
        ins(0x85, 0, 0, 0, 54),        // 10: bpf_xdp_adjust_meta(ctx, -4)
        ins(0x55, 0, 0, PASS - 12, 0), // 11: no room: TC reads the skb's tag
        ins(0xbf, 1, 6, 0, 0),         // 12: r1 = ctx
        ins(0xb7, 2, 0, 0, -4),        // 13: r2 = -4
        ins(0x85, 0, 0, 0, 44),        // 14: bpf_xdp_adjust_head(ctx, -4)
        ins(0x55, 0, 0, PASS - 16, 0), // 15: no room: TC reads the skb's tag
        ins(0x61, 2, 6, 8, 0),         // 16: r2 = data_meta
        ins(0x61, 3, 6, 0, 0),         // 17: r3 = data
        ins(0x61, 4, 6, 4, 0),         // 18: r4 = data_end
        ins(0xbf, 5, 2, 0, 0),         // 19: r5 = data_meta
        ins(0x07, 5, 0, 0, 4),         // 20: r5 += 4
        ins(0x2d, 5, 3, PASS - 22, 0), // 21: if r5 > data: pass
        ins(0xbf, 5, 3, 0, 0),         // 22: r5 = data
        ins(0x07, 5, 0, 0, 16),        // 23: r5 += 16
        ins(0x2d, 5, 4, PASS - 25, 0), // 24: if r5 > data_end: pass
        ins(0x05, 0, 0, 10, 0),        // 25: goto 36 (write), patched below
        // 26: tail call (TAIL)
        ins(0xbf, 1, 6, 0, 0), // 26: r1 = ctx
        ins(0x18, 2, 1, 0, i32::from_ne_bytes(map_fd.to_ne_bytes())), // 27: r2 = map (pseudo fd)
        0,                     // 28: (second half of the 64-bit load)
        ins(0xb7, 3, 0, 0, 0), // 29: r3 = 0
        ins(0x85, 0, 0, 0, 12), // 30: bpf_tail_call
        ins(0x05, 0, 0, 0, 0), // 31: (empty array) fall through to pass
        ins(0xb7, 0, 0, 0, 2), // 32: r0 = XDP_PASS (PASS)
        ins(0x95, 0, 0, 0, 0), // 33: exit
    ];
    let mut v = p.to_vec();
    // 25 jumps over the tail call and pass blocks to the write block appended here (34..).
    v[25] = ins(0x05, 0, 0, 34 - 26, 0);
    v.extend_from_slice(&[
        ins(0x62, 2, 0, 0, magic), // 34: *(u32 *)data_meta = mark
        ins(0x61, 5, 3, 4, 0),     // 35: MACs 4 bytes forward: r5 = *(u32 *)(data + 4)
        ins(0x63, 3, 5, 0, 0),     // 36: *(u32 *)(data + 0) = r5
        ins(0x61, 5, 3, 8, 0),     // 37
        ins(0x63, 3, 5, 4, 0),     // 38
        ins(0x61, 5, 3, 12, 0),    // 39
        ins(0x63, 3, 5, 8, 0),     // 40
        ins(0x69, 5, 10, -8, 0),   // 41: r5 = vlan_proto (network order)
        ins(0x6b, 3, 5, 12, 0),    // 42: *(u16 *)(data + 12) = r5
        ins(0x69, 5, 10, -6, 0),   // 43: r5 = vlan_tci (host order)
        ins(0xdc, 5, 0, 0, 16),    // 44: r5 = htons(r5)
        ins(0x6b, 3, 5, 14, 0),    // 45: *(u16 *)(data + 14) = r5
        ins(0x05, 0, 0, i16::try_from(26 - 47).unwrap_or(0), 0), // 46: goto TAIL
    ]);
    v
}

/// A hinted port's prologue and its program array.
#[derive(Debug)]
pub struct Prologue {
    /// The device-bound program.
    pub prog: OwnedFd,
    /// Its program array (slot 0: `xennet_xdp`); pinned by a persistent datapath, since the
    /// kernel empties a program array when no descriptor or pin holds it.
    pub chain: OwnedFd,
}

impl Prologue {
    /// Load a prologue bound to `ifindex` that hands frames on to `next` (`xennet_xdp`).
    pub fn load(ifindex: u32, next: BorrowedFd<'_>) -> anyhow::Result<Self> {
        let kfunc = kfunc_id()?;
        let mut a = [0u8; 72];
        put32(&mut a, 0, BPF_MAP_TYPE_PROG_ARRAY);
        put32(&mut a, 4, 4);
        put32(&mut a, 8, 4);
        put32(&mut a, 12, 1);
        a[28..41].copy_from_slice(b"xn_vlan_chain");
        let chain = fd_of(bpf(BPF_MAP_CREATE, &mut a).context("creating the program array")?)?;
        let insns = prologue(kfunc, fd32(chain.as_fd()));
        let license = CString::new("GPL").unwrap_or_default();
        let mut log = vec![0u8; 64 * 1024];
        let mut a = [0u8; 128];
        put32(&mut a, 0, BPF_PROG_TYPE_XDP);
        put32(&mut a, 4, u32::try_from(insns.len()).unwrap_or(0));
        put64(&mut a, 8, insns.as_ptr() as u64);
        put64(&mut a, 16, license.as_ptr() as u64);
        put32(&mut a, 24, 1);
        put32(&mut a, 28, u32::try_from(log.len()).unwrap_or(0));
        put64(&mut a, 32, log.as_mut_ptr() as u64);
        put32(&mut a, 44, BPF_F_XDP_HAS_FRAGS | BPF_F_XDP_DEV_BOUND_ONLY);
        a[48..63].copy_from_slice(b"xennet_xdp_vlan");
        put32(&mut a, 64, ifindex);
        put32(&mut a, 68, BPF_XDP);
        let prog = match bpf(BPF_PROG_LOAD, &mut a) {
            Ok(fd) => fd_of(fd)?,
            Err(e) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                return Err(anyhow!("{e}: {}", text.trim()))
                    .context("verifying the device-bound VLAN prologue");
            }
        };
        let key = 0u32.to_ne_bytes();
        let val = fd32(next).to_ne_bytes();
        let mut a = [0u8; 32];
        put32(&mut a, 0, fd32(chain.as_fd()));
        put64(&mut a, 8, key.as_ptr() as u64);
        put64(&mut a, 16, val.as_ptr() as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).context("putting xennet_xdp into the program array")?;
        Ok(Prologue { prog, chain })
    }

    /// Attach as the XDP program of `ifindex` (driver mode): the new link's descriptor.
    pub fn link(&self, ifindex: u32) -> anyhow::Result<OwnedFd> {
        let mut a = [0u8; 64];
        put32(&mut a, 0, fd32(self.prog.as_fd()));
        put32(&mut a, 4, ifindex);
        put32(&mut a, 8, BPF_XDP);
        put32(&mut a, 12, XDP_FLAGS_DRV_MODE);
        fd_of(bpf(BPF_LINK_CREATE, &mut a).context("attaching the VLAN prologue (link_create)")?)
    }

    /// Put this prologue into the existing XDP link `link` (`bpf_link_update`).
    pub fn update(&self, link: BorrowedFd<'_>) -> anyhow::Result<()> {
        let mut a = [0u8; 32];
        put32(&mut a, 0, fd32(link));
        put32(&mut a, 4, fd32(self.prog.as_fd()));
        bpf(BPF_LINK_UPDATE, &mut a).context("bpf_link_update with the VLAN prologue")?;
        Ok(())
    }
}

/// Pin `fd` (a map, program or link) at `path`.
pub fn pin(fd: BorrowedFd<'_>, path: &Path) -> anyhow::Result<()> {
    let c = path_c(path)?;
    let mut a = [0u8; 24];
    put64(&mut a, 0, c.as_ptr() as u64);
    put32(&mut a, 8, fd32(fd));
    bpf(BPF_OBJ_PIN, &mut a).with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

/// Open the object pinned at `path`.
pub fn open_pin(path: &Path) -> anyhow::Result<OwnedFd> {
    let c = path_c(path)?;
    let mut a = [0u8; 24];
    put64(&mut a, 0, c.as_ptr() as u64);
    fd_of(bpf(BPF_OBJ_GET, &mut a).with_context(|| format!("opening {}", path.display()))?)
}

fn path_c(path: &Path) -> anyhow::Result<CString> {
    use std::os::unix::ffi::OsStrExt as _;
    CString::new(path.as_os_str().as_bytes()).context("pin path with a NUL byte")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_where_their_comments_say() {
        let p = prologue(7, 3);
        let target = |i: usize| {
            let b = p[i].to_le_bytes();
            let off = i16::from_le_bytes([b[2], b[3]]);
            usize::try_from(i64::try_from(i).unwrap_or(0) + 1 + i64::from(off)).unwrap_or(0)
        };
        assert_eq!(target(7), 26);
        assert_eq!(target(11), 32);
        assert_eq!(target(15), 32);
        assert_eq!(target(21), 32);
        assert_eq!(target(24), 32);
        assert_eq!(target(25), 34);
        assert_eq!(target(46), 26);
        assert_eq!(p.len(), 47);
        assert_eq!(p[6] >> 32, 7, "kfunc id");
        assert_eq!((p[27] >> 12) & 0xf, 1, "pseudo map fd");
    }
}
