//! The HTTPS benchmark: pre-signed JWTs POSTed to the ingest-https function URL, closed or open loop.

use super::*;

/// One event to POST: its pre-signed token with the token's `iat`, and the payload to sign
/// again from if the run fell so far behind that the token is about to expire.
pub(crate) struct Job<'a> {
    pub(crate) token: Bytes,
    pub(crate) issued_at: i64,
    pub(crate) payload: &'a Value,
}

/// What the clients saw.
pub(crate) struct Recorder {
    /// From the scheduled send time (open loop) or the actual send (closed loop) to the 200.
    pub(crate) response: Histogram<u64>,
    /// From the actual send to the answer: the receiver's service time.
    pub(crate) service: Histogram<u64>,
    pub(crate) ok: u64,
    /// Final non-200 answers by status, and transport errors by kind.
    pub(crate) other: BTreeMap<String, u64>,
    /// Failed attempts that were retried, by answer (Canvas retries those).
    pub(crate) retried: BTreeMap<String, u64>,
    /// Per job: when its first POST went out (the event's emission).
    pub(crate) emitted: Vec<Option<DateTime<Utc>>>,
    pub(crate) last_done: Option<Instant>,
}

pub(crate) struct Drive {
    pub(crate) recorder: Recorder,
    pub(crate) started: Instant,
    /// Open loop: the furthest a request left behind its schedule (all clients busy, or
    /// --max-in-flight holding it back).
    pub(crate) max_dispatch_lag: Duration,
    /// Tokens signed again at send time because the run outlived them.
    pub(crate) resigned: u64,
    /// Time the sender spent held back by --max-in-flight.
    pub(crate) gated: Duration,
}

impl Drive {
    pub(crate) fn elapsed(&self) -> Duration {
        self.recorder
            .last_done
            .map_or(Duration::ZERO, |done| done.duration_since(self.started))
    }
}

/// The answer to one POST: status and Retry-After, or the kind of transport error.
pub(crate) type Answer = Result<(u16, Option<Duration>), String>;

pub(crate) async fn post(client: &reqwest::Client, url: &str, token: Bytes) -> Answer {
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .body(token)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // Read the body so the connection is reused and the answer is complete.
    response.bytes().await.map_err(transport_error)?;
    Ok((status, retry_after))
}

/// POSTs until the answer is final: a 5xx or a transport error (e.g. the function timed out)
/// is sent again after its Retry-After (capped), as Canvas retries failed deliveries. Returns
/// the last answer and the answers that were retried.
pub(crate) async fn deliver(
    client: &reqwest::Client,
    url: &str,
    token: Bytes,
) -> (Result<u16, String>, Vec<String>) {
    let mut retried = Vec::new();
    loop {
        let answer = post(client, url, token.clone()).await;
        let (kind, wait) = match &answer {
            Ok((status, retry_after)) if *status >= 500 => (status.to_string(), *retry_after),
            Err(kind) => (kind.clone(), None),
            Ok(_) => return (answer.map(|(status, _)| status), retried),
        };
        if retried.len() >= MAX_RETRIES as usize {
            return (answer.map(|(status, _)| status), retried);
        }
        retried.push(kind);
        let wait = wait.unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(wait.min(MAX_RETRY_WAIT)).await;
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect error".into()
    } else {
        "transport error".into()
    }
}

/// How one job went.
pub(crate) struct Outcome {
    pub(crate) index: usize,
    pub(crate) emitted: DateTime<Utc>,
    pub(crate) status: Result<u16, String>,
    pub(crate) retried: Vec<String>,
    pub(crate) response: Duration,
    pub(crate) service: Duration,
}

