//! A fault-injecting HTTP proxy in front of moto.
//!
//! End-to-end fault tests point the code under test at [`FaultProxy::endpoint`]
//! while the harness keeps talking to moto directly. The proxy forwards every
//! request unchanged unless a [`FaultRule`] of the current [`FaultPlan`] fires
//! for the request's operation (the `X-Amz-Target` suffix, e.g. `PutItem`);
//! then it rejects the call, loses the response after the side effect, fails
//! some `PutEvents` entries, or adds latency.
//!
//! Rule decisions come from one RNG seeded by [`FaultPlan::seed`], drawn in
//! request arrival order, so a sequential test sees the same faults on every
//! run.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Operation key (in [`FaultStats::operations`]) of requests without
/// `X-Amz-Target`, e.g. SQS query protocol or moto's own API.
pub const NO_TARGET: &str = "";
/// [`FaultRule::operation`] that matches every request.
pub const ANY_OPERATION: &str = "*";

const TARGET_HEADER: &str = "x-amz-target";
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
const REQUEST_ID_HEADER: &str = "x-amzn-requestid";
const INJECTED_MESSAGE: &str = "injected by the coursewire fault proxy";
/// How long [`FaultProxy::stop`] lets in-flight requests finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FaultProxyError {
    #[error("invalid upstream endpoint {endpoint:?}: expected http(s)://host[:port]")]
    Upstream { endpoint: String },
    #[error("cannot bind the fault proxy on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot build the fault proxy's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What to inject. See [`FaultRule`] for when.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Not forwarded; answered with an AWS error of this HTTP status and
    /// error code (e.g. 400 `ProvisionedThroughputExceededException`, 400
    /// `ThrottlingException`, 500 `InternalServerError`, 503
    /// `ServiceUnavailable`).
    Reject { status: u16, code: String },
    /// Forwarded (the side effect happens in moto), but the client gets a 500
    /// `InternalFailure` instead of the real answer: a crash or lost response
    /// right after the step.
    LoseResponse,
    /// `PutEvents` only: `fraction` of the entries (at least one) are not
    /// forwarded and come back as failed results with `ErrorCode` `code`
    /// (e.g. `InternalFailure`, `ThrottlingException`), exactly as
    /// EventBridge reports a partial failure.
    PartialPutEvents { fraction: f64, code: String },
    /// Latency before forwarding. Unlike the other faults it does not end
    /// rule evaluation, so it combines with a later rule's fault.
    Delay(Duration),
}

/// One fault with its trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// `X-Amz-Target` suffix after the `.` (e.g. `TransactWriteItems`,
    /// `PutEvents`), the full target (`DynamoDB_20120810.PutItem`), or
    /// [`ANY_OPERATION`]. Requests without a target match only `*`.
    pub operation: String,
    pub fault: Fault,
    /// Chance (0..=1) that a matching request gets the fault.
    pub probability: f64,
    /// Stop injecting after this many faults (`None`: no limit).
    pub max_faults: Option<u64>,
}

impl FaultRule {
    /// A rule that always fires for `operation`, without a limit.
    pub fn always(operation: impl Into<String>, fault: Fault) -> Self {
        Self {
            operation: operation.into(),
            fault,
            probability: 1.0,
            max_faults: None,
        }
    }

    /// Fires with `probability` instead of always.
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    /// Stops after `max_faults` injections.
    pub fn at_most(mut self, max_faults: u64) -> Self {
        self.max_faults = Some(max_faults);
        self
    }
}

/// The rules in force. For each request the rules are tried in order: every
/// matching rule with budget left draws from the seeded RNG; firing `Delay`s
/// add up and the first other fault that fires ends the evaluation.
/// `PartialPutEvents` rules only match `PutEvents` requests with entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub rules: Vec<FaultRule>,
    pub seed: u64,
}

impl FaultPlan {
    /// Forwards everything untouched.
    pub fn passthrough() -> Self {
        Self::default()
    }

    pub fn new(seed: u64, rules: impl IntoIterator<Item = FaultRule>) -> Self {
        Self {
            rules: rules.into_iter().collect(),
            seed,
        }
    }

