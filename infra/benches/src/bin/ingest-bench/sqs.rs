//! The SQS benchmark: a backlog queued on the Canvas live-events queue, released at once and drained by ingest-sqs.

use super::*;

pub(crate) fn string_attribute(value: &str) -> Result<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .context("building a message attribute")
}

/// One SendMessageBatch of up to 10 events, each delayed `delay_secs`.
pub(crate) async fn send_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    events: &[Emission],
    delay_secs: i32,
) -> Result<()> {
    let mut request = sqs.send_message_batch().queue_url(queue_url);
    for (i, event) in events.iter().enumerate() {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(event.payload.to_string())
            .delay_seconds(delay_secs)
            .message_attributes("event_name", string_attribute(&event.event_name)?)
            .message_attributes("event_time", string_attribute(&event.event_time)?)
            .build()
            .context("building a batch entry")?;
        request = request.entries(entry);
    }
    let out = request.send().await.map_err(|e| {
        anyhow!(
            "SendMessageBatch: {}",
            aws_sdk_sqs::error::DisplayErrorContext(&e)
        )
    })?;
    ensure!(
        out.failed.is_empty(),
        "SendMessageBatch refused {} entries: {:?}",
        out.failed.len(),
        out.failed.first().map(|f| f.message.clone())
    );
    Ok(())
}

/// Drain statistics summed over the waves.
#[derive(Default)]
pub(crate) struct Drained {
    /// Release → last event of the wave accepted, summed.
    pub(crate) time: Duration,
    /// Release → first event of the wave accepted, per wave.
    pub(crate) first_accept: Vec<Duration>,
    /// Untimed queueing, summed.
    pub(crate) queueing: Duration,
    /// Waiting between the end of queueing and the release, summed.
    pub(crate) idle: Duration,
    /// Events sent after their wave's release (queueing overran).
    pub(crate) late: usize,
    /// Events accepted before their wave's release (queueing overran).
    pub(crate) early: u64,
    pub(crate) cpu: CpuWindow,
}