pub(crate) fn record(recorder: &Mutex<Recorder>, bar: &ProgressBar, outcome: Outcome) {
    let mut r = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(slot) = r.emitted.get_mut(outcome.index) {
        *slot = Some(outcome.emitted);
    }
    for kind in outcome.retried {
        *r.retried.entry(kind).or_default() += 1;
    }
    match outcome.status {
        Ok(200) => {
            r.ok += 1;
            r.response.saturating_record(micros(outcome.response));
            r.service.saturating_record(micros(outcome.service));
        }
        Ok(status) => *r.other.entry(status.to_string()).or_default() += 1,
        Err(kind) => *r.other.entry(kind).or_default() += 1,
    }
    r.last_done = Some(Instant::now());
    drop(r);
    bar.inc(1);
}

/// End-to-end flow control (--max-in-flight): holds the sender while `window` events are
/// sent but not yet at the subscriber.
pub(crate) struct Gate<'a> {
    pub(crate) subscriber: &'a Subscriber,
    /// Distinct events the subscriber had before the run.
    pub(crate) base: u64,
    pub(crate) window: u64,
}

impl Gate<'_> {
    /// Waits until there is room for one more event after `dispatched`; returns how long.
    pub(crate) async fn room(&self, dispatched: u64) -> Duration {
        let began = Instant::now();
        while dispatched.saturating_sub(self.subscriber.unique_events().saturating_sub(self.base))
            >= self.window
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        began.elapsed()
    }
}

/// The job's token, signed again (with `iat` = now) if it is too old to be accepted by the
/// time it and its retries arrive.
pub(crate) fn fresh_token(emitter: &Emitter, job: &Job, resigned: &AtomicUsize) -> Result<Bytes> {
    if Utc::now().timestamp() - job.issued_at <= RESIGN_AFTER_SECS {
        return Ok(job.token.clone());
    }
    resigned.fetch_add(1, Ordering::Relaxed);
    sign(emitter, job.payload, Utc::now().timestamp())
}

/// Where and how the clients send: the function URL, and the emitter for re-signing.
pub(crate) struct Endpoint<'a> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) url: &'a str,
    pub(crate) emitter: &'a Emitter,
}

/// Sends every job once: `concurrency` clients in a closed loop, or (with `rate`) on a fixed
/// schedule with at most `concurrency` requests in flight; `gate` may hold either back.
pub(crate) async fn drive(
    endpoint: &Endpoint<'_>,
    jobs: &[Job<'_>],
    concurrency: usize,
    rate: Option<f64>,
    gate: Option<&Gate<'_>>,
    bar: &ProgressBar,
) -> Result<Drive> {
    let recorder = Arc::new(Mutex::new(Recorder {
        response: histogram(HIST_MAX_US),
        service: histogram(HIST_MAX_US),
        ok: 0,
        other: BTreeMap::new(),
        retried: BTreeMap::new(),
        emitted: vec![None; jobs.len()],
        last_done: None,
    }));
    let Endpoint {
        client,
        url,
        emitter,
    } = *endpoint;
    let resigned = AtomicUsize::new(0);
    let gated = Mutex::new(Duration::ZERO);
    let started = Instant::now();
    let mut max_dispatch_lag = Duration::ZERO;
    match rate {
        None => {
            let next = AtomicUsize::new(0);
            let clients = (0..concurrency).map(|_| async {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else {
                        break Ok::<(), anyhow::Error>(());
                    };
                    if let Some(gate) = gate {
                        let waited = gate.room(index as u64).await;
                        *gated.lock().unwrap_or_else(PoisonError::into_inner) += waited;
                    }
                    let token = fresh_token(emitter, job, &resigned)?;
                    let emitted = Utc::now();
                    let began = Instant::now();
                    let (status, retried) = deliver(client, url, token).await;
                    let took = began.elapsed();
                    let outcome = Outcome {
                        index,
                        emitted,
                        status,
                        retried,
                        response: took,
                        service: took,
                    };
                    record(&recorder, bar, outcome);
                }
            });
            futures::future::try_join_all(clients).await?;
        }
        Some(rate) => {
            let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
            let schedule = tokio::time::Instant::from_std(started);
            let mut in_flight = tokio::task::JoinSet::new();
            for (index, job) in jobs.iter().enumerate() {
                let due = schedule + Duration::from_secs_f64(index as f64 / rate);
                tokio::time::sleep_until(due).await;
                if let Some(gate) = gate {
                    let waited = gate.room(index as u64).await;
                    *gated.lock().unwrap_or_else(PoisonError::into_inner) += waited;
                }
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .context("the request semaphore closed")?;
                let due = due.into_std();
                max_dispatch_lag = max_dispatch_lag.max(due.elapsed());
                let token = fresh_token(emitter, job, &resigned)?;
                let (client, url) = (client.clone(), url.to_string());
                let (recorder, bar) = (recorder.clone(), bar.clone());
                in_flight.spawn(async move {
                    let emitted = Utc::now();
                    let began = Instant::now();
                    let (status, retried) = deliver(&client, &url, token).await;
                    let service = began.elapsed();
                    drop(slot);
                    let outcome = Outcome {
                        index,
                        emitted,
                        status,
                        retried,
                        response: due.elapsed(),
                        service,
                    };
                    record(&recorder, &bar, outcome);
                });
                // Reap finished requests as we go so the set stays small.
                while in_flight.try_join_next().is_some() {}
            }
            while in_flight.join_next().await.is_some() {}
        }
    }
    let recorder = Arc::try_unwrap(recorder)
        .map_err(|_| anyhow!("a request outlived the run"))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Drive {
        recorder,
        started,
        max_dispatch_lag,
        resigned: resigned.into_inner() as u64,
        gated: gated.into_inner().unwrap_or_else(PoisonError::into_inner),
    })
}

