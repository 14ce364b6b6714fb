//! The local stack: moto for AWS, every table/queue/bus/rule created from `template.yaml`,
//! and every function running in-process behind Lambda's event-source semantics (SQS
//! pollers with partial batch failures and redrive, function URLs on local ports).

use crate::event_sources::{
    CounterSnapshot, FunctionUrlOptions, FunctionUrlServer, InvokeHandler, Schedule, Scheduler,
    ShutdownToken, SqsFunction, SqsPoller, SqsPollerConfig,
};
use crate::fault_proxy::{FaultPlan, FaultProxy, FaultProxyError};
use crate::functions::{self, FunctionError};
use crate::moto::{MotoError, MotoServer};
use crate::provision::{Deployed, Overrides, ProvisionError, provision};
use crate::repo::repo_root;
use crate::template::{Template, TemplateError};
use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use coursewire_runtime::clock::{Clock, SystemClock};
use coursewire_runtime::telemetry::CollectingSink;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error(transparent)]
    Function(#[from] FunctionError),
    #[error("event source: {0}")]
    EventSource(#[from] crate::event_sources::EventSourceError),
    #[error("repository root: {0}")]
    Repo(String),
    #[error("SQS: {0}")]
    Sqs(String),
    #[error("Canvas simulator: {0}")]
    Canvas(String),
    #[error("secret: {0}")]
    Secret(String),
    #[error("invoke: {0}")]
    Invoke(String),
    #[error(transparent)]
    FaultProxy(#[from] FaultProxyError),
    #[error(transparent)]
    Alarms(#[from] crate::alarms::AlarmError),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Template parameter overrides (Stage, CanvasJwksUrl, CanvasJwtIssuer, ...).
    pub overrides: Overrides,
    /// Concurrent pollers per SQS event source (Lambda scales these; locally a few suffice).
    pub pollers: usize,
    /// Functions (logical ids) whose event sources are not started, like a disabled event
    /// source mapping: their queues fill up for a test to inspect.
    pub paused: Vec<String>,
    /// Route the functions' AWS calls through a fault-injecting proxy with this plan (the
    /// event sources, like the Lambda service, still talk to moto directly). Also the way to
    /// count the functions' AWS requests: a passthrough plan counts without faults.
    pub faults: Option<FaultPlan>,
    /// Secret values (by the secret's logical id, JSON) put in after provisioning, as an
    /// operator does after deploying: e.g. a simulated Canvas's developer key and grant in
    /// `CanvasCredentialsSecret`, a simulated Panopto's API client in
    /// `PanoptoCredentialsSecret`.
    pub secrets: Vec<(String, serde_json::Value)>,
    /// The functions' clock: the system's unless a scenario runs on a simulated one.
    pub clock: Arc<dyn Clock>,
    /// The clock the emitted metrics are stamped with, as EMF's `Timestamp` (the host's
    /// clock under Lambda). An alarm test puts a simulated one here, so that five minutes of
    /// metrics take seconds and the alarms read them period by period as CloudWatch would.
    pub metrics_clock: Arc<dyn Clock>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            overrides: Overrides::default(),
            pollers: 4,
            paused: Vec::new(),
            faults: None,
            secrets: Vec::new(),
            clock: Arc::new(SystemClock),
            metrics_clock: Arc::new(SystemClock),
        }
    }
}

impl StackOptions {
    /// Ingestion alone: the processor does not consume `changes.fifo`, so a test can read
    /// what ingestion put there.
    pub fn ingest_only() -> Self {
        Self::default().pause("ProcessorFunction")
    }

    /// Puts `value` into the secret `logical_id` after provisioning (see [`Self::secrets`]).
    pub fn secret(mut self, logical_id: &str, value: serde_json::Value) -> Self {
        self.secrets.push((logical_id.to_string(), value));
        self
    }

    /// Stamps the emitted metrics with `clock` (see [`Self::metrics_clock`]).
    pub fn metrics_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.metrics_clock = Arc::new(clock);
        self
    }

    /// Does not start the event sources of `logical_id` (e.g. `ProcessorFunction`).
    pub fn pause(mut self, logical_id: &str) -> Self {
        self.paused.push(logical_id.to_string());
        self
    }
}

/// The template's Canvas credentials secret.
pub const CANVAS_SECRET: &str = "CanvasCredentialsSecret";

/// Queue depth as SQS reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub visible: u64,
    pub in_flight: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// The simulated Canvas the local stack trusts: its rotating signing keys and the JWKS
/// endpoint that publishes them.
pub struct SimulatedCanvas {
    pub ring: Arc<coursewire_simulators::canvas_live_events::KeyRing>,
    pub jwks: coursewire_simulators::canvas_live_events::JwksServer,
    pub issuer: String,
}

