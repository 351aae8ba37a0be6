//! A token bucket per gateway: a gateway may send `burst` batches at once and `per_sec` on
//! average; beyond that it is told when to retry. In memory, per process: with several
//! replicas each enforces its own share, which is enough to stop a runaway gateway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shared::ids::{GatewayId, SchoolId};

/// Per-gateway request budgets.
#[derive(Debug)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<(SchoolId, GatewayId), Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_sec` requests per second on average, `burst` at once (at least one).
    pub fn new(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for the gateway, or says how long until one is available.
    pub fn check(&self, school: &SchoolId, gateway: &GatewayId) -> Result<(), Duration> {
        self.check_at(school, gateway, Instant::now())
    }

    fn check_at(
        &self,
        school: &SchoolId,
        gateway: &GatewayId,
        now: Instant,
    ) -> Result<(), Duration> {
        // A poisoned lock only means another request panicked mid-update; the buckets are
        // still usable numbers.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets
            .entry((school.clone(), gateway.clone()))
            .or_insert(Bucket {
                tokens: self.burst,
                updated: now,
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_sec,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_at_the_rate_per_gateway() {
        let limiter = RateLimiter::new(2.0, 3);
        let school: SchoolId = "s".parse().unwrap();
        let (a, b): (GatewayId, GatewayId) = ("a".parse().unwrap(), "b".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&school, &a, t0).is_ok());
        }
        let wait = limiter.check_at(&school, &a, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert!(limiter.check_at(&school, &b, t0).is_ok());
        let later = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&school, &a, later).is_ok());
        assert!(limiter.check_at(&school, &a, later).is_err());
    }
}
