//! Every filesystem path the agent knows by heart, in one place (the configuration re-exports
//! the defaults of its `pin_dir` and `socket` keys from here).

use std::ffi::CStr;

/// The conventional bpffs mount point.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// [`BPFFS_ROOT`] as a C string, for `mount(2)`.
pub const BPFFS_ROOT_C: &CStr = c"/sys/fs/bpf";

/// bpffs directory where the agent pins its maps when `[agent] pin_dir` is not given.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xennet";

/// The configuration file every command reads when none is given (`-c FILE` or `FILE`).
pub const DEFAULT_CONFIG: &str = "/etc/xennet/xennet.toml";

/// The agent's control socket when `[agent] socket` is not given.
pub const DEFAULT_SOCKET: &str = "/run/xennet/xennet.sock";

/// Where `ip netns` keeps its named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_spelling_agrees() {
        assert_eq!(BPFFS_ROOT_C.to_str(), Ok(BPFFS_ROOT));
    }

    #[test]
    fn default_pin_dir_is_under_the_bpffs_root() {
        assert_eq!(
            std::path::Path::new(DEFAULT_PIN_DIR).parent(),
            Some(std::path::Path::new(BPFFS_ROOT))
        );
    }
}
