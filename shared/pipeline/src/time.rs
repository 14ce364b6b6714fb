//! Times as the pipeline stores them: RFC 3339 with microseconds in UTC, which sorts
//! lexically (inbox time index, `received_at`, `published_at`).

use chrono::{DateTime, Utc};

pub fn format_sortable(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Reads a time [`format_sortable`] wrote (any RFC 3339 time is accepted).
pub fn parse_sortable(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_times_read_back_and_order_like_time() {
        let a = parse_sortable("2019-11-01T19:11:05.9Z").unwrap();
        let b = parse_sortable("2019-11-01T19:11:10.1Z").unwrap();
        assert!(format_sortable(&a) < format_sortable(&b));
        assert_eq!(parse_sortable(&format_sortable(&a)), Some(a));
        assert_eq!(parse_sortable("yesterday"), None);
    }
}