    /// The fault mix the pipeline must survive (the bus end-to-end test and the soak run):
    /// throttling and 5xx from DynamoDB, EventBridge partial failures, and lost responses
    /// after the inbox put, the enqueue, the commit, the PutEvents and the published mark —
    /// a crash between each pair of steps.
    pub fn pipeline_chaos(seed: u64) -> Self {
        let reject = |status: u16, code: &str| Fault::Reject {
            status,
            code: code.into(),
        };
        let throttled = || reject(400, "ProvisionedThroughputExceededException");
        let random = [
            FaultRule::always("PutItem", throttled()).with_probability(0.05),
            FaultRule::always("PutItem", Fault::LoseResponse).with_probability(0.03),
            FaultRule::always("SendMessageBatch", Fault::LoseResponse).with_probability(0.03),
            FaultRule::always("GetItem", reject(500, "InternalServerError")).with_probability(0.05),
            FaultRule::always("TransactWriteItems", throttled()).with_probability(0.1),
            FaultRule::always("TransactWriteItems", Fault::LoseResponse).with_probability(0.05),
            FaultRule::always(
                "PutEvents",
                Fault::PartialPutEvents {
                    fraction: 0.3,
                    code: "InternalFailure".into(),
                },
            )
            .with_probability(0.2),
            FaultRule::always("PutEvents", Fault::LoseResponse).with_probability(0.05),
            FaultRule::always("UpdateItem", reject(503, "ServiceUnavailable"))
                .with_probability(0.05),
            FaultRule::always("UpdateItem", Fault::LoseResponse).with_probability(0.05),
        ];
        // Each kind fires once for certain, on the first requests it can match, so a run
        // never misses a kind by chance (how many requests a run makes varies with timing).
        let certain = random
            .iter()
            .map(|rule| rule.clone().with_probability(1.0).at_most(1));
        Self::new(
            seed,
            certain.chain(random.iter().cloned()).collect::<Vec<_>>(),
        )
    }

    /// The operations [`pipeline_chaos`](Self::pipeline_chaos) injects into.
    pub const PIPELINE_CHAOS_OPERATIONS: [&'static str; 6] = [
        "PutItem",
        "SendMessageBatch",
        "GetItem",
        "TransactWriteItems",
        "PutEvents",
        "UpdateItem",
    ];
}

/// Injected faults by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub rejected: u64,
    pub lost_responses: u64,
    /// `PutEvents` requests answered with a partial failure.
    pub partial_put_events: u64,
    /// Entries failed across those requests.
    pub failed_entries: u64,
    pub delayed: u64,
}

impl FaultCounts {
    /// Injections of any kind (a failed entry is part of its request's
    /// partial failure, so it is not counted again).
    pub fn total(&self) -> u64 {
        self.rejected + self.lost_responses + self.partial_put_events + self.delayed
    }

    fn record(&mut self, fault: &Fault, failed_entries: usize) {
        match fault {
            Fault::Reject { .. } => self.rejected += 1,
            Fault::LoseResponse => self.lost_responses += 1,
            Fault::PartialPutEvents { .. } => {
                self.partial_put_events += 1;
                self.failed_entries += failed_entries as u64;
            }
            Fault::Delay(_) => self.delayed += 1,
        }
    }
}

/// Requests seen and faults injected for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationStats {
    pub requests: u64,
    pub faults: FaultCounts,
}

/// Activity of one rule of the current plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleStats {
    pub operation: String,
    /// Requests the rule was tried on (matching operation, budget left, and
    /// not decided by an earlier rule).
    pub matched: u64,
    pub injected: u64,
}

/// Snapshot of what the proxy saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// By operation (`X-Amz-Target` suffix, or [`NO_TARGET`]); counts since
    /// the proxy started, across plan changes.
    pub operations: BTreeMap<String, OperationStats>,
    /// Parallel to the current plan's rules; reset by [`FaultProxy::set_plan`].
    pub rules: Vec<RuleStats>,
}

impl FaultStats {
    /// Requests seen for `operation`.
    pub fn requests(&self, operation: &str) -> u64 {
        self.operations.get(operation).map_or(0, |s| s.requests)
    }

    /// Faults injected into `operation`.
    pub fn faults(&self, operation: &str) -> FaultCounts {
        self.operations
            .get(operation)
            .map(|s| s.faults)
            .unwrap_or_default()
    }

    /// Faults injected into all operations.
    pub fn total_faults(&self) -> u64 {
        self.operations.values().map(|s| s.faults.total()).sum()
    }
}

