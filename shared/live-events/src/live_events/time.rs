//! Lenient event-time parsing: Canvas documents RFC 3339 with milliseconds, but examples and
//! older producers also use whole seconds, offsets, a space separator, a ` UTC` suffix, or
//! epoch numbers.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};

/// Parses the forms of `event_time` seen from Canvas. Returns `None` for anything else,
/// including years outside 2000-2199 (a typo such as `019-11-01` is not year 19).
pub fn parse_event_time(text: &str) -> Option<DateTime<Utc>> {
    parse_any(text.trim()).filter(|t| (2000..2200).contains(&t.year()))
}

fn parse_any(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let without_utc = text
        .strip_suffix(" UTC")
        .or_else(|| text.strip_suffix('Z'))
        .unwrap_or(text);
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(without_utc, format) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f %z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    text.parse::<f64>().ok().and_then(from_epoch)
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
pub fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let millis = if n >= 1e11 { n } else { n * 1000.0 };
    DateTime::from_timestamp_millis(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coursewire_pipeline::time::format_sortable;

    #[test]
    fn accepts_the_forms_canvas_uses() {
        let expected = "2019-11-01T19:11:05.222000Z";
        for text in [
            "2019-11-01T19:11:05.222Z",
            "2019-11-01T19:11:05.222+00:00",
            "2019-11-01T12:11:05.222-07:00",
            "2019-11-01 19:11:05.222 UTC",
            "2019-11-01 19:11:05.222",
            "2019-11-01T19:11:05.222",
            "1572635465222",
            "1572635465.222",
        ] {
            let t = parse_event_time(text).unwrap_or_else(|| panic!("{text} should parse"));
            assert_eq!(format_sortable(&t), expected, "{text}");
        }
        assert!(parse_event_time("2019-11-01T19:11:05Z").is_some());
    }

    #[test]
    fn rejects_nonsense() {
        for text in ["", "yesterday", "019-11-01T19:11:01.163Z", "-5", "NaN"] {
            assert!(parse_event_time(text).is_none(), "{text}");
        }
    }

    #[test]
    fn sortable_format_orders_like_time() {
        let a = parse_event_time("2019-11-01T19:11:05.9Z").unwrap();
        let b = parse_event_time("2019-11-01T19:11:10.1Z").unwrap();
        assert!(format_sortable(&a) < format_sortable(&b));
    }
}
