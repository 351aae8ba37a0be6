//! Randomness for simulated readings, timings and choices.

/// A small non-cryptographic generator (SplitMix64), seeded from the clock: simulated counts,
/// timings and choices need variety, not security, and the project takes no `rand` dependency
/// for them.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    pub(super) fn seeded(salt: u64) -> Rng {
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(clock ^ salt.wrapping_mul(Self::GAMMA))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0); the modulo bias is irrelevant for n this small.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn draws_stay_in_range_and_vary() {
        let mut rng = Rng::seeded(7);
        let draws: Vec<u64> = (0..1000).map(|_| rng.below(31)).collect();
        assert!(draws.iter().all(|&d| d < 31));
        assert!(draws.contains(&0) && draws.contains(&30));
        assert!(
            (0..1000)
                .map(|_| rng.unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
        assert_eq!(rng.below(0), 0);
    }
}
