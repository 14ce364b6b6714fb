//! Delivers planned emissions the way Canvas does: a signed JWT POSTed to an
//! HTTPS endpoint, or the raw JSON sent to a standard SQS queue with
//! `event_name` / `event_time` message attributes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use futures::StreamExt;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use super::keys::KeyRing;
use super::scenario::{Delivery, Emission};

/// Canvas gives up on an HTTPS delivery after 15 seconds.
pub const CANVAS_HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// Lifetime of the JWTs Canvas signs (`exp = iat + 300`).
pub const JWT_LIFETIME_SECS: i64 = 300;

/// Failures to deliver (a non-2xx answer is not a failure: it is reported in [`Delivered`]).
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("no HTTPS endpoint configured")]
    NoHttpsEndpoint,
    #[error("no SQS queue configured")]
    NoSqsQueue,
    #[error("payload is not a JSON object, cannot add JWT claims")]
    NotAnObject,
    #[error("HTTP delivery failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("invalid SQS message attribute {name}: {reason}")]
    Attribute { name: String, reason: String },
    #[error("SQS SendMessage failed: {0}")]
    Sqs(String),
}

/// What the receiving side answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Https { status: u16, body: String },
    Sqs { message_id: String },
}

impl Delivered {
    /// 2xx for HTTPS; always true for an accepted SQS message.
    pub fn is_success(&self) -> bool {
        match self {
            Self::Https { status, .. } => (200..300).contains(status),
            Self::Sqs { .. } => true,
        }
    }

    /// HTTP status, `None` for SQS.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Https { status, .. } => Some(*status),
            Self::Sqs { .. } => None,
        }
    }
}

/// Outcome of one emission in [`Emitter::send_all`].
#[derive(Debug)]
pub struct SendReport {
    /// Position in the slice given to `send_all`.
    pub position: usize,
    pub event_index: usize,
    pub duplicate: bool,
    pub result: Result<Delivered, EmitError>,
    /// Time from dispatch to answer (excludes pacing waits).
    pub elapsed: Duration,
}

/// Sends emissions to the coursewire ingest endpoints.
#[derive(Clone)]
pub struct Emitter {
    /// Receiver URL for HTTPS delivery (the ingest-https Function URL).
    pub https_url: Option<String>,
    /// SQS client and queue URL for SQS delivery.
    pub sqs: Option<(aws_sdk_sqs::Client, String)>,
    pub keyring: Arc<KeyRing>,
    /// `iss` claim of every JWT.
    pub issuer: String,
    pub http: reqwest::Client,
}

impl Emitter {
    /// An emitter with no destinations; add them with `with_https` / `with_sqs`.
    pub fn new(keyring: Arc<KeyRing>, issuer: impl Into<String>) -> Result<Self, EmitError> {
        let http = reqwest::Client::builder()
            .timeout(CANVAS_HTTP_TIMEOUT)
            .build()?;
        Ok(Self {
            https_url: None,
            sqs: None,
            keyring,
            issuer: issuer.into(),
            http,
        })
    }

    pub fn with_https(mut self, url: impl Into<String>) -> Self {
        self.https_url = Some(url.into());
        self
    }

    pub fn with_sqs(mut self, client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        self.sqs = Some((client, queue_url.into()));
        self
    }

    /// JWT claims for a payload: the event object plus `iss`, `iat` and
    /// `exp = iat + 300`. Pass an old `issued_at` to build expired tokens.
    pub fn claims(&self, payload: &Value, issued_at: i64) -> Result<Value, EmitError> {
        let mut claims = payload.as_object().cloned().ok_or(EmitError::NotAnObject)?;
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("iat".into(), issued_at.into());
        claims.insert("exp".into(), (issued_at + JWT_LIFETIME_SECS).into());
        Ok(Value::Object(claims))
    }

    /// Signed compact JWT for a payload, issued now.
    pub fn jwt(&self, payload: &Value) -> Result<String, EmitError> {
        let claims = self.claims(payload, chrono::Utc::now().timestamp())?;
        Ok(self.keyring.sign(&claims))
    }

