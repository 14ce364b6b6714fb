//! The simulator's clock: sessions record, process and get captions on it, and tokens expire
//! on it. It starts at a chosen instant, runs at a chosen scale of real time (0 = frozen, so
//! only [`SimClock::advance`] moves it) and can be moved forward at will.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct SimClock {
    start: DateTime<Utc>,
    scale: f64,
    real_start: Instant,
    /// Everything `advance` added.
    advanced: Mutex<TimeDelta>,
}

impl SimClock {
    /// A clock reading `start` now and running `scale` simulated seconds per real second.
    pub fn new(start: DateTime<Utc>, scale: f64) -> Self {
        Self {
            start,
            scale: if scale.is_finite() {
                scale.max(0.0)
            } else {
                0.0
            },
            real_start: Instant::now(),
            advanced: Mutex::new(TimeDelta::zero()),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let real = self.real_start.elapsed().as_secs_f64() * self.scale;
        let running = TimeDelta::milliseconds((real * 1000.0) as i64);
        self.start + running + *super::server::lock(&self.advanced)
    }

    /// Moves the clock forward by `by` (simulated time).
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut advanced = super::server::lock(&self.advanced);
        *advanced = advanced.checked_add(&by).unwrap_or(*advanced);
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let start = "2025-09-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = SimClock::new(start, 0.0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), start + TimeDelta::seconds(90));
        let fast = SimClock::new(start, 1000.0);
        std::thread::sleep(Duration::from_millis(20));
        assert!(fast.now() >= start + TimeDelta::seconds(20));
    }
}