pub(crate) async fn bench_https(
    args: &Args,
    ring: &Arc<KeyRing>,
    stack: &LocalStack,
    subscriber: &Subscriber,
    events: &[Emission],
) -> Result<Run> {
    let url = stack
        .function_url(INGEST_URL_FUNCTION)
        .context("ingest-https has no function URL")?
        .to_string();
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let emitter = Emitter::new(ring.clone(), ISSUER)?;
    let warmup = usize::try_from(args.warmup)?;

    // Pre-signed with the `iat` Canvas would stamp at each planned send (open loop), so a long
    // run does not outlive its tokens; closed loop has no plan, so its tokens say "now".
    let now = Utc::now().timestamp();
    let issued_at: Vec<i64> = (0..events.len())
        .map(|i| match (args.rate, i.checked_sub(warmup)) {
            (Some(rate), Some(timed)) => now + (timed as f64 / rate) as i64,
            _ => now,
        })
        .collect();
    let signing = Instant::now();
    let tokens = sign_all(&emitter, events, &issued_at)?;
    step(&format!(
        "signed {} JWTs in {:.1} s (RS256, not timed)",
        tokens.len(),
        signing.elapsed().as_secs_f64()
    ));
    let jobs: Vec<Job> = tokens
        .iter()
        .zip(&issued_at)
        .zip(events)
        .map(|((token, &issued_at), event)| Job {
            token: token.clone(),
            issued_at,
            payload: &event.payload,
        })
        .collect();
    let (warm, timed) = jobs.split_at(warmup);

    let client = reqwest::Client::builder()
        .timeout(CANVAS_HTTP_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("building the HTTP client")?;
    let endpoint = Endpoint {
        client: &client,
        url: &url,
        emitter: &emitter,
    };

    if !warm.is_empty() {
        step(&format!("warm-up: {} events", warm.len()));
        let warmup = drive(
            &endpoint,
            warm,
            concurrency,
            None,
            None,
            &ProgressBar::hidden(),
        )
        .await?;
        ensure!(
            warmup.recorder.other.is_empty(),
            "warm-up failed, answers other than 200: {:?}",
            warmup.recorder.other
        );
    }
    let baseline = settle_warmup(args, stack, subscriber).await?;

    let gate = args.max_in_flight.map(|window| Gate {
        subscriber,
        base: subscriber.unique_events(),
        window,
    });
    let label = match args.rate {
        Some(rate) => format!(
            "{} events at {rate}/s, {concurrency} clients max",
            timed.len()
        ),
        None => format!(
            "{} events, {concurrency} clients, as fast as possible",
            timed.len()
        ),
    };
    step(&format!("timed run: {label}"));
    let bar = progress(timed.len(), "https");
    let cpu_before = CpuSample::now();
    let run = tokio::time::timeout(
        Duration::from_secs(args.timeout),
        drive(
            &endpoint,
            timed,
            concurrency,
            args.rate,
            gate.as_ref(),
            &bar,
        ),
    )
    .await
    .map_err(|_| {
        anyhow!(
            "the timed run did not finish within --timeout {} s",
            args.timeout
        )
    })??;
    bar.finish_and_clear();

    let elapsed = run.elapsed();
    let r = &run.recorder;
    let accepted = accepted(stack);
    let sent = timed.len() as u64;
    let mut report = Report::new(Mode::Https, sent, args.warmup);
    let mean = |f: fn(&Emission) -> usize| {
        events.iter().map(f).sum::<usize>() as f64 / events.len() as f64
    };
    let token_bytes = tokens.iter().map(Bytes::len).sum::<usize>() as f64 / tokens.len() as f64;
    report.line(
        "payload",
        format!(
            "mean {:.0} B JSON, {:.0} B JWT; {:.0}% Caliper",
            mean(|e| e.payload.to_string().len()),
            token_bytes,
            caliper_share(events)
        ),
    );
    report.line(
        "concurrency",
        format!("{concurrency} clients (HTTP/1.1 keep-alive)"),
    );
    report.line(
        "rate",
        match args.rate {
            None => "max (closed loop)".to_string(),
            Some(rate) => format!(
                "{rate} events/s target (open loop), max dispatch lag {:.1} ms",
                run.max_dispatch_lag.as_secs_f64() * 1e3
            ),
        },
    );
    if let Some(window) = args.max_in_flight {
        report.line(
            "flow control",
            format!(
                "at most {window} events sent and not yet at the subscriber; the sender waited \
                 {:.1} s for room",
                run.gated.as_secs_f64()
            ),
        );
    }
    report.line("pollers", format!("{} per event source", args.pollers));
    report.throughput(accepted, elapsed);
    report.line("cpu", CpuWindow::since(&cpu_before, elapsed).render());
    report.line("latency ms", percentiles(&r.response));
    if args.rate.is_some() {
        report.line(
            "  from",
            "scheduled send → 200 (includes waiting for a free client)",
        );
        report.line("service ms", percentiles(&r.service));
        report.line("  from", "actual send → 200");
    } else {
        report.line("  from", "send → 200, per request");
    }
    let counts = |answers: &BTreeMap<String, u64>| {
        if answers.is_empty() {
            "none".to_string()
        } else {
            answers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    report.line("non-200", format!("{} (final answers)", counts(&r.other)));
    report.line(
        "retried",
        format!(
            "{} (failed attempts sent again, as Canvas does)",
            counts(&r.retried)
        ),
    );
    // A retried delivery whose first attempt was stored counts as a duplicate.
    let retried = args.faults || !r.retried.is_empty();
    report.verify(stack, accepted, sent, retried);
    if run.resigned > 0 {
        report.note(&format!(
            "{} tokens were older than {RESIGN_AFTER_SECS} s at send time (the run fell behind \
             its schedule) and were signed again before sending",
            run.resigned
        ));
    }
    Ok(Run {
        report,
        emitted: r.emitted.clone(),
        emission: "POST sent (first attempt)",
        baseline,
    })
}

pub(crate) fn caliper_share(events: &[Emission]) -> f64 {
    let caliper = events
        .iter()
        .filter(|e| e.format == Format::Caliper)
        .count();
    100.0 * caliper as f64 / events.len().max(1) as f64
}
