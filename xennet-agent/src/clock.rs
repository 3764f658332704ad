//! The clock the datapath stamps with (`bpf_ktime_get_coarse_ns`, i.e.
//! `CLOCK_MONOTONIC_COARSE`), as the agent reads it: now, and its resolution.

/// `CLOCK_MONOTONIC_COARSE` now, in nanoseconds.
#[must_use]
pub fn now_ns() -> u64 {
    let mut ts = ZERO;
    // SAFETY: valid clock id and out-pointer; the clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    ns(&ts)
}

/// The resolution of `CLOCK_MONOTONIC_COARSE` in nanoseconds (one scheduler tick); 10 ms if
/// the kernel does not say.
#[must_use]
pub fn tick_ns() -> u64 {
    let mut ts = ZERO;
    // SAFETY: valid clock id and out-pointer.
    let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &raw mut ts) };
    match ns(&ts) {
        n if r == 0 && n > 0 => n,
        _ => 10_000_000,
    }
}

const ZERO: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

fn ns(ts: &libc::timespec) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_advances_by_ticks() {
        let tick = tick_ns();
        assert!(tick > 0 && tick <= 100_000_000, "tick {tick} ns");
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = now_ns();
        assert!(a > 0 && b > a, "{a} then {b}");
    }
}
