//! After the timed part: the pipeline drained to the subscriber, fault-proxy counts, backlog.

use super::*;

/// What a timed run hands to the pipeline checks.
pub(crate) struct Run {
    pub(crate) report: Report,
    /// Per timed event (in order): when it was emitted.
    pub(crate) emitted: Vec<Option<DateTime<Utc>>>,
    /// What "emitted" means in this mode.
    pub(crate) emission: &'static str,
    /// The proxy's counts when the timed run started.
    pub(crate) baseline: FaultStats,
}

/// Quick retries for the soak: a failed message is back after `visibility` seconds, and
/// never dead-lettered (a DLQ message would fail the run, and faults are meant to heal).
pub(crate) fn soak_overrides(overrides: Overrides, visibility: u32) -> Overrides {
    let visibility = visibility.to_string();
    overrides
        .queue_attribute(LIVE_EVENTS_QUEUE, "VisibilityTimeout", visibility.as_str())
        .queue_attribute(CHANGES_QUEUE, "VisibilityTimeout", visibility.as_str())
        .max_receive_count(LIVE_EVENTS_QUEUE, 100)
        .max_receive_count(CHANGES_QUEUE, 100)
}

pub(crate) fn proxy_stats(stack: &LocalStack) -> FaultStats {
    stack
        .fault_proxy()
        .map(|proxy| proxy.stats())
        .unwrap_or_default()
}

/// Waits until the warm-up's change events have all arrived and changes.fifo is empty, then
/// clears the metrics: the timed run's figures and request counts hold only its own events.
pub(crate) async fn settle_warmup(
    args: &Args,
    stack: &LocalStack,
    subscriber: &Subscriber,
) -> Result<FaultStats> {
    let idle = Duration::from_secs(args.idle);
    if args.warmup > 0 {
        let arrived = subscriber.wait_for(args.warmup, idle).await;
        ensure!(
            arrived >= args.warmup,
            "warm-up: only {arrived} of {} change events reached the subscriber",
            args.warmup
        );
    }
    ensure!(
        stack.drain(CHANGES_QUEUE, idle).await?,
        "warm-up: changes.fifo did not empty within {} s",
        args.idle
    );
    stack.metrics.clear();
    Ok(proxy_stats(stack))
}

/// After the timed run: waits for the change events, stops the subscriber, checks the
/// pipeline and adds the propagation, request and (with --faults) fault figures.
pub(crate) async fn finish_pipeline(
    args: &Args,
    stack: &LocalStack,
    subscriber: Subscriber,
    hashes: &[String],
    run: Run,
) -> Result<Report> {
    let Run {
        mut report,
        emitted,
        emission,
        baseline,
    } = run;
    let expected = hashes.len() as u64;
    let idle = Duration::from_secs(args.idle);
    step(&format!(
        "waiting for {expected} change events at the subscriber (warm-up included)"
    ));
    let waiting = Instant::now();
    subscriber.wait_for(expected, idle).await;
    // The published mark follows PutEvents: an empty changes.fifo means every request of
    // the run (retries included) has been made and counted.
    let drained = stack.drain(CHANGES_QUEUE, idle).await?;
    tokio::time::sleep(SETTLE).await;
    let requests = per_operation(&proxy_stats(stack), &baseline);
    let mut dlqs = Vec::new();
    for dlq in DLQS {
        dlqs.push((dlq, stack.queue_depth(dlq).await?.total()));
    }
    let bus = subscriber.finish().await;
    step(&format!(
        "pipeline settled {:.1} s after the last send",
        waiting.elapsed().as_secs_f64()
    ));

    let warmup = usize::try_from(args.warmup)?;
    let timed = hashes.get(warmup..).unwrap_or_default();
    report.bus(&bus, hashes, drained);
    report.dlqs(&dlqs);
    report.propagation(&bus, timed, &emitted, emission);
    let published = stack.metrics.values("PropagationLatency");
    let mut processor = histogram(HIST_MAX_US);
    for ms in &published {
        processor.saturating_record(((ms * 1e3).round() as u64).max(1));
    }
    report.line("processor ms", percentiles(&processor));
    report.line(
        "  from",
        "PropagationLatency: received by ingest → published by the processor (its own metric)",
    );
    report.requests(&requests, timed.len() as u64, args.faults);
    if args.faults {
        report.faults(&requests, args.fault_seed, args.fault_visibility);
    }
    Ok(report)
}

/// Requests (and faults) per operation since `baseline`.
pub(crate) fn per_operation(
    now: &FaultStats,
    baseline: &FaultStats,
) -> BTreeMap<String, OperationStats> {
    now.operations
        .iter()
        .map(|(op, stats)| {
            let before = baseline.operations.get(op).copied().unwrap_or_default();
            let faults = &stats.faults;
            let mut delta = OperationStats {
                requests: stats.requests - before.requests,
                ..OperationStats::default()
            };
            delta.faults.rejected = faults.rejected - before.faults.rejected;
            delta.faults.lost_responses = faults.lost_responses - before.faults.lost_responses;
            delta.faults.partial_put_events =
                faults.partial_put_events - before.faults.partial_put_events;
            delta.faults.failed_entries = faults.failed_entries - before.faults.failed_entries;
            delta.faults.delayed = faults.delayed - before.faults.delayed;
            (op.clone(), delta)
        })
        .filter(|(_, delta)| delta.requests > 0)
        .collect()
}

/// The most events that were emitted but had not arrived yet at any one time.
pub(crate) fn max_backlog(mut emitted: Vec<DateTime<Utc>>, mut arrived: Vec<DateTime<Utc>>) -> u64 {
    emitted.sort();
    arrived.sort();
    let (mut backlog, mut max, mut next_arrival) = (0i64, 0i64, 0usize);
    for at in &emitted {
        while arrived.get(next_arrival).is_some_and(|a| a < at) {
            backlog -= 1;
            next_arrival += 1;
        }
        backlog += 1;
        max = max.max(backlog);
    }
    u64::try_from(max).unwrap_or(0)
}