/// A running proxy; shut down on [`FaultProxy::stop`] or drop.
#[derive(Debug)]
pub struct FaultProxy {
    endpoint: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (a moto
    /// endpoint such as `http://127.0.0.1:5000`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> Result<Self, FaultProxyError> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let valid = reqwest::Url::parse(&upstream).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.has_host() && u.path() == "/"
        });
        if !valid {
            return Err(FaultProxyError::Upstream { endpoint: upstream });
        }
        let client = reqwest::Client::builder()
            // Never route loopback traffic through a proxy from the environment.
            .no_proxy()
            // The SDK must see moto's redirects (if any) itself.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(FaultProxyError::Client)?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .map_err(FaultProxyError::Bind)?;
        let port = listener.local_addr().map_err(FaultProxyError::Bind)?.port();
        let shared = Arc::new(Shared {
            upstream,
            client,
            state: Mutex::new(PlanState::new(plan)),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                // A dropped sender means the proxy is gone: stop as well.
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "fault proxy stopped with an error");
            }
        });
        let endpoint = format!("http://127.0.0.1:{port}");
        tracing::debug!(%endpoint, upstream = %shared.upstream, "fault proxy listening");
        Ok(Self {
            endpoint,
            shared,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Replaces the rules, reseeds the RNG from `plan.seed` and resets the
    /// per-rule stats and budgets; per-operation stats keep counting.
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut state = self.shared.lock();
        let operations = std::mem::take(&mut state.operations);
        *state = PlanState::new(plan);
        state.operations = operations;
    }

    /// Requests seen and faults injected so far.
    pub fn stats(&self) -> FaultStats {
        let state = self.shared.lock();
        FaultStats {
            operations: state.operations.clone(),
            rules: state.rules.clone(),
        }
    }

    /// Stops accepting connections and waits (briefly) for in-flight
    /// requests to finish.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            // Clients holding connections open must not block a test's teardown.
            task.abort();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    state: Mutex<PlanState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PlanState> {
        // The state stays consistent even if a holder panicked mid-update
        // (counters only), so keep serving instead of cascading panics.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct PlanState {
    plan: FaultPlan,
    rng: StdRng,
    rules: Vec<RuleStats>,
    operations: BTreeMap<String, OperationStats>,
}

impl PlanState {
    fn new(plan: FaultPlan) -> Self {
        let rules = plan
            .rules
            .iter()
            .map(|r| RuleStats {
                operation: r.operation.clone(),
                ..RuleStats::default()
            })
            .collect();
        Self {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            rules,
            operations: BTreeMap::new(),
        }
    }

    /// Picks the faults for one request and records them. `entries` is the
    /// number of `PutEvents` entries (None for other requests).
    fn decide(&mut self, target: Option<&Target>, entries: Option<usize>) -> Decision {
        let op = target.map_or(NO_TARGET, |t| t.operation.as_str());
        let mut decision = Decision::default();
        let Self {
            plan,
            rng,
            rules,
            operations,
        } = self;
        let op_stats = operations.entry(op.to_owned()).or_default();
        op_stats.requests += 1;
        for (rule, stats) in plan.rules.iter().zip(rules.iter_mut()) {
            let matches = rule.operation == ANY_OPERATION
                || target
                    .is_some_and(|t| rule.operation == t.operation || rule.operation == t.full);
            let exhausted = rule.max_faults.is_some_and(|max| stats.injected >= max);
            let applicable = match rule.fault {
                Fault::PartialPutEvents { .. } => entries.is_some_and(|n| n > 0),
                _ => true,
            };
            if !matches || exhausted || !applicable {
                continue;
            }
            stats.matched += 1;
            if rng.random::<f64>() >= rule.probability {
                continue;
            }
            stats.injected += 1;
            let mut failed_entries = 0;
            let terminal = match &rule.fault {
                Fault::Delay(d) => {
                    decision.delay += *d;
                    None
                }
                Fault::Reject { status, code } => Some(Terminal::Reject {
                    status: *status,
                    code: code.clone(),
                }),
                Fault::LoseResponse => Some(Terminal::LoseResponse),
                Fault::PartialPutEvents { fraction, code } => {
                    let n = entries.unwrap_or_default();
                    let count = failing_count(*fraction, n);
                    let mut failed = rand::seq::index::sample(rng, n, count).into_vec();
                    failed.sort_unstable();
                    failed_entries = failed.len();
                    Some(Terminal::PartialPutEvents {
                        failed,
                        code: code.clone(),
                    })
                }
            };
            op_stats.faults.record(&rule.fault, failed_entries);
            if terminal.is_some() {
                decision.terminal = terminal;
                break;
            }
        }
        decision
    }
}

/// At least one entry fails, and never more than there are.
fn failing_count(fraction: f64, entries: usize) -> usize {
    let wanted = (fraction.clamp(0.0, 1.0) * entries as f64).round();
    // NaN fractions land here as 0 and are bumped to the minimum of one.
    (wanted as usize).clamp(1, entries.max(1))
}

#[derive(Debug, Default)]
struct Decision {
    delay: Duration,
    terminal: Option<Terminal>,
}

#[derive(Debug)]
enum Terminal {
    Reject { status: u16, code: String },
    LoseResponse,
    PartialPutEvents { failed: Vec<usize>, code: String },
}

/// `X-Amz-Target`, e.g. `DynamoDB_20120810.PutItem`.
#[derive(Debug)]
struct Target {
    full: String,
    operation: String,
}

impl Target {
    fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let full = headers.get(TARGET_HEADER)?.to_str().ok()?.trim().to_owned();
        let operation = full.rsplit_once('.').map_or(full.as_str(), |(_, op)| op);
        Some(Self {
            operation: operation.to_owned(),
            full,
        })
    }

    fn is_dynamodb(&self) -> bool {
        self.full.starts_with("DynamoDB")
    }
}