    /// Delivers one emission over its planned transport. HTTPS tokens are
    /// signed at send time, so a duplicate carries the same event but may
    /// differ in `iat`/`exp` (dedupe on the event, not on the token bytes).
    pub async fn send(&self, emission: &Emission) -> Result<Delivered, EmitError> {
        match emission.delivery {
            Delivery::Https => {
                let token = self.jwt(&emission.payload)?;
                self.send_raw_https(token.into_bytes(), "application/jwt")
                    .await
            }
            Delivery::Sqs => {
                self.send_raw_sqs(
                    emission.payload.to_string(),
                    &[
                        ("event_name", emission.event_name.as_str()),
                        ("event_time", emission.event_time.as_str()),
                    ],
                )
                .await
            }
        }
    }

    /// POSTs arbitrary bytes, for malformed-input tests.
    pub async fn send_raw_https(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> Result<Delivered, EmitError> {
        let url = self
            .https_url
            .as_deref()
            .ok_or(EmitError::NoHttpsEndpoint)?;
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        Ok(Delivered::Https { status, body })
    }

    /// Sends an arbitrary message body with String attributes, for malformed-input tests.
    pub async fn send_raw_sqs(
        &self,
        body: impl Into<String>,
        attributes: &[(&str, &str)],
    ) -> Result<Delivered, EmitError> {
        let (client, queue_url) = self.sqs.as_ref().ok_or(EmitError::NoSqsQueue)?;
        let mut request = client
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        for (name, value) in attributes {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| EmitError::Attribute {
                    name: (*name).to_string(),
                    reason: e.to_string(),
                })?;
            request = request.message_attributes(*name, attribute);
        }
        let output = request
            .send()
            .await
            .map_err(|e| EmitError::Sqs(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
        Ok(Delivered::Sqs {
            message_id: output.message_id.unwrap_or_default(),
        })
    }

    /// Sends every emission with at most `concurrency` in flight, honouring
    /// each emission's `offset` from the start of the call (all zero when the
    /// plan is a burst). `on_progress` sees each report as it completes;
    /// the returned reports are in plan order.
    pub async fn send_all(
        &self,
        emissions: &[Emission],
        concurrency: usize,
        mut on_progress: impl FnMut(&SendReport),
    ) -> Vec<SendReport> {
        let start = tokio::time::Instant::now();
        let mut stream = futures::stream::iter(emissions.iter().enumerate())
            .map(|(position, emission)| async move {
                tokio::time::sleep_until(start + emission.offset).await;
                let began = Instant::now();
                let result = self.send(emission).await;
                SendReport {
                    position,
                    event_index: emission.event_index,
                    duplicate: emission.duplicate,
                    result,
                    elapsed: began.elapsed(),
                }
            })
            .buffer_unordered(concurrency.max(1));
        let mut reports = Vec::with_capacity(emissions.len());
        while let Some(report) = stream.next().await {
            on_progress(&report);
            reports.push(report);
        }
        reports.sort_by_key(|r| r.position);
        reports
    }
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("https_url", &self.https_url)
            .field("sqs_queue", &self.sqs.as_ref().map(|(_, url)| url))
            .field("issuer", &self.issuer)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas_live_events::scenario::{Format, Scenario, ScenarioConfig};
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    use std::sync::Mutex;

    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A receiver that records every request and answers 202.
    async fn receiver() -> (String, Received) {
        let received: Received = Arc::default();
        let sink = Arc::clone(&received);
        let app = Router::new().route(
            "/events",
            post(move |headers: HeaderMap, body: Bytes| {
                let sink = Arc::clone(&sink);
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    sink.lock()
                        .expect("lock")
                        .push((content_type, body.to_vec()));
                    (axum::http::StatusCode::ACCEPTED, "queued")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}/events"), received)
    }

    fn verify(token: &str, ring: &KeyRing) -> Value {
        let kid = decode_header(token).expect("header").kid.expect("kid");
        let jwks = ring.jwks();
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .expect("kid in JWKS");
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().expect("n"),
            jwk["e"].as_str().expect("e"),
        )
        .expect("key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&["canvas-sim-test"]);
        decode::<Value>(token, &key, &validation)
            .expect("valid token")
            .claims
    }

    #[tokio::test]
    async fn https_delivery_posts_a_verifiable_jwt_and_send_all_delivers_the_plan() {
        let ring = Arc::new(KeyRing::new().expect("keyring"));
        let (url, received) = receiver().await;
        let emitter = Emitter::new(Arc::clone(&ring), "canvas-sim-test")
            .expect("emitter")
            .with_https(url);

        let scenario = Scenario::build(ScenarioConfig {
            seed: 7,
            courses: 1,
            students_per_course: 6,
            assignments_per_course: 2,
            https_ratio: 1.0,
            caliper_ratio: 0.5,
            duplicate_ratio: 0.2,
            burst: false,
            pace: Duration::from_millis(1),
            ..ScenarioConfig::default()
        });
        let emissions = &scenario.emissions;
        assert!(emissions.iter().any(|e| e.duplicate), "plan has duplicates");
        assert!(emissions.iter().any(|e| e.format == Format::Caliper));

        let mut progress = 0;
        let started = Instant::now();
        let reports = emitter.send_all(emissions, 4, |_| progress += 1).await;
        // Paced plan: the last emission waits for its offset.
        let last_offset = emissions.last().map(|e| e.offset).unwrap_or_default();
        assert!(started.elapsed() >= last_offset, "pacing honoured");
        assert_eq!(progress, emissions.len());
        assert_eq!(reports.len(), emissions.len());
        for (position, report) in reports.iter().enumerate() {
            assert_eq!(report.position, position);
            let delivered = report.result.as_ref().expect("delivered");
            assert_eq!(delivered.status(), Some(202));
            assert!(delivered.is_success());
        }

        let received = received.lock().expect("lock").clone();
        assert_eq!(received.len(), emissions.len());
        let mut events_seen = Vec::new();
        for (content_type, body) in &received {
            assert_eq!(content_type, "application/jwt");
            let token = std::str::from_utf8(body).expect("utf8");
            let claims = verify(token, &ring);
            let iat = claims["iat"].as_i64().expect("iat");
            assert_eq!(claims["exp"].as_i64(), Some(iat + JWT_LIFETIME_SECS));
            // Without the JWT claims, the token carries exactly one planned payload.
            let mut event = claims.clone();
            if let Some(object) = event.as_object_mut() {
                for claim in ["iss", "iat", "exp"] {
                    object.remove(claim);
                }
            }
            assert!(
                emissions.iter().any(|e| e.payload == event),
                "token payload is a planned payload"
            );
            events_seen.push(event);
        }
        // Every planned emission arrived (duplicates included).
        for emission in emissions {
            let expected = emissions
                .iter()
                .filter(|e| e.payload == emission.payload)
                .count();
            let got = events_seen
                .iter()
                .filter(|e| **e == emission.payload)
                .count();
            assert_eq!(got, expected);
        }
    }

    #[tokio::test]
    async fn raw_sends_and_missing_destinations() {
        let ring = Arc::new(KeyRing::new().expect("keyring"));
        let (url, received) = receiver().await;
        let bare = Emitter::new(Arc::clone(&ring), "canvas-sim-test").expect("emitter");
        assert!(matches!(
            bare.send_raw_https(b"x".to_vec(), "text/plain").await,
            Err(EmitError::NoHttpsEndpoint)
        ));
        assert!(matches!(
            bare.send_raw_sqs("{}", &[]).await,
            Err(EmitError::NoSqsQueue)
        ));
        assert!(matches!(
            bare.claims(&Value::from("not an object"), 0),
            Err(EmitError::NotAnObject)
        ));

        let emitter = bare.with_https(url);
        let delivered = emitter
            .send_raw_https(b"not a jwt".to_vec(), "text/plain")
            .await
            .expect("sent");
        assert_eq!(
            delivered,
            Delivered::Https {
                status: 202,
                body: "queued".into()
            }
        );
        let received = received.lock().expect("lock").clone();
        assert_eq!(
            received,
            vec![("text/plain".to_string(), b"not a jwt".to_vec())]
        );
    }
}
