//! A brake on guessing the admin token: after [`MAX_FAILURES`] wrong tokens
//! from one address within [`WINDOW`], that address's admin requests are
//! answered 429 with `Retry-After`, without the token being looked at, until
//! its oldest failure leaves the window. A right token never counts, nor a
//! request without one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; those with no failure in the window go first.
const ADDRESSES_KEPT: usize = 10_000;

/// The address a request came from, put in its extensions by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

#[derive(Default)]
pub struct AdminGuard {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AdminGuard {
    /// How long `ip` must still wait, while it is locked out.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let times = map.get_mut(&ip)?;
        while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
            times.pop_front();
        }
        if times.len() < MAX_FAILURES {
            return None;
        }
        let oldest = times.front().copied()?;
        Some(WINDOW.saturating_sub(now.saturating_duration_since(oldest)).max(Duration::from_secs(1)))
    }

    /// Counts a wrong (or missing) token from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= ADDRESSES_KEPT && !map.contains_key(&ip) {
            map.retain(|_, t| t.back().is_some_and(|last| now.saturating_duration_since(*last) < WINDOW));
            if map.len() >= ADDRESSES_KEPT {
                // Every address is failing right now: keep counting this one in place of another.
                if let Some(k) = map.keys().next().copied() {
                    map.remove(&k);
                }
            }
        }
        let times = map.entry(ip).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_repeated_failures_until_the_window_passes() {
        let g = AdminGuard::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(g.locked(a, t0), None, "after {i} failures");
            g.failed(a, t0 + Duration::from_secs(i as u64));
        }
        let wait = g.locked(a, t0 + Duration::from_secs(10)).expect("locked");
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(g.locked(b, t0), None, "other addresses are not");
        assert_eq!(g.locked(a, t0 + WINDOW), None, "the oldest failure left the window");
    }

    #[test]
    fn addresses_remembered_are_bounded() {
        let g = AdminGuard::default();
        let now = Instant::now();
        for i in 0..(ADDRESSES_KEPT as u32 + 500) {
            g.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(g.failures.lock().map(|m| m.len()).unwrap_or(0) <= ADDRESSES_KEPT);
    }
}
