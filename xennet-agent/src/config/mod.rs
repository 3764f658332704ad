//! The TOML configuration file of `xennet-agent`, and the validated desired state it describes.
//!
//! [`Config::parse`] turns the text into a fully validated [`Config`]. Problems
//! are reported as `{file}:{line}:{col}: {message}`, one per line, and every
//! semantic problem in the file is reported at once. The format is documented
//! in `docs/configuration.md`. A port added at run time (`port add`) goes through the same
//! port rules ([`check_port_add`]).
//!
//! * `types`: the validated types and the documented defaults and limits.
//! * `raw`: the file as serde reads it, with spans.
//! * `validate`: the semantic rules, one file per topic.
//! * `syntax`: single values (MAC, VLAN, CIDR, names).
//! * `units`: bandwidth limits as written (`100Mbit`, `64KiB`).
//! * `report`: problems and their `file:line:col` form.

mod raw;
mod report;
mod syntax;
mod types;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub use syntax::{is_pattern, parse_cidr};
pub use types::{
    AttachMode, BridgeSpec, Config, DEFAULT_ETHERTYPES, DEFAULT_FDB_AGING_SECS,
    DEFAULT_FDB_MAX_ENTRIES, DEFAULT_MAC_LIMIT_ACCESS, DEFAULT_MAC_LIMIT_TRUNK, DEFAULT_METRICS,
    DEFAULT_PIN_DIR, DEFAULT_SOCKET, HOST_PEER_PREFIX, HostSpec, MAX_BRIDGES, MAX_BURST_BYTES,
    MAX_CONFIG_BYTES, MAX_FDB_AGING_SECS, MAX_FDB_MAX_ENTRIES, MAX_MAC_LIMIT, MAX_MTU, MAX_PORTS,
    MAX_RATE_BITS, MIN_FDB_MAX_ENTRIES, MIN_MTU, MIN_RATE_BITS, MacAddr, PortMode, PortSecurity,
    PortSpec, RateLimit, default_burst,
};
pub use units::{parse_rate, parse_size, show_rate, show_size};
pub use validate::port_add::check_port_add;

use raw::RawConfig;
use report::{Problem, line_col, report};
use validate::Validator;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read {
        path: String,
        reason: std::io::Error,
    },
    /// Not a regular file (a device, a FIFO, a directory…): it could be endless.
    #[error("cannot read config {path}: it is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    /// Larger than [`MAX_CONFIG_BYTES`].
    #[error(
        "cannot read config {path}: it is larger than {MAX_CONFIG_BYTES} bytes (1 MiB), the \
         most a configuration file may have"
    )]
    TooLarge { path: String },
    /// Every problem found, each formatted `{file}:{line}:{col}: {message}`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// Every problem of a `port add` request, each a plain message (no location) worded as
    /// for the same problem in the file.
    #[error("{}", .0.join("\n"))]
    PortAdd(Vec<String>),
}

impl Config {
    /// Parse and validate TOML text; `origin` is the file name used in messages.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing, in file order, every TOML syntax error
    /// (at most one per line), or else the first structural error (unknown key,
    /// missing key, wrong type), or else every semantic problem.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let (_, syntax) = toml::de::DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            let mut problems: Vec<Problem> = syntax.iter().map(Problem::from_toml).collect();
            problems.sort_by_key(|p| p.at);
            problems.dedup_by_key(|p| line_col(text, p.at).0);
            return Err(report(text, origin, problems));
        }
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| report(text, origin, vec![Problem::structural(text, &e)]))?;
        let mut validator = Validator::new(text);
        let config = validator.config(&raw);
        let problems = validator.into_problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(report(text, origin, problems))
        }
    }

    /// Read and [`parse`](Self::parse) a file; messages name it as `path` is spelled.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotRegular`] unless `path` is (or links to) a regular file,
    /// [`ConfigError::TooLarge`] if it holds more than [`MAX_CONFIG_BYTES`],
    /// [`ConfigError::Read`] if it cannot be read as UTF-8 text, otherwise as
    /// [`Config::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = read_bounded(path).map_err(|e| e.named(&origin))?;
        Self::parse(&text, &origin)
    }
}

/// Why a file could not be read, before the path is known to the message.
enum ReadError {
    Io(std::io::Error),
    NotRegular(&'static str),
    TooLarge,
}

impl ReadError {
    fn named(self, path: &str) -> ConfigError {
        let path = report::cut(path).into_owned();
        match self {
            ReadError::Io(reason) => ConfigError::Read { path, reason },
            ReadError::NotRegular(kind) => ConfigError::NotRegular { path, kind },
            ReadError::TooLarge => ConfigError::TooLarge { path },
        }
    }
}

/// The text of the regular file `path`, of at most [`MAX_CONFIG_BYTES`]. The bound holds
/// even if the file grows while it is read.
fn read_bounded(path: &Path) -> Result<String, ReadError> {
    use std::io::Read as _;
    use std::os::unix::fs::FileTypeExt as _;

    // Open without blocking (a FIFO would wait for a writer), then look at what was opened.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(ReadError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        }));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if u64::try_from(bytes.len()).map_or(true, |n| n > MAX_CONFIG_BYTES) {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes)
        .map_err(|e| ReadError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}
