//! The functions' clock on the local stack when a scenario runs on Panopto's simulated time:
//! the teaching day moves Panopto's clock on by hand, and `sla-monitor` sees the same day.

use chrono::{DateTime, Utc};
use coursewire_runtime::clock::Clock;
use coursewire_simulators::panopto::SimClock;
use std::sync::Arc;

#[derive(Debug)]
pub struct PanoptoTime(pub Arc<SimClock>);

impl Clock for PanoptoTime {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}
