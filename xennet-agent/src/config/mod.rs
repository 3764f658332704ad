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
//! * `report`: problems and their `file:line:col` form.

mod raw;
mod report;
mod syntax;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use syntax::{is_pattern, parse_cidr};
pub use types::{
    AttachMode, BridgeSpec, Config, DEFAULT_FDB_AGING_SECS, DEFAULT_FDB_MAX_ENTRIES,
    DEFAULT_MAC_LIMIT_ACCESS, DEFAULT_MAC_LIMIT_TRUNK, DEFAULT_PIN_DIR, DEFAULT_SOCKET,
    HOST_PEER_PREFIX, HostSpec, MAX_BRIDGES, MAX_FDB_AGING_SECS, MAX_FDB_MAX_ENTRIES,
    MAX_MAC_LIMIT, MAX_MTU, MAX_PORTS, MIN_FDB_MAX_ENTRIES, MIN_MTU, MacAddr, PortMode, PortSpec,
};
pub use validate::port_add::check_port_add;

use raw::RawConfig;
use report::{Problem, line_col, report};
use validate::Validator;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
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
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| report(text, origin, vec![Problem::from_toml(&e)]))?;
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
    /// [`ConfigError::Read`] if the file cannot be read as UTF-8 text, otherwise
    /// as [`Config::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &origin),
            Err(source) => Err(ConfigError::Read {
                path: origin,
                source,
            }),
        }
    }
}
