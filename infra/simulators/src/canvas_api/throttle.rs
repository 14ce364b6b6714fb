//! Canvas's request throttle: a leaky bucket per access token, and what a request costs.
//!
//! Canvas charges every request in flight an up-front amount, replaces it with the real
//! cost when the request completes, and leaks the bucket at a constant outflow. A request
//! that would push the level over the high-water mark is refused without being processed,
//! so a client that bursts many parallel requests is throttled even though each one is
//! cheap.

use std::collections::HashMap;
use std::time::Instant;

/// What a completed request costs: `base + per_item × objects returned`, jittered by a
/// deterministic ±`jitter` fraction (Canvas costs are CPU and database time, never round).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostModel {
    pub base: f64,
    pub per_item: f64,
    /// Relative jitter, e.g. 0.1 = ±10 %.
    pub jitter: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        Self {
            base: 0.5,
            per_item: 0.01,
            jitter: 0.1,
        }
    }
}

impl CostModel {
    /// Cost of the `seq`-th request, which returned `items` objects.
    pub fn cost(&self, items: usize, seed: u64, seq: u64) -> f64 {
        let nominal = self.base + self.per_item * items as f64;
        let unit = splitmix64(seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as f64
            / u64::MAX as f64
            * 2.0
            - 1.0;
        (nominal * (1.0 + self.jitter * unit)).max(0.0)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

/// Outcome of a request arriving at the bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Admission {
    /// Processed; `level` includes this request's up-front charge.
    Admitted { level: f64 },
    /// Refused: the level (unchanged) plus the up-front charge would pass the mark.
    Throttled { level: f64 },
}

/// All buckets of one simulator, keyed by access token.
#[derive(Debug)]
pub(crate) struct Throttle {
    high_water: f64,
    /// Units per real second (`outflow × time_scale`).
    leak_rate: f64,
    upfront: f64,
    buckets: HashMap<String, Bucket>,
    peak: f64,
}

impl Throttle {
    pub(crate) fn new(high_water: f64, outflow: f64, time_scale: f64, upfront: f64) -> Self {
        Self {
            high_water,
            leak_rate: (outflow * time_scale).max(0.0),
            upfront,
            buckets: HashMap::new(),
            peak: 0.0,
        }
    }

    pub(crate) fn high_water(&self) -> f64 {
        self.high_water
    }

    pub(crate) fn peak(&self) -> f64 {
        self.peak
    }

    fn leaked(&mut self, key: &str, now: Instant) -> &mut Bucket {
        let rate = self.leak_rate;
        let bucket = self.buckets.entry(key.to_string()).or_insert(Bucket {
            level: 0.0,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.level = (bucket.level - rate * elapsed).max(0.0);
        bucket.at = bucket.at.max(now);
        bucket
    }

    /// A request arrives: leak, then charge the up-front cost unless that overflows.
    pub(crate) fn admit(&mut self, key: &str, now: Instant) -> Admission {
        let (high_water, upfront) = (self.high_water, self.upfront);
        let bucket = self.leaked(key, now);
        if bucket.level + upfront > high_water {
            return Admission::Throttled {
                level: bucket.level,
            };
        }
        bucket.level += upfront;
        let level = bucket.level;
        self.peak = self.peak.max(level);
        Admission::Admitted { level }
    }

    /// A request completes: the up-front charge is replaced by the real cost.
    pub(crate) fn complete(&mut self, key: &str, cost: f64, now: Instant) -> f64 {
        let upfront = self.upfront;
        let bucket = self.leaked(key, now);
        bucket.level = (bucket.level - upfront).max(0.0) + cost;
        let level = bucket.level;
        self.peak = self.peak.max(level);
        level
    }

    /// Current level (after leaking) without charging anything.
    pub(crate) fn level(&mut self, key: &str, now: Instant) -> f64 {
        self.leaked(key, now).level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_admits_until_high_water_then_leaks() {
        let mut t = Throttle::new(700.0, 10.0, 1.0, 50.0);
        let now = Instant::now();
        for _ in 0..14 {
            assert!(matches!(t.admit("a", now), Admission::Admitted { .. }));
        }
        assert_eq!(t.admit("a", now), Admission::Throttled { level: 700.0 });
        // Another token has its own bucket.
        assert!(matches!(t.admit("b", now), Admission::Admitted { .. }));
        let later = now + Duration::from_secs(5);
        assert!((t.level("a", later) - 650.0).abs() < 1e-9);
        let level = t.complete("a", 1.0, later);
        assert!((level - 601.0).abs() < 1e-9);
        assert_eq!(t.peak(), 700.0);
    }

    #[test]
    fn cost_is_deterministic_and_jittered_within_bounds() {
        let model = CostModel::default();
        let costs: Vec<f64> = (0..100).map(|seq| model.cost(10, 7, seq)).collect();
        assert_eq!(
            costs,
            (0..100)
                .map(|seq| model.cost(10, 7, seq))
                .collect::<Vec<_>>()
        );
        assert!(costs.iter().all(|c| (0.54..=0.66).contains(c)), "{costs:?}");
        assert!(costs.windows(2).any(|w| w[0] != w[1]));
    }
}
