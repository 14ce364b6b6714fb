//! EventBridge schedule expressions (rate and cron) and the scheduler that runs them.

use super::*;

/// An EventBridge schedule expression (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(5 minutes)`: first run one period after start.
    Rate(Duration),
    /// `cron(min hour dom month dow year)`.
    Cron(Box<Cron>),
    /// `at(2026-01-01T09:00:00)` (ScheduleV2 one-off).
    At(NaiveDateTime),
}

impl std::str::FromStr for Schedule {
    type Err = EventSourceError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| EventSourceError::Schedule {
            expression: expression.to_owned(),
            reason: reason.to_owned(),
        };
        let expr = expression.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
            let (value, unit) = inner
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| fail("expected rate(<value> <unit>)"))?;
            let value: u64 = value
                .parse()
                .map_err(|_| fail("rate value must be a positive integer"))?;
            if value == 0 {
                return Err(fail("rate value must be a positive integer"));
            }
            let unit_secs = match (value, unit.trim()) {
                (1, "minute") | (2.., "minutes") => 60,
                (1, "hour") | (2.., "hours") => 3600,
                (1, "day") | (2.., "days") => 86_400,
                _ => {
                    return Err(fail(
                        "unit must be minute(s), hour(s) or day(s), singular only for 1",
                    ));
                }
            };
            return Ok(Self::Rate(Duration::from_secs(value * unit_secs)));
        }
        if let Some(inner) = expr.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
            return Cron::parse(inner)
                .map(|c| Self::Cron(Box::new(c)))
                .map_err(|r| fail(&r));
        }
        if let Some(inner) = expr.strip_prefix("at(").and_then(|s| s.strip_suffix(')')) {
            return NaiveDateTime::parse_from_str(inner.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(Self::At)
                .map_err(|_| fail("expected at(yyyy-mm-ddThh:mm:ss)"));
        }
        Err(fail("expected rate(...), cron(...) or at(...)"))
    }
}

impl Schedule {
    pub fn parse(expression: &str) -> Result<Self, EventSourceError> {
        expression.parse()
    }

    /// The first firing strictly after `after`, for cron and at; a rate fires
    /// every period from when its scheduler starts.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Rate(period) => Some(after + TimeDelta::from_std(*period).ok()?),
            Self::Cron(cron) => cron.next_after(after),
            Self::At(at) => Some(at.and_utc()).filter(|t| *t > after),
        }
    }
}

/// A parsed EventBridge cron expression. Supports `*`, `?`, values, names,
/// ranges, lists and steps; not `L`, `W` or `#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    /// None = `?` (the day is chosen by day-of-week).
    days_of_month: Option<Vec<bool>>,
    months: Vec<bool>,
    /// 1 = SUN .. 7 = SAT; None = `?`.
    days_of_week: Option<Vec<bool>>,
    /// None = any year.
    years: Option<Vec<bool>>,
}

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