/// How the client expects errors to be encoded.
#[derive(Debug)]
enum ErrorProtocol {
    /// AWS JSON 1.0/1.1; DynamoDB wants a namespaced `__type`.
    Json {
        content_type: HeaderValue,
        dynamodb: bool,
    },
    /// Query protocol (no `X-Amz-Target`): XML `ErrorResponse`.
    Query,
}

impl ErrorProtocol {
    fn of(target: Option<&Target>, headers: &HeaderMap) -> Self {
        let Some(target) = target else {
            return Self::Query;
        };
        let dynamodb = target.is_dynamodb();
        // Mirror the request so the SDK's protocol (1.0 vs 1.1) parses it.
        let content_type = headers.get(CONTENT_TYPE).cloned().unwrap_or_else(|| {
            HeaderValue::from_static(if dynamodb {
                "application/x-amz-json-1.0"
            } else {
                "application/x-amz-json-1.1"
            })
        });
        Self::Json {
            content_type,
            dynamodb,
        }
    }

    fn error(&self, status: u16, code: &str) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = uuid::Uuid::new_v4().to_string();
        let (content_type, body) = match self {
            Self::Json {
                content_type,
                dynamodb,
            } => {
                let kind = if *dynamodb {
                    format!("com.amazonaws.dynamodb.v20120810#{code}")
                } else {
                    code.to_owned()
                };
                let body = json!({ "__type": kind, "message": INJECTED_MESSAGE });
                (content_type.clone(), body.to_string())
            }
            Self::Query => {
                let kind = if status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                let body = format!(
                    "<ErrorResponse><Error><Type>{kind}</Type><Code>{}</Code><Message>{INJECTED_MESSAGE}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
                    xml_escape(code)
                );
                (HeaderValue::from_static("text/xml"), body)
            }
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, content_type);
        if let Ok(code) = HeaderValue::from_str(code) {
            headers.insert(ERROR_TYPE_HEADER, code);
        }
        if let Ok(id) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        response
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = Target::from_headers(&parts.headers);
    let protocol = ErrorProtocol::of(target.as_ref(), &parts.headers);
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(error = %e, "fault proxy could not read a request body");
            return protocol.error(400, "SerializationException");
        }
    };

    // Only parse bodies a PartialPutEvents rule could need.
    let put_events = target
        .as_ref()
        .filter(|t| t.operation == "PutEvents")
        .and_then(|_| serde_json::from_slice::<Value>(&body).ok())
        .filter(|v| v.get("Entries").is_some_and(Value::is_array));
    let entries = put_events
        .as_ref()
        .and_then(|v| v.get("Entries"))
        .and_then(Value::as_array)
        .map(Vec::len);
    let decision = shared.lock().decide(target.as_ref(), entries);

    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let forward = |body: Bytes| {
        shared.forward(
            &parts.method,
            parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            &parts.headers,
            body,
        )
    };
    // Upstream unreachable: the client sees a gateway error in its protocol.
    let bad_gateway = || protocol.error(502, "InternalFailure");
    match decision.terminal {
        None => match forward(body).await {
            Some(upstream) => upstream.into_response(),
            None => bad_gateway(),
        },
        Some(Terminal::Reject { status, code }) => protocol.error(status, &code),
        Some(Terminal::LoseResponse) => {
            // Let moto finish the step; what it answers is lost either way.
            if forward(body).await.is_none() {
                return bad_gateway();
            }
            protocol.error(500, "InternalFailure")
        }
        Some(Terminal::PartialPutEvents { failed, code }) => {
            let Some(request) = put_events else {
                return protocol.error(500, "InternalFailure");
            };
            let (kept_request, kept) = drop_entries(&request, &failed);
            if kept.is_empty() {
                let body = splice_put_events(None, failed.len(), &failed, &code);
                return json_response(StatusCode::OK, &protocol, None, &body);
            }
            let Some(upstream) = forward(Bytes::from(kept_request.to_string())).await else {
                return bad_gateway();
            };
            if !upstream.status.is_success() {
                return upstream.into_response();
            }
            match serde_json::from_slice::<Value>(&upstream.body) {
                Ok(answer) => {
                    let body =
                        splice_put_events(Some(&answer), failed.len() + kept.len(), &failed, &code);
                    json_response(upstream.status, &protocol, Some(&upstream.headers), &body)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "moto's PutEvents answer is not JSON; passing it through");
                    upstream.into_response()
                }
            }
        }
    }
}