impl SimulatedCanvas {
    pub async fn start(issuer: &str) -> Result<Self, StackError> {
        let ring = Arc::new(
            coursewire_simulators::canvas_live_events::KeyRing::new()
                .map_err(|e| StackError::Canvas(e.to_string()))?,
        );
        let jwks = coursewire_simulators::canvas_live_events::JwksServer::start(ring.clone())
            .await
            .map_err(|e| StackError::Canvas(e.to_string()))?;
        Ok(Self {
            ring,
            jwks,
            issuer: issuer.to_string(),
        })
    }

    /// Template parameters that make the stack verify this Canvas's signatures.
    pub fn overrides(&self, stage: &str) -> Overrides {
        Overrides::default()
            .parameter("Stage", stage)
            .parameter("CanvasJwksUrl", self.jwks.url())
            .parameter("CanvasJwtIssuer", self.issuer.as_str())
    }
}

pub struct LocalStack {
    moto: MotoServer,
    pub deployed: Deployed,
    pub aws: SdkConfig,
    /// Every metric the in-process functions emitted.
    pub metrics: Arc<CollectingSink>,
    urls: BTreeMap<String, FunctionUrlServer>,
    invokers: BTreeMap<String, Arc<dyn InvokeHandler>>,
    pollers: BTreeMap<String, SqsPoller>,
    schedulers: BTreeMap<String, Scheduler>,
    shutdown: ShutdownToken,
    fault_proxy: Option<FaultProxy>,
    /// The template's alarms, evaluated when asked ([`LocalStack::evaluate_alarms`]).
    alarms: tokio::sync::Mutex<crate::alarms::Alarms>,
    metrics_clock: Arc<dyn Clock>,
}

impl LocalStack {
    /// Starts moto (installing it on first use), provisions from `template.yaml`, and starts
    /// every function's event sources.
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let root = repo_root().map_err(|e| StackError::Repo(e.to_string()))?;
        let moto = MotoServer::start(&root).await?;
        let aws = moto.sdk_config();
        let template = Template::load_repo()?;
        let deployed = provision(&template, &aws, &options.overrides).await?;
        for (logical_id, value) in &options.secrets {
            put_secret(&aws, &deployed, logical_id, value).await?;
        }
        let metrics = Arc::new(CollectingSink::with_clock(options.metrics_clock.clone()));
        let shutdown = ShutdownToken::new();
        let sqs = aws_sdk_sqs::Client::new(&aws);

        let fault_proxy = match options.faults.clone() {
            Some(plan) => Some(FaultProxy::start(moto.endpoint(), plan).await?),
            None => None,
        };
        let function_aws = match &fault_proxy {
            Some(proxy) => crate::moto::sdk_config_for(proxy.endpoint()),
            None => aws.clone(),
        };

