//! FDB entries as `fdb show --json` lists them and as the tests compare them.

use anyhow::{Result, anyhow};

use crate::frame::{Mac, format_mac};

/// One FDB entry as the tests compare them: (MAC `aa:bb:…`, VLAN, port, static).
pub type FdbEntry = (String, u16, String, bool);

/// The [`FdbEntry`] of `mac` in `vlan` on `port`.
#[must_use]
pub fn fdb_entry(mac: Mac, vlan: u16, port: &str, is_static: bool) -> FdbEntry {
    (format_mac(&mac), vlan, port.to_string(), is_static)
}

/// One row of `fdb show --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct FdbRow {
    /// Bridge name.
    pub bridge: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// VLAN id.
    pub vlan: u16,
    /// Port interface.
    pub port: String,
    /// Configured rather than learned.
    pub is_static: bool,
    /// Seconds since last seen (learned entries only).
    pub age_secs: Option<f64>,
}

impl FdbRow {
    pub(crate) fn from_json(r: &serde_json::Value) -> Result<FdbRow> {
        let s = |k: &str| {
            r[k].as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("fdb entry without {k}: {r}"))
        };
        Ok(FdbRow {
            bridge: s("bridge")?,
            mac: s("mac")?,
            vlan: r["vlan"]
                .as_u64()
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| anyhow!("fdb entry without vlan: {r}"))?,
            port: s("port")?,
            is_static: r["static"]
                .as_bool()
                .ok_or_else(|| anyhow!("fdb entry without static: {r}"))?,
            age_secs: r["age_secs"].as_f64(),
        })
    }

    /// The row as an [`FdbEntry`] (its bridge and age left out).
    #[must_use]
    pub fn entry(&self) -> FdbEntry {
        (
            self.mac.clone(),
            self.vlan,
            self.port.clone(),
            self.is_static,
        )
    }
}
