//! A small deterministic PRNG (xorshift64) for test data: sample picks, random MACs.

/// xorshift64 (shifts 13, 7, 17). The state must not be 0.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next value reduced to `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % n).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_sequence() {
        let mut r = XorShift(1);
        assert_eq!(r.next_u64(), 1_082_269_761);
        let mut a = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut b = a.clone();
        assert_eq!(a.below(250), usize::try_from(b.next_u64() % 250).unwrap());
    }
}
