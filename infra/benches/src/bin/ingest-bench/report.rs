//! The printed result block for BENCHMARKS.md.

use super::*;

pub(crate) struct Report {
    pub(crate) mode: Mode,
    pub(crate) sent: u64,
    pub(crate) warmup: u64,
    pub(crate) lines: Vec<(String, String)>,
    pub(crate) notes: Vec<String>,
    pub(crate) verified: bool,
}

impl Report {
    pub(crate) fn new(mode: Mode, sent: u64, warmup: u64) -> Self {
        Self {
            mode,
            sent,
            warmup,
            lines: Vec::new(),
            notes: Vec::new(),
            verified: false,
        }
    }

    pub(crate) fn line(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push((key.to_string(), value.into()));
    }

    pub(crate) fn note(&mut self, text: &str) {
        self.notes.push(text.to_string());
    }

    pub(crate) fn throughput(&mut self, accepted: u64, over: Duration) {
        let secs = over.as_secs_f64();
        self.line(
            "throughput",
            format!(
                "{:.1} accepted events/s ({accepted} accepted in {secs:.2} s)",
                accepted as f64 / secs.max(1e-9)
            ),
        );
    }

    /// Ingest's own account: accepted == sent and nothing dropped, rejected or failed on the
    /// way. When deliveries were retried (faults, timeouts) a retry whose first attempt was
    /// stored counts as a duplicate or recovered, so every event sent must be stored in one of
    /// those ways; the subscriber check proves delivery.
    pub(crate) fn verify(&mut self, stack: &LocalStack, accepted: u64, sent: u64, retried: bool) {
        let m = &stack.metrics;
        let duplicates = m.sum("DuplicatesDropped", &[]) as u64;
        let recovered = m.sum("EventsRecovered", &[]) as u64;
        let rejected = m.sum("EventsRejected", &[]) as u64;
        let auth = m.sum("AuthFailures", &[]) as u64;
        let failures = m.sum("IngestFailures", &[]) as u64;
        let summary = format!(
            "duplicates {duplicates}, recovered {recovered}, rejects {rejected}, auth failures \
             {auth}, ingest failures {failures}"
        );
        if retried {
            self.verified = accepted <= sent
                && accepted + recovered + duplicates >= sent
                && rejected == 0
                && auth == 0;
            self.line(
                "verified",
                format!(
                    "{}: accepted {accepted} of {sent} sent, the rest stored by a retried \
                     delivery; {summary} (failed attempts were retried)",
                    if self.verified { "ok" } else { "FAILED" },
                ),
            );
        } else {
            self.verified = accepted == sent;
            self.line(
                "verified",
                format!(
                    "{}: accepted {accepted} {} sent {sent}; {summary}",
                    if self.verified { "ok" } else { "FAILED" },
                    if self.verified { "==" } else { "!=" },
                ),
            );
        }
    }

    /// Every event sent (warm-up included) arrived under exactly one change event id, and
    /// per-entity sequences are 1, 2, 3...
    pub(crate) fn bus(&mut self, bus: &SubscriberReport, sent: &[String], drained: bool) {
        let mut ids_by_hash: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut nameless = 0u64;
        for copy in &bus.copies {
            match (copy.event_hash(), copy.event_id()) {
                (Some(hash), Some(id)) => {
                    ids_by_hash.entry(hash).or_default().insert(id);
                }
                _ => nameless += 1,
            }
        }
        let sent_set: BTreeSet<&str> = sent.iter().map(String::as_str).collect();
        let arrived = sent_set
            .iter()
            .filter(|h| ids_by_hash.contains_key(*h))
            .count();
        let unexpected = ids_by_hash
            .keys()
            .filter(|h| !sent_set.contains(*h))
            .count();
        let split = ids_by_hash.values().filter(|ids| ids.len() > 1).count();
        let ok = arrived == sent_set.len()
            && unexpected == 0
            && split == 0
            && nameless == 0
            && bus.unreadable == 0;
        self.verified &= ok;
        let mut text = format!(
            "{}: {arrived} of {} events (warm-up included) arrived at the subscriber, each under \
             one change event id; {} SQS messages, {} same-id copies",
            if ok { "ok" } else { "FAILED" },
            sent_set.len(),
            bus.messages,
            bus.redeliveries
        );
        if !ok {
            text.push_str(&format!(
                "; {unexpected} arrived that were not sent, {split} under several ids, {} \
                 without hash or id, {} unreadable",
                nameless, bus.unreadable
            ));
        }
        self.line("changes", text);

        let problems = bus.sequence_problems();
        let entities = bus
            .events
            .values()
            .filter_map(|a| a.entity_key())
            .collect::<BTreeSet<_>>()
            .len();
        let late = bus
            .events
            .values()
            .filter(|a| a.detail()["late"] == true)
            .count();
        self.verified &= problems.is_empty();
        self.line(
            "ordering",
            match problems.first() {
                None => format!(
                    "ok: per-entity sequences 1, 2, 3... without gaps or repeats ({entities} \
                     entities, {late} events flagged late)"
                ),
                Some(first) => format!("FAILED: {} problems, first: {first}", problems.len()),
            },
        );
        if !drained {
            self.note("changes.fifo still held messages --idle seconds after the last arrival");
        }
    }