        let mut urls = BTreeMap::new();
        let mut invokers = BTreeMap::new();
        let mut pollers = BTreeMap::new();
        let mut schedulers = BTreeMap::new();
        for spec in &deployed.functions {
            let function =
                functions::build(spec, &function_aws, metrics.clone(), options.clock.clone())
                    .await?;
            if let Some(handler) = &function.invoke {
                invokers.insert(spec.logical_id.clone(), handler.clone());
            }
            if options.paused.contains(&spec.logical_id) {
                continue;
            }
            if let (Some(handler), true) = (&function.http, spec.has_function_url()) {
                let options = FunctionUrlOptions {
                    port: 0,
                    timeout: Duration::from_secs(spec.timeout_seconds.into()),
                    shutdown: Some(shutdown.clone()),
                };
                let server = FunctionUrlServer::start_with(handler.clone(), options).await?;
                tracing::info!(function = %spec.logical_id, url = server.url(), "function URL");
                urls.insert(spec.logical_id.clone(), server);
            }
            for source in spec.sqs_events.iter().filter(|s| s.enabled) {
                let Some(handler) = &function.queue else {
                    continue;
                };
                let handler = Arc::new(SqsFunction(handler.clone()));
                let mut config = SqsPollerConfig::for_event_source(&deployed, spec, source)?;
                config.pollers = options.pollers;
                let poller = SqsPoller::start(sqs.clone(), config, handler, &shutdown).await?;
                pollers.insert(format!("{}/{}", spec.logical_id, source.name), poller);
            }
            for event in spec.schedules.iter().filter(|s| s.enabled) {
                let Some(handler) = function.schedule.clone() else {
                    continue;
                };
                let schedule = Schedule::parse(&event.expression)?;
                let input: Option<serde_json::Value> = event
                    .input
                    .as_deref()
                    .and_then(|text| serde_json::from_str(text).ok());
                let name = format!("{}/{}", spec.logical_id, event.name);
                let job = move || {
                    let (handler, input) = (handler.clone(), input.clone());
                    async move { handler.handle(input).await }
                };
                schedulers.insert(
                    name.clone(),
                    Scheduler::start(name, schedule, &shutdown, job),
                );
            }
        }
        let alarms = crate::alarms::Alarms::load(&deployed, &aws, metrics.clone())?;
        Ok(Self {
            moto,
            deployed,
            aws,
            metrics,
            urls,
            invokers,
            pollers,
            schedulers,
            shutdown,
            fault_proxy,
            alarms: tokio::sync::Mutex::new(alarms),
            metrics_clock: options.metrics_clock,
        })
    }

    /// The time on the metrics' clock ([`StackOptions::metrics_clock`]): when to evaluate
    /// the alarms for "now".
    pub fn metrics_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.metrics_clock.now()
    }

    /// Evaluates every alarm of the template as of `at` (CloudWatch does this each minute;
    /// moto does not), publishing each state change to the alarm's topics.
    pub async fn evaluate_alarms(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::alarms::Transition>, StackError> {
        let errors = self.function_errors();
        Ok(self.alarms.lock().await.evaluate(at, &errors).await?)
    }

    /// Lambda's `Errors` so far per function name: invocations that returned an error,
    /// panicked or timed out, from every event source of the function.
    fn function_errors(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (source, counters) in self.counters() {
            let logical_id = source.split('/').next().unwrap_or_default();
            if let Some(name) = self.deployed.ref_value(logical_id) {
                *out.entry(name.to_string()).or_default() += counters.failed_invocations;
            }
        }
        out
    }

    /// Puts a new value into the secret `logical_id`, as an operator does (e.g. a new grant
    /// after re-authorising coursewire in Canvas).
    pub async fn put_secret(
        &self,
        logical_id: &str,
        value: &serde_json::Value,
    ) -> Result<(), StackError> {
        put_secret(&self.aws, &self.deployed, logical_id, value).await
    }

    /// The fault proxy in front of moto, when the stack was started with a fault plan.
    pub fn fault_proxy(&self) -> Option<&FaultProxy> {
        self.fault_proxy.as_ref()
    }

    /// Cancelled when the stack stops; helpers running beside it take a child.
    pub fn shutdown_token(&self) -> &ShutdownToken {
        &self.shutdown
    }

    /// Invokes a function directly with a JSON event (what `aws lambda invoke` does).
    pub async fn invoke(
        &self,
        logical_id: &str,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, StackError> {
        let handler = self.invokers.get(logical_id).ok_or_else(|| {
            StackError::Invoke(format!("{logical_id} cannot be invoked directly"))
        })?;
        handler
            .invoke(event)
            .await
            .map_err(|e| StackError::Invoke(format!("{logical_id}: {e}")))
    }

    /// The local URL of a function's Function URL, by logical id.
    pub fn function_url(&self, logical_id: &str) -> Option<&str> {
        self.urls.get(logical_id).map(FunctionUrlServer::url)
    }

    pub fn moto_endpoint(&self) -> &str {
        self.moto.endpoint()
    }

    /// Queue URL by logical id (e.g. `CanvasLiveEventsQueue`).
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.deployed.queue_url(logical_id)
    }

    pub fn table_name(&self, logical_id: &str) -> Option<&str> {
        self.deployed.table_name(logical_id)
    }

    pub async fn queue_depth(&self, logical_id: &str) -> Result<QueueDepth, StackError> {
        let url = self
            .queue_url(logical_id)
            .ok_or_else(|| StackError::Sqs(format!("no queue {logical_id}")))?;
        let out = aws_sdk_sqs::Client::new(&self.aws)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| StackError::Sqs(e.to_string()))?;
        let get = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    /// Event-source counters per poller (`Function/Event`) and per function URL.
    pub fn counters(&self) -> BTreeMap<String, CounterSnapshot> {
        let mut out = BTreeMap::new();
        for (name, poller) in &self.pollers {
            out.insert(name.clone(), poller.counters().snapshot());
        }
        for (name, url) in &self.urls {
            out.insert(format!("{name}/Url"), url.counters().snapshot());
        }
        for (name, scheduler) in &self.schedulers {
            out.insert(name.clone(), scheduler.counters().snapshot());
        }
        out
    }

    /// Waits until a queue is empty (nothing visible or in flight), up to `timeout`.
    pub async fn drain(&self, logical_id: &str, timeout: Duration) -> Result<bool, StackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.queue_depth(logical_id).await?.total() == 0 {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the event sources (finishing batches in hand), then moto.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for (_, poller) in self.pollers {
            poller.stop().await;
        }
        for (_, url) in self.urls {
            url.stop().await;
        }
        for (_, scheduler) in self.schedulers {
            scheduler.stop().await;
        }
        if let Some(proxy) = self.fault_proxy {
            proxy.stop().await;
        }
        self.moto.stop();
    }
}

async fn put_secret(
    aws: &SdkConfig,
    deployed: &Deployed,
    logical_id: &str,
    value: &serde_json::Value,
) -> Result<(), StackError> {
    let secret = deployed
        .ref_value(logical_id)
        .ok_or_else(|| StackError::Secret(format!("no {logical_id} in the template")))?;
    aws_sdk_secretsmanager::Client::new(aws)
        .put_secret_value()
        .secret_id(secret)
        .secret_string(value.to_string())
        .send()
        .await
        .map_err(|e| StackError::Secret(format!("storing {logical_id}: {e}")))?;
    Ok(())
}