/// An upstream answer, fully read.
struct Upstream {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Upstream {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = forwardable(&self.headers);
        response
    }
}

impl Shared {
    async fn forward(
        &self,
        method: &http::Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Option<Upstream> {
        let url = format!("{}{path_and_query}", self.upstream);
        let mut headers = forwardable(headers);
        // The body is already buffered; a 100-continue handshake would only add a round trip.
        headers.remove(http::header::EXPECT);
        let sent = self
            .client
            .request(method.clone(), &url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let received = match sent {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                response.bytes().await.map(|body| Upstream {
                    status,
                    headers,
                    body,
                })
            }
            Err(e) => Err(e),
        };
        received
            .inspect_err(|error| tracing::warn!(%url, %error, "fault proxy cannot reach upstream"))
            .ok()
    }
}

/// Copies end-to-end headers: hop-by-hop ones (RFC 9110 §7.6.1, plus any
/// named in `Connection`) belong to one connection, `Host` is set by the
/// client for upstream, and `Content-Length` is recomputed for the body.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    const HOP_BY_HOP: [&str; 8] = [
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let skip = name == CONNECTION
            || name == HOST
            || name == CONTENT_LENGTH
            || HOP_BY_HOP.contains(&name.as_str())
            || listed.contains(name);
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// A rewritten JSON answer, keeping upstream's headers apart from ones that
/// describe the old body.
fn json_response(
    status: StatusCode,
    protocol: &ErrorProtocol,
    upstream: Option<&HeaderMap>,
    body: &Value,
) -> Response {
    let mut headers = upstream.map(forwardable).unwrap_or_default();
    // A checksum of the original body would not match the spliced one.
    headers.remove("x-amz-crc32");
    if let ErrorProtocol::Json { content_type, .. } = protocol
        && !headers.contains_key(CONTENT_TYPE)
    {
        headers.insert(CONTENT_TYPE, content_type.clone());
    }
    if !headers.contains_key(REQUEST_ID_HEADER)
        && let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
    {
        headers.insert(REQUEST_ID_HEADER, id);
    }
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The `PutEvents` request without the `failed` (sorted) entries, and the
/// original indexes of the entries it keeps. Other fields (e.g. `EndpointId`)
/// stay as they are.
fn drop_entries(request: &Value, failed: &[usize]) -> (Value, Vec<usize>) {
    let entries = request
        .get("Entries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let kept: Vec<usize> = (0..entries.len())
        .filter(|i| failed.binary_search(i).is_err())
        .collect();
    let mut rewritten = request.clone();
    if let Some(slot) = rewritten.get_mut("Entries") {
        *slot = Value::Array(kept.iter().map(|&i| entries[i].clone()).collect());
    }
    (rewritten, kept)
}

/// The full `PutEvents` answer: upstream's results (for the kept entries, in
/// order) at the kept indexes and failures at the `failed` (sorted) ones,
/// `entries` results in all.
/// `FailedEntryCount` includes failures upstream reported itself.
fn splice_put_events(
    upstream: Option<&Value>,
    entries: usize,
    failed: &[usize],
    code: &str,
) -> Value {
    let upstream_entries = upstream
        .and_then(|u| u.get("Entries"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let upstream_failed = upstream
        .and_then(|u| u.get("FailedEntryCount"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut kept = upstream_entries.iter();
    let entries: Vec<Value> = (0..entries)
        .map(|i| {
            if failed.binary_search(&i).is_ok() {
                json!({ "ErrorCode": code, "ErrorMessage": INJECTED_MESSAGE })
            } else {
                kept.next().cloned().unwrap_or_else(|| json!({}))
            }
        })
        .collect();
    json!({
        "FailedEntryCount": upstream_failed + failed.len() as u64,
        "Entries": entries,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Instant;

    use aws_config::SdkConfig;
    use aws_config::retry::RetryConfig;
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
        ScalarAttributeType, TransactWriteItem,
    };
    use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target as EbTarget};

    use super::*;
    use crate::moto::MotoServer;
    use crate::repo::repo_root;

    const TABLE: &str = "faults";

    async fn moto() -> MotoServer {
        MotoServer::start(&repo_root().unwrap()).await.unwrap()
    }

    fn ddb(sdk: &SdkConfig, endpoint: &str, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(retry)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    fn events(sdk: &SdkConfig, endpoint: &str) -> aws_sdk_eventbridge::Client {
        let config = aws_sdk_eventbridge::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_eventbridge::Client::from_conf(config)
    }

    /// Standard retries without the multi-second throttling backoff.
    fn quick_retries(attempts: u32) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(attempts)
            .with_initial_backoff(Duration::from_millis(5))
            .with_max_backoff(Duration::from_millis(20))
    }

    async fn create_table(client: &aws_sdk_dynamodb::Client) {
        client
            .create_table()
            .table_name(TABLE)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    }

    async fn item_exists(client: &aws_sdk_dynamodb::Client, pk: &str) -> bool {
        client
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(pk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .is_some()
    }

    /// SQS `ListQueues` in the query protocol; moto routes it by the
    /// credential scope, not by the (unchecked) signature.
    async fn query_list_queues(endpoint: &str) -> reqwest::Response {
        let scope = "Credential=testing/20250101/us-east-1/sqs/aws4_request";
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{endpoint}/"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                http::header::AUTHORIZATION,
                format!("AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"),
            )
            .body("Action=ListQueues&Version=2012-11-05")
            .send()
            .await
            .unwrap()
    }

    fn throttle() -> Fault {
        Fault::Reject {
            status: 400,
            code: "ProvisionedThroughputExceededException".into(),
        }
    }

    #[tokio::test]
    async fn passes_requests_through_unchanged() {
        let moto = moto().await;
        let sdk = moto.sdk_config();
        let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough())
            .await
            .unwrap();
        let via_proxy = ddb(&sdk, proxy.endpoint(), RetryConfig::disabled());
        let direct = ddb(&sdk, moto.endpoint(), RetryConfig::disabled());
        create_table(&via_proxy).await;

        // The stack runs many SDK calls at once.
        let puts = (0..12).map(|i| {
            via_proxy
                .put_item()
                .table_name(TABLE)
                .item("pk", AttributeValue::S(format!("k{i}")))
                .item("n", AttributeValue::N(i.to_string()))
                .send()
        });
        for put in futures::future::join_all(puts).await {
            put.unwrap();
        }
        let got = via_proxy
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S("k7".into()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.item().and_then(|i| i.get("n")),
            Some(&AttributeValue::N("7".into()))
        );
        let scanned = direct.scan().table_name(TABLE).send().await.unwrap();
        assert_eq!(scanned.count(), 12);

        // Query protocol requests have no X-Amz-Target.
        let listed = query_list_queues(proxy.endpoint()).await;
        assert_eq!(listed.status(), 200);
        let listed = listed.text().await.unwrap();
        assert!(listed.contains("ListQueuesResponse"), "{listed}");

        let stats = proxy.stats();
        assert_eq!(stats.requests("CreateTable"), 1);
        assert_eq!(stats.requests("PutItem"), 12);
        assert_eq!(stats.requests("GetItem"), 1);
        assert_eq!(stats.requests(NO_TARGET), 1);
        assert_eq!(stats.total_faults(), 0);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn rejects_surface_as_aws_errors_or_are_retried_away() {
        let moto = moto().await;
        let sdk = moto.sdk_config();
        let direct = ddb(&sdk, moto.endpoint(), RetryConfig::disabled());
        create_table(&direct).await;
        let plan = FaultPlan::new(1, [FaultRule::always("PutItem", throttle())]);
        let proxy = FaultProxy::start(moto.endpoint(), plan).await.unwrap();

        let no_retries = ddb(&sdk, proxy.endpoint(), RetryConfig::disabled());
        let put = |client: &aws_sdk_dynamodb::Client, pk: &str| {
            client
                .put_item()
                .table_name(TABLE)
                .item("pk", AttributeValue::S(pk.into()))
                .send()
        };
        let err = put(&no_retries, "rejected").await.unwrap_err();
        let err = err.into_service_error();
        assert!(
            err.is_provisioned_throughput_exceeded_exception(),
            "{err:?}"
        );
        assert_eq!(err.message(), Some(INJECTED_MESSAGE));
        assert!(!item_exists(&direct, "rejected").await);

        // Fewer faults than attempts: the SDK's standard retries absorb them.
        proxy.set_plan(FaultPlan::new(
            1,
            [FaultRule::always("PutItem", throttle()).at_most(2)],
        ));
        put(&ddb(&sdk, proxy.endpoint(), quick_retries(3)), "retried")
            .await
            .unwrap();
        assert!(item_exists(&direct, "retried").await);
        let stats = proxy.stats();
        assert_eq!(stats.rules[0].injected, 2);
        assert_eq!(stats.requests("PutItem"), 1 + 3);
        assert_eq!(stats.faults("PutItem").rejected, 1 + 2);

        // AWS JSON 1.1 services get a plain `__type`.
        proxy.set_plan(FaultPlan::new(
            1,
            [FaultRule::always(
                "PutEvents",
                Fault::Reject {
                    status: 400,
                    code: "ThrottlingException".into(),
                },
            )],
        ));
        let err = events(&sdk, proxy.endpoint())
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source("coursewire.test")
                    .detail_type("t")
                    .detail("{}")
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
        proxy.stop().await;
    }

    #[tokio::test]
    async fn lost_responses_fail_the_call_after_the_side_effect() {
        let moto = moto().await;
        let sdk = moto.sdk_config();
        let direct = ddb(&sdk, moto.endpoint(), RetryConfig::disabled());
        create_table(&direct).await;
        let plan = FaultPlan::new(
            3,
            [FaultRule::always("TransactWriteItems", Fault::LoseResponse)],
        );
        let proxy = FaultProxy::start(moto.endpoint(), plan).await.unwrap();
        let client = ddb(&sdk, proxy.endpoint(), RetryConfig::disabled());

        let put = |pk: &str| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(TABLE)
                        .item("pk", AttributeValue::S(pk.into()))
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let err = client
            .transact_write_items()
            .transact_items(put("a"))
            .transact_items(put("b"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InternalFailure"), "{err:?}");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
        assert!(item_exists(&direct, "a").await);
        assert!(item_exists(&direct, "b").await);
        assert_eq!(proxy.stats().faults("TransactWriteItems").lost_responses, 1);
        proxy.stop().await;
    }

    /// A bus whose rule delivers every `coursewire.test` event to a queue.
    async fn bus_to_queue(sdk: &SdkConfig) -> String {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let url = sqs
            .create_queue()
            .queue_name("delivered")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()
            .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .unwrap();
        let eb = aws_sdk_eventbridge::Client::new(sdk);
        eb.create_event_bus().name("bus").send().await.unwrap();
        eb.put_rule()
            .event_bus_name("bus")
            .name("all")
            .event_pattern(r#"{"source":["coursewire.test"]}"#)
            .send()
            .await
            .unwrap();
        eb.put_targets()
            .event_bus_name("bus")
            .rule("all")
            .targets(EbTarget::builder().id("q").arn(arn).build().unwrap())
            .send()
            .await
            .unwrap();
        url
    }

    /// The `n` of every event delivered to the queue, until it stays empty.
    async fn drain(sdk: &SdkConfig, url: &str) -> BTreeSet<u64> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut seen = BTreeSet::new();
        loop {
            let received = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return seen;
            }
            for message in received.messages() {
                let body: Value = serde_json::from_str(message.body().unwrap()).unwrap();
                seen.insert(body["detail"]["n"].as_u64().unwrap());
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    fn entries(range: std::ops::Range<u64>) -> Vec<PutEventsRequestEntry> {
        range
            .map(|n| {
                PutEventsRequestEntry::builder()
                    .event_bus_name("bus")
                    .source("coursewire.test")
                    .detail_type("t")
                    .detail(json!({ "n": n }).to_string())
                    .build()
            })
            .collect()
    }

    #[tokio::test]
    async fn partial_put_events_fail_and_withhold_some_entries() {
        let moto = moto().await;
        let sdk = moto.sdk_config();
        let queue = bus_to_queue(&sdk).await;
        let partial = |fraction: f64| {
            FaultRule::always(
                "PutEvents",
                Fault::PartialPutEvents {
                    fraction,
                    code: "ThrottlingException".into(),
                },
            )
        };
        let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::new(9, [partial(0.4)]))
            .await
            .unwrap();
        let client = events(&sdk, proxy.endpoint());

        let put = client
            .put_events()
            .set_entries(Some(entries(0..5)))
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count(), 2);
        assert_eq!(put.entries().len(), 5);
        let mut failed = BTreeSet::new();
        for (i, entry) in put.entries().iter().enumerate() {
            if entry.error_code().is_some() {
                assert_eq!(entry.error_code(), Some("ThrottlingException"));
                assert_eq!(entry.event_id(), None);
                failed.insert(i as u64);
            } else {
                assert!(entry.event_id().is_some(), "{entry:?}");
            }
        }
        assert_eq!(failed.len(), 2);
        let delivered = drain(&sdk, &queue).await;
        let expected: BTreeSet<u64> = (0..5).filter(|i| !failed.contains(i)).collect();
        assert_eq!(delivered, expected);

        // A tiny fraction still fails one entry; a whole one never reaches moto.
        proxy.set_plan(FaultPlan::new(9, [partial(0.01)]));
        let put = client
            .put_events()
            .set_entries(Some(entries(10..13)))
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count(), 1);
        assert_eq!(drain(&sdk, &queue).await.len(), 2);
        proxy.set_plan(FaultPlan::new(9, [partial(1.0)]));
        let put = client
            .put_events()
            .set_entries(Some(entries(20..23)))
            .send()
            .await
            .unwrap();
        assert_eq!(put.failed_entry_count(), 3);
        assert!(put.entries().iter().all(|e| e.event_id().is_none()));
        assert!(drain(&sdk, &queue).await.is_empty());

        let counts = proxy.stats().faults("PutEvents");
        assert_eq!(counts.partial_put_events, 3);
        assert_eq!(counts.failed_entries, 2 + 1 + 3);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn probability_and_budgets_are_deterministic_per_seed() {
        let moto = moto().await;
        let sdk = moto.sdk_config();
        let direct = ddb(&sdk, moto.endpoint(), RetryConfig::disabled());
        create_table(&direct).await;
        let proxy = FaultProxy::start(moto.endpoint(), FaultPlan::passthrough())
            .await
            .unwrap();
        let client = ddb(&sdk, proxy.endpoint(), RetryConfig::disabled());
        let pattern = |plan: FaultPlan| {
            proxy.set_plan(plan);
            let client = client.clone();
            async move {
                let mut failed = Vec::new();
                for _ in 0..24 {
                    let result = client.describe_table().table_name(TABLE).send().await;
                    failed.push(result.is_err());
                }
                failed
            }
        };
        let coin = |seed| {
            FaultPlan::new(
                seed,
                [FaultRule::always("DescribeTable", throttle()).with_probability(0.5)],
            )
        };

        let first = pattern(coin(42)).await;
        assert!(first.contains(&true) && first.contains(&false), "{first:?}");
        let injected = proxy.stats().rules[0].injected;
        assert_eq!(injected, first.iter().filter(|f| **f).count() as u64);
        assert_eq!(pattern(coin(42)).await, first);
        assert_ne!(pattern(coin(43)).await, first);

        let budget = FaultPlan::new(
            0,
            [FaultRule::always("DescribeTable", throttle()).at_most(3)],
        );
        let failed = pattern(budget).await;
        assert_eq!(failed, [[true; 3].as_slice(), &[false; 21]].concat());
        let stats = proxy.stats();
        assert_eq!(stats.rules[0].matched, 3);
        assert_eq!(stats.rules[0].injected, 3);

        // Other operations are untouched; `*` also covers requests without a target.
        let never = FaultPlan::new(0, [FaultRule::always("PutItem", throttle())]);
        assert!(pattern(never).await.iter().all(|f| !f));
        proxy.set_plan(FaultPlan::new(
            0,
            [
                FaultRule::always(ANY_OPERATION, Fault::Delay(Duration::from_millis(150))),
                FaultRule::always(
                    ANY_OPERATION,
                    Fault::Reject {
                        status: 503,
                        code: "ServiceUnavailable".into(),
                    },
                ),
            ],
        ));
        let started = Instant::now();
        let answer = query_list_queues(proxy.endpoint()).await;
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(answer.status(), 503);
        assert!(
            answer
                .text()
                .await
                .unwrap()
                .contains("<Code>ServiceUnavailable</Code>")
        );
        let counts = proxy.stats().faults(NO_TARGET);
        assert_eq!((counts.delayed, counts.rejected), (1, 1));
        proxy.stop().await;
    }

    #[test]
    fn splices_failures_between_upstream_results() {
        let request = json!({
            "Entries": [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}],
            "EndpointId": "e",
        });
        let (forwarded, kept) = drop_entries(&request, &[1, 3]);
        assert_eq!(kept, [0, 2]);
        assert_eq!(
            forwarded,
            json!({"Entries": [{"n": 0}, {"n": 2}], "EndpointId": "e"})
        );
        let upstream = json!({
            "FailedEntryCount": 1,
            "Entries": [{"EventId": "a"}, {"ErrorCode": "X"}],
        });
        let spliced = splice_put_events(Some(&upstream), 4, &[1, 3], "InternalFailure");
        assert_eq!(spliced["FailedEntryCount"], 3);
        let codes: Vec<&str> = spliced["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["EventId"]
                    .as_str()
                    .or(e["ErrorCode"].as_str())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(codes, ["a", "InternalFailure", "X", "InternalFailure"]);
        assert_eq!(failing_count(0.0, 4), 1);
        assert_eq!(failing_count(0.5, 5), 3);
        assert_eq!(failing_count(2.0, 4), 4);
        assert_eq!(failing_count(f64::NAN, 4), 1);
    }

    #[test]
    fn errors_match_the_request_protocol() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TARGET_HEADER,
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        let target = Target::from_headers(&headers).unwrap();
        assert_eq!(target.operation, "PutItem");
        let response = ErrorProtocol::of(Some(&target), &headers).error(400, "Throttled");
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/x-amz-json-1.0"
        );
        assert_eq!(response.headers()[ERROR_TYPE_HEADER], "Throttled");
    }

    #[tokio::test]
    async fn rejects_bad_upstreams() {
        for bad in ["", "127.0.0.1:5000", "http://127.0.0.1:5000/path"] {
            assert!(matches!(
                FaultProxy::start(bad, FaultPlan::passthrough()).await,
                Err(FaultProxyError::Upstream { .. })
            ));
        }
    }
}
