//! A port's bandwidth limit: `rate` and `burst` (applied to both directions), in bounds, with
//! a burst of at least one full-size frame.

use toml::Spanned;

use super::Validator;
use crate::config::types::{
    MAX_BURST_BYTES, MAX_RATE_BITS, MIN_RATE_BITS, RateLimit, default_burst, largest_frame,
};
use crate::config::units::{parse_rate, parse_size, show_rate, show_size};

impl Validator<'_> {
    /// The limit `rate` and `burst` give for a port of a bridge with MTU `mtu` (`None`: 1500
    /// is assumed). `Ok(None)`: no limit; `Err(())` after recording a problem.
    pub(super) fn rate_limit(
        &mut self,
        ctx: &str,
        rate: Option<&Spanned<String>>,
        burst: Option<&Spanned<String>>,
        mtu: Option<u32>,
    ) -> Result<Option<RateLimit>, ()> {
        let Some(rate) = rate else {
            if let Some(burst) = burst {
                self.error(
                    &burst.span(),
                    format!("{ctx}: `burst` needs a `rate` (the burst of which limit?)"),
                );
                return Err(());
            }
            return Ok(None);
        };
        let bits = match parse_rate(rate.get_ref()) {
            Ok(b) => b,
            Err(why) => {
                self.error(&rate.span(), format!("{ctx}: `rate` = {why}"));
                return Err(());
            }
        };
        if bits == 0 {
            self.error(
                &rate.span(),
                format!(
                    "{ctx}: `rate` = {:?} is zero, which would drop everything; leave `rate` \
                     out for no limit",
                    rate.get_ref()
                ),
            );
            return Err(());
        }
        if !(MIN_RATE_BITS..=MAX_RATE_BITS).contains(&bits) {
            self.error(
                &rate.span(),
                format!(
                    "{ctx}: `rate` = {:?} is out of range ({}-{})",
                    rate.get_ref(),
                    show_rate(MIN_RATE_BITS),
                    show_rate(MAX_RATE_BITS)
                ),
            );
            return Err(());
        }
        let frame = largest_frame(mtu);
        let burst_bytes = match burst {
            None => default_burst(bits, mtu),
            Some(burst) => {
                let bytes = match parse_size(burst.get_ref()) {
                    Ok(b) => b,
                    Err(why) => {
                        self.error(&burst.span(), format!("{ctx}: `burst` = {why}"));
                        return Err(());
                    }
                };
                if bytes < frame {
                    self.error(
                        &burst.span(),
                        format!(
                            "{ctx}: `burst` = {:?} ({bytes} bytes) is smaller than one \
                             full-size frame ({frame} bytes at MTU {}): at least {}",
                            burst.get_ref(),
                            mtu.unwrap_or(1500),
                            show_size(frame)
                        ),
                    );
                    return Err(());
                }
                if bytes > MAX_BURST_BYTES {
                    self.error(
                        &burst.span(),
                        format!(
                            "{ctx}: `burst` = {:?} is out of range ({}-{})",
                            burst.get_ref(),
                            show_size(frame),
                            show_size(MAX_BURST_BYTES)
                        ),
                    );
                    return Err(());
                }
                bytes
            }
        };
        Ok(Some(RateLimit {
            bits_per_sec: bits,
            burst_bytes,
        }))
    }
}
