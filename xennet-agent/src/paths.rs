//! Every filesystem path the agent knows by heart, in one place.
//!
//! The defaults of the configuration (`pin_dir`, `socket`) live in [`crate::config`] beside the
//! keys they default.

use std::ffi::CStr;

/// The conventional bpffs mount point.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// [`BPFFS_ROOT`] as a C string, for `mount(2)`.
pub const BPFFS_ROOT_C: &CStr = c"/sys/fs/bpf";

/// Where `ip netns` keeps its named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_spelling_agrees() {
        assert_eq!(BPFFS_ROOT_C.to_str(), Ok(BPFFS_ROOT));
    }
}