pub(crate) async fn bench_sqs(
    args: &Args,
    stack: &LocalStack,
    subscriber: &Subscriber,
    events: &[Emission],
) -> Result<Run> {
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let queue = stack
        .queue_url(LIVE_EVENTS_QUEUE)
        .context("no live-events queue")?
        .to_string();
    let (warm, timed) = events.split_at(usize::try_from(args.warmup)?);
    let wave = usize::try_from(args.wave).context("--wave")?;

    // Warm-up through the whole path; its SendMessageBatch time seeds the first release time.
    let mut per_call = Duration::from_millis(10);
    if !warm.is_empty() {
        step(&format!("warm-up: {} events", warm.len()));
        let sending = Instant::now();
        for chunk in warm.chunks(SQS_BATCH) {
            send_batch(&sqs, &queue, chunk, 0).await?;
        }
        per_call = per_call.max(sending.elapsed() / warm.len().div_ceil(SQS_BATCH) as u32);
        let deadline = Instant::now() + Duration::from_secs(120);
        while accepted(stack) < warm.len() as u64 {
            ensure!(
                Instant::now() < deadline,
                "warm-up: only {} of {} events accepted after 120 s",
                accepted(stack),
                warm.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let baseline = settle_warmup(args, stack, subscriber).await?;
    let counters_before = stack
        .counters()
        .get(SQS_EVENT_SOURCE)
        .copied()
        .unwrap_or_default();

    let waves = timed.len().div_ceil(wave);
    step(&format!(
        "{} events in {waves} wave(s) of up to {wave}: each queued (not timed), released at one \
         instant, drained (timed)",
        timed.len()
    ));
    let bar = progress(timed.len(), "sqs");
    let mut drained = Drained::default();
    let mut emitted = Vec::with_capacity(timed.len());
    let mut target = 0u64;
    for part in timed.chunks(wave) {
        let calls = part.len().div_ceil(SQS_BATCH);
        let lead = match args.release_after {
            Some(secs) => Duration::from_secs(secs),
            // Generous: waiting longer costs nothing measured, overrunning spoils the wave.
            None => Duration::from_secs(
                (per_call.mul_f64(calls as f64 * 2.0) + Duration::from_secs(1))
                    .as_secs_f64()
                    .ceil() as u64,
            ),
        };
        ensure!(
            lead <= Duration::from_secs(SQS_MAX_DELAY_SECS),
            "queueing a wave of {} events would need a release {} s away, beyond SQS's 900 s \
             DelaySeconds: lower --wave",
            part.len(),
            lead.as_secs()
        );
        let before = accepted(stack);
        let queued = queue_wave(&sqs, &queue, part, lead).await?;
        drained.queueing += queued.took;
        drained.late += queued.late;
        drained.early += accepted(stack) - before;
        // The next wave's lead follows this wave's real queueing time.
        per_call = queued.took / calls as u32;

        let release = queued.release;
        // Every event of the wave becomes visible at its release: that is its emission.
        emitted.extend(std::iter::repeat_n(
            Some(DateTime::<Utc>::from(queued.release_wall)),
            part.len(),
        ));
        drained.idle += release.saturating_duration_since(Instant::now());
        tokio::time::sleep_until(tokio::time::Instant::from_std(release)).await;
        let cpu = CpuSample::now();
        target += part.len() as u64;
        let deadline = release + Duration::from_secs(args.timeout);
        let mut first = None;
        let mut last_depth_check = Instant::now();
        let done_at = loop {
            let now = Instant::now();
            let done = accepted(stack);
            let settled = done
                + stack.metrics.sum("DuplicatesDropped", &[]) as u64
                + stack.metrics.sum("EventsRejected", &[]) as u64;
            bar.set_position(done);
            if first.is_none() && done > before {
                first = Some(now.saturating_duration_since(release));
            }
            if settled >= target {
                break now;
            }
            // Something was lost or waits for redelivery: stop once the queue is empty.
            if now.duration_since(last_depth_check) >= Duration::from_secs(1) {
                last_depth_check = now;
                if now > release + Duration::from_secs(2)
                    && stack.queue_depth(LIVE_EVENTS_QUEUE).await?.total() == 0
                {
                    break now;
                }
            }
            ensure!(
                now < deadline,
                "only {} of {target} events accepted {} s after the last release (--timeout)",
                done,
                args.timeout
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let took = done_at.saturating_duration_since(release);
        drained.time += took;
        drained.cpu.add(&cpu, took);
        drained.first_accept.extend(first);
    }
    bar.finish_and_clear();

    let sent = timed.len() as u64;
    let accepted = accepted(stack);
    let mut batch_latency = histogram(HIST_MAX_US);
    let batches = stack.metrics.values("BatchLatency");
    for ms in &batches {
        batch_latency.saturating_record(((ms * 1e3).round() as u64).max(1));
    }
    let counters = stack
        .counters()
        .get(SQS_EVENT_SOURCE)
        .copied()
        .unwrap_or_default();
    let dlq = stack.queue_depth(LIVE_EVENTS_DLQ).await?.total();

    let mut report = Report::new(Mode::Sqs, sent, args.warmup);
    report.line(
        "payload",
        format!(
            "mean {:.0} B JSON; {:.0}% Caliper",
            events
                .iter()
                .map(|e| e.payload.to_string().len())
                .sum::<usize>() as f64
                / events.len() as f64,
            caliper_share(events)
        ),
    );
    report.line(
        "concurrency",
        format!(
            "{} pollers, batch size {SQS_BATCH} (template), 1 s batching window",
            args.pollers
        ),
    );
    report.line(
        "rate",
        format!(
            "backlog: {waves} wave(s) of up to {wave} events, each queued then released at once"
        ),
    );
    report.throughput(accepted, drained.time);
    report.line("cpu", drained.cpu.render());
    report.line("batch ms", percentiles(&batch_latency));
    report.line(
        "  from",
        format!(
            "handler BatchLatency per invocation ({} batches, mean {:.1} events)",
            batches.len(),
            sent as f64 / batches.len().max(1) as f64
        ),
    );
    let mean_first = drained.first_accept.iter().sum::<Duration>()
        / u32::try_from(drained.first_accept.len().max(1)).unwrap_or(u32::MAX);
    report.line(
        "first ms",
        format!(
            "{:.0} mean from a release to the wave's first accepted event",
            mean_first.as_secs_f64() * 1e3
        ),
    );
    report.line(
        "queueing",
        format!(
            "{:.1} s untimed ({} SendMessageBatch calls, {SQS_FILL_CONCURRENCY} at a time) + \
             {:.1} s waiting for releases",
            drained.queueing.as_secs_f64(),
            timed.len().div_ceil(SQS_BATCH),
            drained.idle.as_secs_f64()
        ),
    );
    let invocations = counters.invocations - counters_before.invocations;
    let failed_items = counters.batch_item_failures - counters_before.batch_item_failures;
    let sqs_errors = counters.sqs_errors - counters_before.sqs_errors;
    report.line(
        "pollers",
        format!(
            "{invocations} invocations, {failed_items} batch item failures, {sqs_errors} SQS \
             errors, DLQ {dlq}"
        ),
    );
    report.verify(stack, accepted, sent, args.faults);
    if drained.late > 0 || drained.early > 0 {
        report.note(&format!(
            "queueing overran a release ({} events sent late, {} accepted before their \
             release): rerun with a larger --release-after",
            drained.late, drained.early
        ));
    }
    Ok(Run {
        report,
        emitted,
        emission: "wave released (DelaySeconds rounding adds up to 1 s)",
        baseline,
    })
}

pub(crate) struct Queued {
    pub(crate) release: Instant,
    pub(crate) release_wall: SystemTime,
    pub(crate) took: Duration,
    pub(crate) late: usize,
}

/// Queues `events` with per-message delays that all end at `now + lead`, so the pollers
/// (which run all along) see nothing until the release and then the whole wave at once.
pub(crate) async fn queue_wave(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    events: &[Emission],
    lead: Duration,
) -> Result<Queued> {
    let release_wall = SystemTime::now() + lead;
    let release = Instant::now() + lead;
    let started = Instant::now();
    let late = AtomicUsize::new(0);
    let results: Vec<Result<()>> = futures::stream::iter(events.chunks(SQS_BATCH))
        .map(|chunk| {
            let late = &late;
            async move {
                let left = release_wall
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_secs_f64();
                if left < 0.05 {
                    late.fetch_add(chunk.len(), Ordering::Relaxed);
                }
                let delay = i32::try_from(left.ceil() as u64).unwrap_or(i32::MAX);
                send_batch(sqs, queue, chunk, delay).await
            }
        })
        .buffer_unordered(SQS_FILL_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(Queued {
        release,
        release_wall,
        took: started.elapsed(),
        late: late.into_inner(),
    })
}
