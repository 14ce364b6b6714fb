//! A simulated clock for the functions on the local stack: a scenario moves it on by hand,
//! so "ten minutes later" takes no waiting. The teaching day runs on Panopto's simulated
//! clock, and `sla-monitor` sees the same day; alarm tests stamp the functions' metrics with
//! one (`StackOptions::metrics_clock`) and move it on between evaluations.

use chrono::{DateTime, Utc};
use coursewire_runtime::clock::Clock;
use coursewire_simulators::panopto::SimClock;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SimulatedTime(pub Arc<SimClock>);

impl SimulatedTime {
    /// A clock reading the real time now, running at real speed, moved on by [`Self::advance`].
    pub fn from_now() -> Self {
        Self(Arc::new(SimClock::new(Utc::now(), 1.0)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.advance(by);
    }
}

impl Clock for SimulatedTime {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}