impl Cron {
    fn parse(fields: &str) -> Result<Self, String> {
        let parts: Vec<&str> = fields.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = parts.as_slice() else {
            return Err(format!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                parts.len()
            ));
        };
        const MONTHS: &[&str] = &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let days_of_month = (*dom != "?")
            .then(|| cron_field(dom, 1, 31, &[]))
            .transpose()?;
        let days_of_week = (*dow != "?")
            .then(|| cron_field(dow, 1, 7, DAYS))
            .transpose()?;
        match (&days_of_month, &days_of_week) {
            (None, None) => return Err("only one of day-of-month and day-of-week may be ?".into()),
            (Some(_), Some(_)) => {
                return Err("one of day-of-month and day-of-week must be ?".into());
            }
            _ => {}
        }
        let years = if *year == "*" {
            None
        } else {
            Some(cron_field(year, MIN_YEAR as u32, MAX_YEAR as u32, &[])?)
        };
        Ok(Self {
            minutes: cron_field(min, 0, 59, &[])?,
            hours: cron_field(hour, 0, 23, &[])?,
            days_of_month,
            months: cron_field(month, 1, 12, MONTHS)?,
            days_of_week,
            years,
        })
    }

    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.naive_utc().with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let mut t = start;
        // Each step jumps to the next candidate year, month, day, hour or minute.
        for _ in 0..100_000 {
            if t.year() > MAX_YEAR {
                return None;
            }
            let next_day = |t: NaiveDateTime| t.date().succ_opt().map(|d| d.and_hms_opt(0, 0, 0));
            if !self
                .years
                .as_ref()
                .is_none_or(|y| allowed(y, (t.year() - MIN_YEAR) as usize))
            {
                t = NaiveDate::from_ymd_opt(t.year() + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !allowed(&self.months, t.month0() as usize) {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_matches(t.date()) {
                t = next_day(t)??;
            } else if !allowed(&self.hours, t.hour() as usize) {
                t = match t.date().and_hms_opt(t.hour() + 1, 0, 0) {
                    Some(next) => next,
                    None => next_day(t)??,
                };
            } else if !allowed(&self.minutes, t.minute() as usize) {
                t += TimeDelta::minutes(1);
            } else {
                return Some(t.and_utc());
            }
        }
        None
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        match (&self.days_of_month, &self.days_of_week) {
            (Some(dom), _) => allowed(dom, date.day0() as usize),
            (None, Some(dow)) => allowed(dow, date.weekday().num_days_from_sunday() as usize),
            (None, None) => true,
        }
    }
}

fn allowed(set: &[bool], index: usize) -> bool {
    set.get(index).copied().unwrap_or(false)
}

/// One cron field as a bitmap indexed from `min`.
fn cron_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        let v: u32 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number (L, W and # are not supported locally)"))?;
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(format!("{v} is outside {min}-{max}"))
        }
    };
    let mut set = vec![false; (max - min + 1) as usize];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("zero step in {part:?}"));
        }
        let (lo, hi) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `5/15` means from 5 to the end in steps of 15.
                None if part.contains('/') => (value(r)?, max),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if lo > hi {
            return Err(format!("range {part:?} runs backwards"));
        }
        for v in (lo..=hi).step_by(step as usize) {
            set[(v - min) as usize] = true;
        }
    }
    Ok(set)
}

/// Runs a job on a schedule. Runs never overlap: a slow run delays the next.
pub struct Scheduler {
    task: Background,
    counters: Arc<Counters>,
}

impl Scheduler {
    pub fn start<F, Fut>(
        name: impl Into<String>,
        schedule: Schedule,
        shutdown: &ShutdownToken,
        job: F,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let name = name.into();
        let shutdown = shutdown.child();
        let counters = Arc::new(Counters::default());
        let (stop, count) = (shutdown.clone(), counters.clone());
        let task = tokio::spawn(async move {
            let started = Utc::now();
            let mut ticks = 0u32;
            loop {
                let now = Utc::now();
                let next = match &schedule {
                    // Rates are anchored at start so run time does not drift them.
                    Schedule::Rate(period) => {
                        ticks = ticks.saturating_add(1);
                        period
                            .checked_mul(ticks)
                            .and_then(|d| TimeDelta::from_std(d).ok())
                            .map(|d| started + d)
                    }
                    other => other.next_after(now),
                };
                let Some(next) = next else {
                    tracing::debug!(schedule = %name, "no further runs");
                    break;
                };
                let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => break,
                }
                add(&count.invocations, 1);
                match AssertUnwindSafe(job()).catch_unwind().await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        add(&count.failed_invocations, 1);
                        tracing::warn!(schedule = %name, error = %e, "scheduled run failed");
                    }
                    Err(_panic) => {
                        add(&count.failed_invocations, 1);
                        tracing::error!(schedule = %name, "scheduled run panicked");
                    }
                }
                if stop.is_cancelled() {
                    break;
                }
            }
        });
        Self {
            task: Background {
                shutdown,
                task: Some(task),
                what: "scheduler",
            },
            counters,
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops after the current run (if any) finishes.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}
