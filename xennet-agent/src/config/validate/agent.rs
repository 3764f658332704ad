//! The `[agent]` table: pin directory, control socket, FDB size, metrics address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::Validator;
use crate::config::raw::RawAgent;
use crate::config::types::{
    DEFAULT_FDB_MAX_ENTRIES, DEFAULT_METRICS, DEFAULT_PIN_DIR, DEFAULT_SOCKET, MAX_FDB_MAX_ENTRIES,
    MIN_FDB_MAX_ENTRIES,
};

/// Longest Unix socket path (`sizeof sun_path` - 1 for the terminating NUL).
const SOCKET_PATH_MAX: usize = 107;

impl Validator<'_> {
    /// `pin_dir`, or its default.
    pub(super) fn pin_dir(&mut self, agent: Option<&RawAgent>) -> PathBuf {
        let Some(dir) = agent.and_then(|a| a.pin_dir.as_ref()) else {
            return PathBuf::from(DEFAULT_PIN_DIR);
        };
        let path = PathBuf::from(dir.get_ref());
        if !path.is_absolute() {
            self.error(
                &dir.span(),
                format!(
                    "[agent]: `pin_dir` = {:?} is not an absolute path",
                    dir.get_ref()
                ),
            );
        } else if dir.get_ref().contains('\0') {
            self.error(
                &dir.span(),
                format!(
                    "[agent]: `pin_dir` = {:?} contains a NUL character",
                    dir.get_ref()
                ),
            );
        }
        path
    }

    /// `socket`, or its default; checked against `pin_dir`.
    pub(super) fn socket(&mut self, agent: Option<&RawAgent>, pin_dir: &Path) -> PathBuf {
        let Some(socket) = agent.and_then(|a| a.socket.as_ref()) else {
            let path = PathBuf::from(DEFAULT_SOCKET);
            let explicit_pin_dir = agent.and_then(|a| a.pin_dir.as_ref());
            if let Some(dir) = explicit_pin_dir.filter(|_| path.starts_with(pin_dir)) {
                self.error(
                    &dir.span(),
                    format!(
                        "[agent]: `pin_dir` = {:?} contains the default `socket` \
                         {DEFAULT_SOCKET:?}, but a bpf filesystem cannot hold a socket: set \
                         `socket`",
                        dir.get_ref()
                    ),
                );
            }
            return path;
        };
        let text = socket.get_ref();
        let path = PathBuf::from(text);
        let problem = if !path.is_absolute() {
            Some("is not an absolute path".to_owned())
        } else if text.ends_with('/') {
            Some("ends with '/': it must name the socket file, not a directory".to_owned())
        } else if text.contains('\0') {
            Some("contains a NUL character".to_owned())
        } else if text.len() > SOCKET_PATH_MAX {
            Some(format!(
                "is {} bytes long, a Unix socket path may have at most {SOCKET_PATH_MAX}",
                text.len()
            ))
        } else if pin_dir.is_absolute() && path.starts_with(pin_dir) {
            Some(format!(
                "lies inside `pin_dir` {:?}, a bpf filesystem, which cannot hold a socket",
                pin_dir.display().to_string()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                &socket.span(),
                format!("[agent]: `socket` = {text:?} {problem}"),
            );
        }
        path
    }

    /// `fdb_max_entries`, or its default.
    pub(super) fn fdb_max_entries(&mut self, agent: Option<&RawAgent>) -> u32 {
        agent
            .and_then(|a| a.fdb_max_entries.as_ref())
            .map_or(DEFAULT_FDB_MAX_ENTRIES, |n| {
                let v = u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|v| (MIN_FDB_MAX_ENTRIES..=MAX_FDB_MAX_ENTRIES).contains(v));
                if v.is_none() {
                    self.error(
                        &n.span(),
                        format!(
                            "[agent]: `fdb_max_entries` = {} is out of range \
                             ({MIN_FDB_MAX_ENTRIES}-{MAX_FDB_MAX_ENTRIES})",
                            n.get_ref()
                        ),
                    );
                }
                v.unwrap_or(DEFAULT_FDB_MAX_ENTRIES)
            })
    }

    /// `metrics`: an `IP:PORT` to serve `/metrics` on, `"off"` or `""` for none; its default
    /// is [`DEFAULT_METRICS`].
    pub(super) fn metrics(&mut self, agent: Option<&RawAgent>) -> Option<SocketAddr> {
        let Some(text) = agent.and_then(|a| a.metrics.as_ref()) else {
            return DEFAULT_METRICS.parse().ok();
        };
        let value = text.get_ref().trim();
        if value.is_empty() || value.eq_ignore_ascii_case("off") {
            return None;
        }
        match value.parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => Some(addr),
            Ok(_) => {
                self.error(
                    &text.span(),
                    format!("[agent]: `metrics` = {value:?} has port 0: give a fixed port"),
                );
                None
            }
            Err(_) => {
                self.error(
                    &text.span(),
                    format!(
                        "[agent]: `metrics` = {value:?} is not an address and port such as \
                         \"127.0.0.1:9417\" or \"[::1]:9417\" (\"off\" switches it off)"
                    ),
                );
                None
            }
        }
    }
}
