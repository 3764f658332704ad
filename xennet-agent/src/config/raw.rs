//! The raw form of the file as serde reads it (values with their spans, not yet validated).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) agent: Option<RawAgent>,
    #[serde(default, deserialize_with = "table_array")]
    pub(super) bridge: Vec<Spanned<RawBridge>>,
}

/// `[agent]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) pin_dir: Option<Spanned<String>>,
    pub(super) socket: Option<Spanned<String>>,
    pub(super) fdb_max_entries: Option<Spanned<i64>>,
    pub(super) metrics: Option<Spanned<String>>,
}

/// One `[[bridge]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBridge {
    pub(super) name: Spanned<String>,
    pub(super) vlan_protocol: Option<Spanned<String>>,
    pub(super) fdb_aging_secs: Option<Spanned<i64>>,
    pub(super) mtu: Option<Spanned<i64>>,
    pub(super) allow_mtu_mismatch: Option<bool>,
    #[serde(default, deserialize_with = "table_array")]
    pub(super) port: Vec<Spanned<RawPort>>,
    pub(super) host: Option<Spanned<HostTable>>,
}

/// One `[[bridge.port]]` (also built from a `port add` request).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) interface: Spanned<String>,
    pub(super) access: Option<Spanned<i64>>,
    pub(super) trunk: Option<Spanned<Vec<Spanned<TrunkItem>>>>,
    pub(super) native_vlan: Option<Spanned<i64>>,
    pub(super) attach: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) macs: Vec<Spanned<String>>,
    pub(super) mac_limit: Option<Spanned<i64>>,
    // ---- Port security (issue 13): validate/security.rs.
    pub(super) security: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) ips: Vec<Spanned<String>>,
    pub(super) allow_dhcp_server: Option<bool>,
    pub(super) allow_ra: Option<bool>,
    pub(super) allow_ethertypes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) rate: Option<Spanned<String>>,
    pub(super) burst: Option<Spanned<String>>,
    pub(super) mac_move: Option<Spanned<bool>>,
}

/// `[bridge.host]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub(super) interface: Spanned<String>,
    pub(super) peer: Option<Spanned<String>>,
    pub(super) access: Option<Spanned<i64>>,
    pub(super) trunk: Option<Spanned<Vec<Spanned<TrunkItem>>>>,
    pub(super) native_vlan: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) addresses: Vec<Spanned<String>>,
    pub(super) mac: Option<Spanned<String>>,
    pub(super) mac_limit: Option<Spanned<i64>>,
}

/// A `RawHost` that, given an array, says to write `[bridge.host]`: the
/// likely mistake is `[[bridge.host]]`.
pub(super) struct HostTable(pub(super) RawHost);

impl<'de> Deserialize<'de> for HostTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = HostTable;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a table (write [bridge.host] with single brackets: a bridge has at most one \
                     host port)",
                )
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HostTable, A::Error> {
                RawHost::deserialize(de::value::MapAccessDeserializer::new(map)).map(HostTable)
            }
        }

        deserializer.deserialize_map(TableVisitor)
    }
}

/// The keys that set the mode of a port or host port.
#[derive(Clone, Copy)]
pub(super) struct ModeKeys<'a> {
    pub(super) access: Option<&'a Spanned<i64>>,
    pub(super) trunk: Option<&'a Spanned<Vec<Spanned<TrunkItem>>>>,
    pub(super) native_vlan: Option<&'a Spanned<i64>>,
}

impl RawPort {
    pub(super) fn mode_keys(&self) -> ModeKeys<'_> {
        ModeKeys {
            access: self.access.as_ref(),
            trunk: self.trunk.as_ref(),
            native_vlan: self.native_vlan.as_ref(),
        }
    }
}

impl RawHost {
    pub(super) fn mode_keys(&self) -> ModeKeys<'_> {
        ModeKeys {
            access: self.access.as_ref(),
            trunk: self.trunk.as_ref(),
            native_vlan: self.native_vlan.as_ref(),
        }
    }
}

/// A `Vec` that, given anything but an array, says to write `[[...]]`: the
/// usual mistake is `[bridge]` instead of `[[bridge]]`.
fn table_array<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ArrayVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(
                "an array of tables (write [[bridge]] and [[bridge.port]] with double brackets)",
            )
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(ArrayVisitor(PhantomData))
}

/// One element of `trunk`: a VLAN id or a range string "A-B".
pub(super) enum TrunkItem {
    Id(i64),
    Range(String),
}

impl<'de> Deserialize<'de> for TrunkItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;

        impl Visitor<'_> for ItemVisitor {
            type Value = TrunkItem;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a VLAN id (integer) or a range \"A-B\" (string)")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TrunkItem, E> {
                Ok(TrunkItem::Id(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TrunkItem, E> {
                i64::try_from(v)
                    .map(TrunkItem::Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrunkItem, E> {
                Ok(TrunkItem::Range(v.to_owned()))
            }
        }

        deserializer.deserialize_any(ItemVisitor)
    }
}