    pub(crate) fn dlqs(&mut self, depths: &[(&str, u64)]) {
        let ok = depths.iter().all(|(_, depth)| *depth == 0);
        self.verified &= ok;
        self.line(
            "dlq",
            format!(
                "{}: {}",
                if ok { "ok" } else { "FAILED" },
                depths
                    .iter()
                    .map(|(name, depth)| format!("{name} {depth}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    /// Emit → arrival at the subscriber for the timed events, and whether the pipeline kept up.
    pub(crate) fn propagation(
        &mut self,
        bus: &SubscriberReport,
        timed: &[String],
        emitted: &[Option<DateTime<Utc>>],
        emission: &str,
    ) {
        let by_hash = bus.by_event_hash();
        let mut all = histogram(HIST_MAX_US);
        let mut quarters: Vec<Histogram<u64>> = (0..4).map(|_| histogram(HIST_MAX_US)).collect();
        let (mut sent_at, mut arrived_at) = (Vec::new(), Vec::new());
        for (i, (hash, emitted)) in timed.iter().zip(emitted).enumerate() {
            let (Some(emitted), Some(arrival)) = (emitted, by_hash.get(hash.as_str())) else {
                continue;
            };
            let us = micros(arrival.latency_since(*emitted));
            all.saturating_record(us);
            if let Some(quarter) = quarters.get_mut(i * 4 / timed.len().max(1)) {
                quarter.saturating_record(us);
            }
            sent_at.push(*emitted);
            arrived_at.push(arrival.arrived_at);
        }
        self.line("e2e ms", percentiles(&all));
        self.line(
            "  from",
            format!("{emission} → its change event received from {SUBSCRIBER_QUEUE}"),
        );
        let ms = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{:.0}", h.value_at_quantile(0.5) as f64 / 1e3)
            }
        };
        self.line(
            "  p50 by quarter",
            format!(
                "{} ms (timed events in send order; rising means the pipeline fell behind)",
                quarters.iter().map(ms).collect::<Vec<_>>().join(" · ")
            ),
        );
        let first = sent_at.iter().min();
        let last_sent = sent_at.iter().max();
        let last_arrival = arrived_at.iter().max();
        if let (Some(first), Some(last_sent), Some(last_arrival)) = (first, last_sent, last_arrival)
        {
            let span = (*last_arrival - *first).to_std().unwrap_or_default();
            let drain = (*last_arrival - *last_sent).to_std().unwrap_or_default();
            self.line(
                "pipeline",
                format!(
                    "{:.1} events/s first emission → last arrival ({} events in {:.1} s); max \
                     backlog {} events (emitted, not yet arrived); last arrival {:.1} s after \
                     the last emission",
                    sent_at.len() as f64 / span.as_secs_f64().max(1e-9),
                    sent_at.len(),
                    span.as_secs_f64(),
                    max_backlog(sent_at.clone(), arrived_at.clone()),
                    drain.as_secs_f64()
                ),
            );
        }
    }

    /// The functions' AWS requests per timed event, by service and operation.
    pub(crate) fn requests(
        &mut self,
        requests: &BTreeMap<String, OperationStats>,
        events: u64,
        faults: bool,
    ) {
        let per = |n: u64| n as f64 / events.max(1) as f64;
        let count = |op: &str| requests.get(op).map_or(0, |s| s.requests);
        let list = |ops: &[&str]| {
            let parts: Vec<String> = requests
                .iter()
                .filter(|(op, _)| ops.contains(&op.as_str()))
                .map(|(op, s)| format!("{op} {:.2}", per(s.requests)))
                .collect();
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(" · ")
            }
        };
        let dynamodb: Vec<&str> = DYNAMODB_READS
            .iter()
            .chain(&DYNAMODB_WRITES)
            .copied()
            .collect();
        self.line(
            "dynamodb/event",
            format!("{} (requests per timed event)", list(&dynamodb)),
        );
        let reads: u64 = DYNAMODB_READS.iter().map(|op| count(op)).sum();
        let writes: u64 = DYNAMODB_WRITES.iter().map(|op| count(op)).sum();
        let transactions = count("TransactWriteItems");
        let item_writes = writes - transactions + transactions * TRANSACT_ITEMS;
        // Judged on the figure as shown: a stray SDK retry must not flip 4.00 to "not met".
        let met = (per(item_writes) * 100.0).round() / 100.0 <= WRITE_TARGET;
        let verdict = match (faults, met) {
            // Retries of faulted calls add requests; the target is for the design's path.
            (true, _) => "target applies to a run without --faults",
            (false, true) => "met",
            (false, false) => "NOT met",
        };
        self.line(
            "  totals",
            format!(
                "reads {:.2} · write requests {:.2} · item writes {:.2} (target ≤ {WRITE_TARGET}: \
                 {verdict}); {item_writes} item writes for {events} events",
                per(reads),
                per(writes),
                per(item_writes),
            ),
        );
        self.line(
            "  note",
            format!(
                "TransactWriteItems counts as 1 write request and {TRANSACT_ITEMS} item writes \
                 (catalog row + outbox record); requests include the SDK's retries"
            ),
        );
        self.line(
            "sqs/event",
            format!(
                "{} (the functions' own calls; the event-source pollers and the subscriber \
                 bypass the proxy, as the Lambda service would)",
                list(&SQS_OPERATIONS)
            ),
        );
        self.line(
            "events/event",
            format!(
                "{} (EventBridge; one call per processor batch)",
                list(&EVENTBRIDGE_OPERATIONS)
            ),
        );
        let known: Vec<&str> = dynamodb
            .iter()
            .chain(&SQS_OPERATIONS)
            .chain(&EVENTBRIDGE_OPERATIONS)
            .copied()
            .collect();
        let other: Vec<String> = requests
            .iter()
            .filter(|(op, _)| !known.contains(&op.as_str()))
            .map(|(op, s)| {
                let name = if op.is_empty() { "(no target)" } else { op };
                format!("{name} {:.2}", per(s.requests))
            })
            .collect();
        if !other.is_empty() {
            self.line("other/event", other.join(" · "));
        }
    }

    /// Faults injected per operation (--faults).
    pub(crate) fn faults(
        &mut self,
        requests: &BTreeMap<String, OperationStats>,
        seed: u64,
        visibility: u32,
    ) {
        let total: u64 = requests.values().map(|s| s.faults.total()).sum();
        self.line(
            "faults",
            format!(
                "{total} injected in the timed run, seed {seed:#x}; live-events and changes \
                 queues VisibilityTimeout {visibility} s, maxReceiveCount 100"
            ),
        );
        for (op, stats) in requests.iter().filter(|(_, s)| s.faults.total() > 0) {
            let f = &stats.faults;
            let mut kinds = Vec::new();
            if f.rejected > 0 {
                kinds.push(format!("{} rejected", f.rejected));
            }
            if f.lost_responses > 0 {
                kinds.push(format!("{} responses lost", f.lost_responses));
            }
            if f.partial_put_events > 0 {
                kinds.push(format!(
                    "{} partial failures ({} entries failed)",
                    f.partial_put_events, f.failed_entries
                ));
            }
            if f.delayed > 0 {
                kinds.push(format!("{} delayed", f.delayed));
            }
            self.line(
                &format!("  {op}"),
                format!(
                    "{} of {} requests ({:.1} %)",
                    kinds.join(", "),
                    stats.requests,
                    100.0 * f.total() as f64 / stats.requests.max(1) as f64
                ),
            );
        }
    }

    pub(crate) fn render(&self, args: &Args) -> String {
        let mut lines = vec![
            (
                "ingest-bench".to_string(),
                format!(
                    "{} · {} · coursewire {}{}",
                    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
                    if cfg!(debug_assertions) {
                        "debug build"
                    } else {
                        "release build"
                    },
                    env!("CARGO_PKG_VERSION"),
                    git_commit().map(|c| format!(" @ {c}")).unwrap_or_default()
                ),
            ),
            (
                "mode".to_string(),
                format!(
                    "{} ({})",
                    self.mode.name(),
                    match self.mode {
                        Mode::Https =>
                            "function URL, signed RS256 JWT → inbox + changes.fifo → processor \
                             → catalog + bus → subscriber, on moto",
                        Mode::Sqs =>
                            "live-events queue → in-process pollers → inbox + changes.fifo → \
                             processor → catalog + bus → subscriber, on moto",
                    }
                ),
            ),
            (
                "events".to_string(),
                format!(
                    "{} timed (+{} warm-up), distinct, from {}-course x {}-student scenarios, seed {}+",
                    self.sent, self.warmup, args.courses, args.students, args.seed
                ),
            ),
        ];
        lines.extend(self.lines.iter().cloned());
        result_block("ingest-bench", lines, &self.notes, &[])
    }
}
