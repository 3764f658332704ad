//! Polling: sample something until it is as wanted or a bound has passed.

use std::time::{Duration, Instant};

/// Sample `f` every `every` until `done` accepts a sample or more than `bound` has passed
/// since the start; returns the last sample and when it was taken (from the start). `f` runs
/// at least once; the caller checks whether the last sample is the one it wanted.
pub fn poll<T>(
    bound: Duration,
    every: Duration,
    mut f: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        let v = f();
        let at = start.elapsed();
        if done(&v) || at > bound {
            return (v, at);
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_stops_when_done_or_past_the_bound() {
        let mut n = 0;
        let (v, _) = poll(
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                n
            },
            |v| *v == 3,
        );
        assert_eq!(v, 3);
        let (v, at) = poll(Duration::ZERO, Duration::ZERO, || 1, |_| false);
        assert_eq!(v, 1, "sampled once");
        assert!(at >= Duration::ZERO);
    }
}
