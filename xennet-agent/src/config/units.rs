//! Bandwidth limits as written: rates (`100Mbit`) and sizes (`64KiB`), parsed and shown back.

use std::fmt;

use super::types::RateLimit;

/// Rate units (bits per second), case-insensitive: SI multiples of bits, as `tc` writes them.
const RATE_UNITS: [(&str, u64); 5] = [
    ("tbit", 1_000_000_000_000),
    ("gbit", 1_000_000_000),
    ("mbit", 1_000_000),
    ("kbit", 1_000),
    ("bit", 1),
];

/// Size units (bytes), case-insensitive: binary (`KiB`) and decimal (`KB`, `k`) multiples.
const SIZE_UNITS: [(&str, u64); 10] = [
    ("gib", 1 << 30),
    ("mib", 1 << 20),
    ("kib", 1 << 10),
    ("gb", 1_000_000_000),
    ("mb", 1_000_000),
    ("kb", 1_000),
    ("g", 1_000_000_000),
    ("m", 1_000_000),
    ("k", 1_000),
    ("b", 1),
];

/// `NUMBER UNIT` with a decimal number (`2.5`) and a unit from `units` (longest match first);
/// `bare` is the unit of a number written alone, if that is allowed.
fn parse_with(text: &str, units: &[(&str, u64)], bare: Option<u64>) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult = if unit.is_empty() {
        bare?
    } else {
        units.iter().find(|(u, _)| *u == unit)?.1
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac_val: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let scale = 10u128.pow(u32::try_from(frac.len()).ok()?);
    let total = int.checked_mul(u128::from(mult))? + frac_val * u128::from(mult) / scale;
    u64::try_from(total).ok()
}

/// A rate in bits per second: `100Mbit`, `1Gbit`, `2.5gbit`, `64kbit`, `1000000bit`.
///
/// # Errors
///
/// What is wrong, for a message after the key.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    parse_with(text, &RATE_UNITS, None).ok_or_else(|| {
        format!(
            "{text:?} is not a rate (a number and a unit: bit, kbit, Mbit, Gbit or Tbit per \
             second, like \"100Mbit\")"
        )
    })
}

/// A size in bytes: `64KiB`, `1MiB`, `1500`, `128kB`.
///
/// # Errors
///
/// What is wrong, for a message after the key.
pub fn parse_size(text: &str) -> Result<u64, String> {
    parse_with(text, &SIZE_UNITS, Some(1)).ok_or_else(|| {
        format!(
            "{text:?} is not a size in bytes (a number, optionally with a unit: B, KiB, MiB, \
             GiB, kB, MB, GB, like \"64KiB\")"
        )
    })
}

/// `bits` per second in the largest unit that shows it exactly (`100Mbit`).
#[must_use]
pub fn show_rate(bits: u64) -> String {
    for (unit, mult) in [
        ("Tbit", 1_000_000_000_000),
        ("Gbit", 1_000_000_000),
        ("Mbit", 1_000_000),
        ("kbit", 1_000),
    ] {
        if bits >= mult && bits.is_multiple_of(mult) {
            return format!("{}{unit}", bits / mult);
        }
    }
    format!("{bits}bit")
}

/// `bytes` in the largest unit that shows it exactly, binary first (`64KiB`, `2500kB`), else
/// in bytes.
#[must_use]
pub fn show_size(bytes: u64) -> String {
    for (unit, mult) in [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("kB", 1_000),
    ] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{bytes}B")
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} burst {}",
            show_rate(self.bits_per_sec),
            show_size(self.burst_bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100Mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1Gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("2.5Gbit"), Ok(2_500_000_000));
        assert_eq!(parse_rate(" 64 kbit "), Ok(64_000));
        assert_eq!(parse_rate("800bit"), Ok(800));
        for bad in [
            "",
            "100",
            "Mbit",
            "100Mb",
            "100 MB",
            "1.2.3Mbit",
            "-5Mbit",
            "1e6bit",
            "0x10bit",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
        assert!(parse_rate("99999999999999999999Tbit").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("1500B"), Ok(1500));
        assert_eq!(parse_size("128kB"), Ok(128_000));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        for bad in ["", "KiB", "64Kbit", "64 KiBs", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shown_back() {
        assert_eq!(show_rate(100_000_000), "100Mbit");
        assert_eq!(show_rate(1_500_000), "1500kbit");
        assert_eq!(show_rate(1), "1bit");
        assert_eq!(show_size(65_536), "64KiB");
        assert_eq!(show_size(1522), "1522B");
        assert_eq!(show_size(2_500_000), "2500kB");
        assert_eq!(show_size(25_000_000), "25MB");
        for r in [10_000_000, 1_000_000_000, 64_000, 123] {
            assert_eq!(parse_rate(&show_rate(r)), Ok(r));
        }
        for s in [65_536, 1522, 3 << 20, 2_500_000, 25_000_000] {
            assert_eq!(parse_size(&show_size(s)), Ok(s));
        }
    }
}
