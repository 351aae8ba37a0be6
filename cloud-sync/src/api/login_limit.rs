//! [`LoginLimiter`]: login attempts per account and per source address (governor's keyed
//! GCRA buckets, in memory, per replica).
//!
//! The source is the connection's peer address. The public listener is plain HTTP behind a
//! TLS-terminating proxy, so by default every login seems to come from the proxy; the operator
//! names the proxy with `--trusted-proxy`, and for connections from it the source is the
//! rightmost `X-Forwarded-For` address that is not itself a trusted proxy. A header from
//! anyone else is ignored: a client must not pick its own bucket.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter};

use crate::config::{LoginLimits, Quota};

/// Keyed buckets beyond which idle ones are forgotten (a full bucket is the same as none).
const FORGET_ABOVE: usize = 10_000;

/// Login budgets.
#[derive(Debug)]
pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_source: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    trusted_proxies: Vec<IpAddr>,
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The account's.
    Account(Duration),
    /// The source address's.
    Source(Duration),
}

impl LoginLimiter {
    /// Limiter for `limits`, believing `X-Forwarded-For` from `trusted_proxies` only.
    pub fn new(limits: LoginLimits, trusted_proxies: Vec<IpAddr>) -> Self {
        Self {
            per_account: RateLimiter::keyed(quota(limits.per_account)),
            per_source: RateLimiter::keyed(quota(limits.per_source)),
            clock: DefaultClock::default(),
            trusted_proxies: trusted_proxies
                .into_iter()
                .map(|ip| ip.to_canonical())
                .collect(),
        }
    }

    /// The address a login comes from (see the module's doc).
    pub fn source(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip().to_canonical();
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted_proxies.contains(&ip.to_canonical()) => continue,
                Ok(ip) => return ip.to_canonical(),
                // Past an unparseable hop nothing is trustworthy: the last proxy's view.
                Err(_) => break,
            }
        }
        peer
    }

    /// Takes one attempt from the source's budget, then the account's (so a source that is
    /// refused costs the account nothing).
    pub fn check(&self, source: IpAddr, account: &str) -> Result<(), Exhausted> {
        if self.per_source.len() > FORGET_ABOVE {
            self.per_source.retain_recent();
        }
        if self.per_account.len() > FORGET_ABOVE {
            self.per_account.retain_recent();
        }
        self.per_source
            .check_key(&group(source))
            .map_err(|n| Exhausted::Source(n.wait_time_from(self.clock.now())))?;
        self.per_account
            .check_key(&account.trim().to_lowercase())
            .map_err(|n| Exhausted::Account(n.wait_time_from(self.clock.now())))
    }
}

impl LoginLimiter {
    /// Takes one attempt from the source's budget only: for requests that guess at a secret
    /// other than a password (an enrollment token check), which share the source's budget
    /// with its logins.
    pub fn check_source(&self, source: IpAddr) -> Result<(), Exhausted> {
        if self.per_source.len() > FORGET_ABOVE {
            self.per_source.retain_recent();
        }
        self.per_source
            .check_key(&group(source))
            .map_err(|n| Exhausted::Source(n.wait_time_from(self.clock.now())))
    }
}

fn quota(q: Quota) -> GovernorQuota {
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::with_period(q.every.max(Duration::from_millis(1)))
        .unwrap_or_else(|| GovernorQuota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// An IPv6 address stands for its /64; IPv4 addresses for themselves.
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn limits(account: u32, source: u32) -> LoginLimits {
        let every = Duration::from_secs(3600);
        LoginLimits {
            per_account: Quota {
                burst: account,
                every,
            },
            per_source: Quota {
                burst: source,
                every,
            },
        }
    }

    #[test]
    fn accounts_and_sources_have_their_own_budgets() {
        let limiter = LoginLimiter::new(limits(2, 3), vec![]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(a, "ann@example.org").is_ok());
        assert!(limiter.check(a, "ANN@example.org ").is_ok());
        let Err(Exhausted::Account(wait)) = limiter.check(b, "ann@example.org") else {
            panic!("the account's budget is spent");
        };
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        // The refused attempt came from b: a's third attempt is still there.
        assert!(limiter.check(a, "bob@example.org").is_ok());
        assert!(matches!(
            limiter.check(a, "cy@example.org"),
            Err(Exhausted::Source(_))
        ));
        // An IPv6 /64 is one source.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let limiter = LoginLimiter::new(limits(10, 1), vec![]);
        assert!(limiter.check(v6a, "x@example.org").is_ok());
        assert!(matches!(
            limiter.check(v6b, "y@example.org"),
            Err(Exhausted::Source(_))
        ));
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let limiter = LoginLimiter::new(limits(1, 1), vec![proxy]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7"),
        );
        let from_proxy = SocketAddr::new(proxy, 40_000);
        let from_client = SocketAddr::new("198.51.100.20".parse().unwrap(), 40_000);
        assert_eq!(
            limiter.source(from_proxy, &headers),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limiter.source(from_client, &headers), from_client.ip());
        // A chain of trusted proxies is walked through.
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.5"),
        );
        assert_eq!(
            limiter.source(from_proxy, &headers),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limiter.source(from_proxy, &HeaderMap::new()), proxy);
    }
}
