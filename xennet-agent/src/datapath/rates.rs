//! Bandwidth limits: each port's `XN_RATES` entry (its policers, one per direction) made the
//! configured one, without touching a bucket whose limit did not change (adoption, reloads).

use std::collections::BTreeMap;

use anyhow::Context as _;
use aya::maps::{Array, MapData};
use tracing::info;
use xennet_common::rate::{Bucket, MAP_RATES, PortRate};

use super::{Changes, Datapath};
use crate::config::{Config, RateLimit};

/// The `XN_RATES` value for `limit` (the same in both directions), with full buckets.
#[must_use]
pub fn port_rate(limit: Option<&RateLimit>) -> PortRate {
    limit.map_or(PortRate::NONE, |l| {
        let b = Bucket::new(l.bits_per_sec, l.burst_bytes);
        PortRate {
            ingress: b,
            egress: b,
        }
    })
}

impl Datapath {
    /// [`Datapath::sync_rates`], listing the ports whose limit changed among `changes`'s
    /// changed ports (unless attached or changed otherwise already).
    pub(super) fn sync_rates_into(
        &mut self,
        cfg: &Config,
        changes: &mut Changes,
    ) -> anyhow::Result<()> {
        for name in self.sync_rates(cfg)? {
            if !changes.added.contains(&name) && !changes.changed.contains(&name) {
                changes.changed.push(name);
            }
        }
        Ok(())
    }

    /// Write `rate` as the limits of stats slot `slot` (full buckets).
    pub(super) fn write_rate(&mut self, slot: u32, rate: &PortRate) -> anyhow::Result<()> {
        let mut rates: Array<&mut MapData, PortRate> = self.map_mut(MAP_RATES)?;
        rates
            .set(slot, rate.limits(), 0)
            .with_context(|| format!("writing slot {slot} of {MAP_RATES}"))
    }

    /// Give every attached port the limit `cfg` sets for it; a port whose limit is already
    /// the configured one keeps its buckets (no burst handed out again). Returns the ports
    /// whose limit changed.
    pub(super) fn sync_rates(&mut self, cfg: &Config) -> anyhow::Result<Vec<String>> {
        let wanted: BTreeMap<&str, Option<&RateLimit>> = cfg
            .bridges
            .iter()
            .flat_map(|b| b.ports.iter())
            .map(|p| (p.interface.as_str(), p.rate.as_ref()))
            .collect();
        let todo: Vec<(String, u32, Option<RateLimit>)> = self
            .ports
            .iter()
            .map(|(name, st)| {
                let limit = wanted.get(name.as_str()).copied().flatten().copied();
                (name.clone(), st.public.slot, limit)
            })
            .collect();
        let mut changed = Vec::new();
        for (name, slot, limit) in todo {
            let want = port_rate(limit.as_ref());
            let have = {
                let rates: Array<&MapData, PortRate> = Array::try_from(self.map(MAP_RATES)?)
                    .with_context(|| format!("{MAP_RATES} type"))?;
                rates.get(&slot, 0).unwrap_or(PortRate::NONE)
            };
            if have.limits() != want {
                self.write_rate(slot, &want)?;
                info!(port = %name, limit = %limit.map_or_else(|| "none".to_owned(), |l| l.to_string()), "bandwidth limit set");
                changed.push(name.clone());
            }
            if let Some(st) = self.ports.get_mut(&name) {
                st.public.rate = limit.map(|l| l.to_string());
            }
        }
        Ok(changed)
    }
}
