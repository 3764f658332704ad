//! Byte-level access to any BPF map by descriptor (lookup, update, next key), whatever its key
//! and value types: what migrating a map of another build's layout needs, where aya's typed
//! maps want the types at compile time.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
/// `BPF_ANY`: create or replace.
pub const ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const NOEXIST: u64 = 1;

/// The map-element part of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut ElemAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid bpf_attr prefix of the size given; the pointers in it are
    // checked by the callers to cover the map's key and value sizes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A map seen as bytes: its descriptor and the sizes of a key and of a whole value (a per-CPU
/// value is one 8-byte-aligned slot per possible CPU).
#[derive(Clone, Copy, Debug)]
pub struct RawMap<'a> {
    fd: BorrowedFd<'a>,
    key_size: usize,
    value_len: usize,
}

fn addr(b: &[u8]) -> u64 {
    b.as_ptr() as u64
}

impl<'a> RawMap<'a> {
    /// `value_len` is the value size, or for a per-CPU map `round_up(value_size, 8) * cpus`.
    #[must_use]
    pub fn new(fd: BorrowedFd<'a>, key_size: u32, value_len: usize) -> Self {
        RawMap {
            fd,
            key_size: key_size as usize,
            value_len,
        }
    }

    fn attr(&self, key: &[u8], value: u64, flags: u64) -> io::Result<ElemAttr> {
        if key.len() != self.key_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("key of {} B, the map's are {} B", key.len(), self.key_size),
            ));
        }
        Ok(ElemAttr {
            map_fd: u32::try_from(self.fd.as_raw_fd()).unwrap_or(u32::MAX),
            _pad: 0,
            key: addr(key),
            value,
            flags,
        })
    }

    /// The value under `key`, or `None` when there is none.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let mut v = vec![0u8; self.value_len];
        let mut a = self.attr(key, v.as_mut_ptr() as u64, 0)?;
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut a) {
            Ok(()) => Ok(Some(v)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write `value` under `key` (`flags`: [`ANY`] or [`NOEXIST`]).
    pub fn put(&self, key: &[u8], value: &[u8], flags: u64) -> io::Result<()> {
        if value.len() != self.value_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "value of {} B, the map's are {} B",
                    value.len(),
                    self.value_len
                ),
            ));
        }
        let mut a = self.attr(key, addr(value), flags)?;
        bpf(BPF_MAP_UPDATE_ELEM, &mut a)
    }

    /// Every key of a hash map (in the kernel's order; a key deleted meanwhile restarts
    /// nothing, as `bpftool map dump` does).
    pub fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        let mut next = vec![0u8; self.key_size];
        let mut cur: Option<Vec<u8>> = None;
        loop {
            let key_ptr = cur.as_ref().map_or(0, |k| addr(k));
            let mut a = ElemAttr {
                map_fd: u32::try_from(self.fd.as_raw_fd()).unwrap_or(u32::MAX),
                _pad: 0,
                key: key_ptr,
                value: next.as_mut_ptr() as u64,
                flags: 0,
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut a) {
                Ok(()) => {
                    keys.push(next.clone());
                    cur = Some(next.clone());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(keys),
                Err(e) => return Err(e),
            }
        }
    }
}
