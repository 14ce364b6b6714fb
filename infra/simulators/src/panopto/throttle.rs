//! Panopto's throttling as the simulator plays it: a per-client budget of requests per
//! window (real time) answered with 429 and `Retry-After` once spent, and a switch that
//! makes the next N requests 429 whatever the budget says.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `requests` per `window` for each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBudget {
    pub requests: u32,
    pub window: Duration,
}

#[derive(Debug)]
pub(crate) struct Throttle {
    budget: Option<RequestBudget>,
    windows: HashMap<String, (Instant, u32)>,
    forced: usize,
    forced_retry_after: Duration,
}

impl Throttle {
    pub(crate) fn new(budget: Option<RequestBudget>) -> Self {
        Self {
            budget,
            windows: HashMap::new(),
            forced: 0,
            forced_retry_after: Duration::from_secs(1),
        }
    }

    pub(crate) fn set_budget(&mut self, budget: Option<RequestBudget>) {
        self.budget = budget;
        self.windows.clear();
    }

    pub(crate) fn force(&mut self, n: usize, retry_after: Duration) {
        self.forced = n;
        self.forced_retry_after = retry_after;
    }

    pub(crate) fn forced_pending(&self) -> usize {
        self.forced
    }

    /// A forced 429 for the next request, if one is due: its `Retry-After`.
    pub(crate) fn take_forced(&mut self) -> Option<Duration> {
        (self.forced > 0).then(|| {
            self.forced -= 1;
            self.forced_retry_after
        })
    }

    /// `None` if `client` may go on; else the wait until its window resets.
    pub(crate) fn admit(&mut self, client: &str, now: Instant) -> Option<Duration> {
        let budget = self.budget?;
        let (started, count) = self.windows.entry(client.to_string()).or_insert((now, 0));
        if now.duration_since(*started) >= budget.window {
            *started = now;
            *count = 0;
        }
        if *count >= budget.requests {
            return Some(budget.window.saturating_sub(now.duration_since(*started)));
        }
        *count += 1;
        None
    }
}

/// `Retry-After` in whole seconds, never 0 for a real wait.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    if wait.is_zero() { 0 } else { secs.max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_client_then_window_resets() {
        let mut t = Throttle::new(Some(RequestBudget {
            requests: 2,
            window: Duration::from_secs(10),
        }));
        let now = Instant::now();
        assert_eq!(t.admit("a", now), None);
        assert_eq!(t.admit("a", now), None);
        assert_eq!(t.admit("a", now), Some(Duration::from_secs(10)));
        assert_eq!(t.admit("b", now), None, "each client has its own budget");
        assert_eq!(t.admit("a", now + Duration::from_secs(10)), None);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        t.force(1, Duration::ZERO);
        assert_eq!(t.take_forced(), Some(Duration::ZERO));
        assert_eq!(t.take_forced(), None);
        let mut off = Throttle::new(None);
        assert_eq!(off.admit("a", now), None);
    }
}
