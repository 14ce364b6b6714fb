//! The request loop against a scripted HTTP server (no simulator needed): pagination,
//! throttling, token refresh, GraphQL errors, the resources' request shapes.

use super::model::NewExternalUrlItem;
use super::*;
use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use futures::TryStreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A request the fake server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: vec![
            ("X-Request-Cost".into(), "1.5".into()),
            ("X-Rate-Limit-Remaining".into(), "650.0".into()),
        ],
        body: body.to_string(),
    }
}

impl Answer {
    /// Sets a header, replacing a default one of the same name.
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

/// One HTTP/1.1 exchange per connection; `script` gets the request and its index.
struct FakeCanvas {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeCanvas {
    async fn start(script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let script = script.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let header = |name: &str| {
                        head.lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let length: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    let seen = Seen {
                        method,
                        target,
                        authorization: header("authorization"),
                        body: String::from_utf8_lossy(&buffer[head_end..]).to_string(),
                    };
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(seen.clone());
                        log.len() - 1
                    };
                    let reply = script(&seen, index);
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&reply.body);
                    let _ = socket.write_all(out.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A token endpoint that hands out `fresh-1`, `fresh-2` ...
struct Endpoint {
    refreshes: AtomicU64,
    revoked: bool,
}

#[async_trait]
impl TokenEndpoint for Endpoint {
    async fn refresh(&self, _: &Credentials) -> Result<TokenGrant, TokenError> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.revoked {
            return Err(TokenError::InvalidGrant);
        }
        Ok(TokenGrant {
            access_token: format!("fresh-{n}"),
            expires_in: Some(3600),
            refresh_token: None,
        })
    }

    async fn exchange_code(
        &self,
        _: &OAuthApp,
        _: &str,
        _: &str,
    ) -> Result<TokenGrant, TokenError> {
        Err(TokenError::InvalidGrant)
    }
}

struct Harness {
    client: CanvasClient,
    endpoint: Arc<Endpoint>,
    sink: Arc<coursewire_runtime::telemetry::CollectingSink>,
}

fn harness(base: &str, revoked: bool) -> Harness {
    let credentials = Credentials {
        base_url: base.to_string(),
        client_id: "1".into(),
        client_secret: "s".into(),
        refresh_token: "r".into(),
        access_token: Some("initial".into()),
        access_token_expires_at: Some(Utc::now() + TimeDelta::hours(1)),
        access_token_issued_at: None,
        revoked_at: None,
        extra: Default::default(),
    };
    let endpoint = Arc::new(Endpoint {
        refreshes: AtomicU64::new(0),
        revoked,
    });
    let sink = Arc::new(coursewire_runtime::telemetry::CollectingSink::new());
    let tokens = TokenSource::new(
        Arc::new(MemoryCredentialStore::new(credentials)),
        endpoint.clone(),
        TokenSettings::default(),
        sink.clone(),
        "test",
    );
    let quota = Quota::new(
        Arc::new(MemoryBudgetStore::new()),
        QuotaSettings {
            outflow_per_sec: 1000.0,
            ..QuotaSettings::default()
        },
        "test-grant",
    );
    let settings = HttpSettings {
        request_timeout: Duration::from_secs(5),
        max_attempts: 4,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(5),
        ..HttpSettings::default()
    };
    let client = CanvasClient::new(
        settings,
        Arc::new(tokens),
        Arc::new(quota),
        sink.clone(),
        "test",
    )
    .unwrap();
    Harness {
        client,
        endpoint,
        sink,
    }
}

#[tokio::test]
async fn paginates_by_following_opaque_next_links() {
    let canvas = FakeCanvas::start(|seen, _| {
        let base = "http://ignored.test";
        if seen.target.contains("bookmark:second") {
            answer(200, r#"[{"id": 3}]"#)
        } else {
            // Two links in one header, params in odd order; the next one is a bookmark on
            // another origin (only its path and query are followed, on Canvas's base).
            answer(200, r#"[{"id": 1}, {"id": "2"}]"#).header(
                "Link",
                &format!(
                    "<{base}/api/v1/courses?page=first>; rel=\"first\", <{base}/api/v1/accounts/1/courses?page=bookmark:second&per_page=100>; title=\"x\"; rel=\"next\""
                ),
            )
        }
    })
    .await;
    let h = harness(&canvas.base, false);
    let courses = h.client.active_courses("1").await.unwrap();
    let ids: Vec<&str> = courses.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    let seen = canvas.seen();
    assert_eq!(
        seen[0].target,
        "/api/v1/accounts/1/courses?state%5B%5D=available&per_page=100"
    );
    assert_eq!(
        seen[1].target,
        "/api/v1/accounts/1/courses?page=bookmark:second&per_page=100"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer initial"))
    );
    let stats = h.client.stats();
    assert_eq!((stats.requests, stats.ok), (2, 2));
    assert_eq!(stats.cost_total, 3.0);
    assert_eq!(stats.remaining_min, Some(650.0));
    h.client.flush_metrics();
    assert_eq!(h.sink.sum("CanvasRequests", &[("Outcome", "ok")]), 2.0);
    assert!(h.sink.sum("CanvasLeaseCalls", &[]) >= 1.0);
}

#[tokio::test]
async fn retries_throttling_and_server_errors_but_not_plain_403() {
    let canvas = FakeCanvas::start(|seen, i| match (seen.target.as_str(), i) {
        (t, 0) if t.ends_with("/courses/7") => {
            answer(403, "403 Forbidden (Rate Limit Exceeded)").header("X-Rate-Limit-Remaining", "0")
        }
        (t, 1) if t.ends_with("/courses/7") => answer(429, ""),
        (t, 2) if t.ends_with("/courses/7") => answer(503, "busy"),
        (t, _) if t.ends_with("/courses/7") => answer(200, r#"{"id": 7, "name": "C7"}"#),
        _ => answer(403, r#"{"errors":[{"message":"forbidden"}]}"#),
    })
    .await;
    let h = harness(&canvas.base, false);
    let course = h.client.course("7").await.unwrap();
    assert_eq!(course.name.as_deref(), Some("C7"));
    let stats = h.client.stats();
    assert_eq!(
        (stats.throttled, stats.server_error, stats.retries),
        (2, 1, 3)
    );
    assert_eq!(h.client.quota().stats().throttle_penalties, 2);

    let err = h.client.course("8").await.unwrap_err();
    assert!(
        matches!(&err, CanvasError::Http { status: 403, message } if message == "forbidden"),
        "{err:?}"
    );
    assert_eq!(canvas.seen().len(), 5, "a plain 403 is not retried");
}

#[tokio::test]
async fn gives_up_after_the_attempt_bound() {
    let canvas = FakeCanvas::start(|_, _| answer(429, "")).await;
    let h = harness(&canvas.base, false);
    let err = h.client.course("1").await.unwrap_err();
    assert!(
        matches!(err, CanvasError::Throttled { attempts: 4 }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(canvas.seen().len(), 4);
}

#[tokio::test]
async fn concurrent_401s_refresh_once_and_retry_with_the_new_token() {
    let canvas = FakeCanvas::start(|seen, _| {
        if seen.authorization.as_deref() == Some("Bearer initial") {
            answer(401, r#"{"errors":[{"message":"Invalid access token."}]}"#)
                .header("WWW-Authenticate", "Bearer realm=\"canvas-lms\"")
        } else {
            answer(200, r#"{"id": 1}"#)
        }
    })
    .await;
    let h = harness(&canvas.base, false);
    let results = futures::future::join_all((0..6).map(|_| h.client.course("1"))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(h.endpoint.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(h.client.stats().refreshes, 1);
    assert!(
        canvas
            .seen()
            .iter()
            .filter(|s| s.authorization.as_deref() == Some("Bearer fresh-1"))
            .count()
            >= 6
    );
}

#[tokio::test]
async fn revoked_grant_stops_calls() {
    let canvas = FakeCanvas::start(|_, _| {
        answer(401, r#"{"errors":[{"message":"Invalid access token."}]}"#)
            .header("WWW-Authenticate", "Bearer realm=\"canvas-lms\"")
    })
    .await;
    let h = harness(&canvas.base, true);
    assert!(matches!(
        h.client.course("1").await,
        Err(CanvasError::GrantRevoked)
    ));
    assert!(matches!(
        h.client.course("1").await,
        Err(CanvasError::GrantRevoked)
    ));
    assert_eq!(canvas.seen().len(), 1, "nothing after the revocation");
    assert_eq!(h.endpoint.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(h.sink.sum("CanvasGrantRevoked", &[]), 1.0);
}

#[tokio::test]
async fn graphql_roster_pages_through_enrollments_and_reports_errors() {
    let canvas = FakeCanvas::start(|seen, _| {
        let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
        let after = &body["variables"]["after"];
        if body["variables"]["courseId"] == "404" {
            return answer(200, r#"{"data": {"course": null}}"#);
        }
        if body["variables"]["courseId"] == "err" {
            return answer(200, r#"{"data": null, "errors": [{"message": "bad field"}]}"#);
        }
        let node = |id: u32| {
            format!(
                r#"{{"_id": "{id}", "state": "active", "type": "StudentEnrollment", "section": {{"_id": "s1"}},
                   "user": {{"_id": "u{id}", "name": "N", "shortName": "N", "sortableName": "N", "sisId": null}},
                   "createdAt": null, "updatedAt": null}}"#
            )
        };
        if after.is_null() {
            assert!(body["query"].as_str().unwrap().contains("sectionsConnection"));
            answer(200, &format!(
                r#"{{"data": {{"course": {{
                    "sectionsConnection": {{"nodes": [{{"_id": "s1", "name": "S", "sisId": null}}],
                                           "pageInfo": {{"endCursor": "x", "hasNextPage": false}}}},
                    "enrollmentsConnection": {{"nodes": [{}, {}],
                                              "pageInfo": {{"endCursor": "c1", "hasNextPage": true}}}}}}}}}}"#,
                node(1), node(2)
            ))
        } else {
            assert_eq!(after, "c1");
            assert!(!body["query"].as_str().unwrap().contains("sectionsConnection"));
            answer(200, &format!(
                r#"{{"data": {{"course": {{"enrollmentsConnection": {{"nodes": [{}],
                     "pageInfo": {{"endCursor": "c2", "hasNextPage": false}}}}}}}}}}"#,
                node(3)
            ))
        }
    })
    .await;
    let h = harness(&canvas.base, false);
    let roster = h.client.roster("565").await.unwrap();
    assert_eq!(roster.sections.len(), 1);
    assert_eq!(roster.enrollments.len(), 3);
    assert_eq!(roster.users.len(), 3);
    assert_eq!(
        h.client.stats().requests,
        2,
        "two requests for 3 enrollments + sections"
    );
    assert!(
        canvas
            .seen()
            .iter()
            .all(|s| s.method == "POST" && s.target == "/api/graphql")
    );

    let err = h.client.roster("err").await.unwrap_err();
    assert!(
        matches!(&err, CanvasError::GraphQl(m) if m == &["bad field"]),
        "{err:?}"
    );
    let err = h.client.roster("404").await.unwrap_err();
    assert!(matches!(err, CanvasError::Http { status: 404, .. }));
}

#[tokio::test]
async fn rest_roster_and_modules_follow_canvas_shapes() {
    let canvas = FakeCanvas::start(|seen, _| {
        let t = seen.target.as_str();
        if t.starts_with("/api/v1/courses/5/sections") {
            answer(200, r#"[{"id": 1, "course_id": 5, "name": "S1", "start_at": "2025-01-01T00:00:00Z"}]"#)
        } else if t.starts_with("/api/v1/courses/5/enrollments") {
            assert!(t.contains("state%5B%5D=active&state%5B%5D=invited&state%5B%5D=inactive&state%5B%5D=completed"));
            answer(200, r#"[{"id": 10, "course_id": 5, "course_section_id": 1, "user_id": 3, "type": "TeacherEnrollment",
                "enrollment_state": "active", "user": {"id": 3, "name": "T", "sortable_name": "T", "short_name": "T"}},
                {"id": 11, "course_id": 5, "course_section_id": 1, "user_id": 3, "type": "TaEnrollment",
                "enrollment_state": "active", "user": {"id": 3, "name": "T", "sortable_name": "T", "short_name": "T"}}]"#)
        } else if t.starts_with("/api/v1/courses/5/modules/2/items") {
            assert!(t.contains("per_page=100"));
            answer(200, r#"[{"id": 21, "position": 1, "title": "Big", "type": "Page"}]"#)
        } else if t.starts_with("/api/v1/courses/5/modules") {
            assert!(t.contains("include%5B%5D=items"));
            answer(200, r#"[{"id": 1, "name": "M1", "position": 1, "published": true, "items_count": 1,
                  "items": [{"id": 11, "module_id": 1, "position": 1, "title": "T", "type": "ExternalUrl",
                             "external_url": "https://p.test/1", "published": true}]},
                 {"id": 2, "name": "M2", "position": 2, "published": true, "items_count": 11,
                  "items_url": "http://elsewhere.test/api/v1/courses/5/modules/2/items"}]"#)
        } else {
            answer(404, r#"{"errors":[{"message":"not found"}]}"#)
        }
    })
    .await;
    let h = harness(&canvas.base, false);
    let roster = h.client.roster_rest("5").await.unwrap();
    assert_eq!(
        roster.sections[0].start_at.as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(roster.enrollments.len(), 2);
    assert_eq!(roster.users.len(), 1);
    assert_eq!(roster.enrollments[0].section_id.as_deref(), Some("1"));

    let modules = h.client.modules("5").await.unwrap();
    assert_eq!(modules.len(), 2);
    assert_eq!(
        modules[0].items[0].external_url.as_deref(),
        Some("https://p.test/1")
    );
    assert_eq!(
        modules[1].items[0].module_id, "2",
        "filled in from the module"
    );
    assert_eq!(modules[1].items[0].title.as_deref(), Some("Big"));
}

#[tokio::test]
async fn module_item_writes_are_form_encoded_and_a_failed_post_is_not_repeated() {
    let canvas = FakeCanvas::start(|seen, _| match seen.method.as_str() {
        "POST" if seen.target.contains("/modules/9/") => answer(502, "bad gateway"),
        "POST" => answer(200, r#"{"id": 77, "module_id": 3, "position": 2, "title": "Lecture 1",
            "type": "ExternalUrl", "external_url": "https://p.test/v?id=1&x=y", "published": false}"#),
        _ => answer(200, r#"{"id": 77, "module_id": 3, "published": true}"#),
    })
    .await;
    let h = harness(&canvas.base, false);
    let item = NewExternalUrlItem {
        title: "Lecture 1".into(),
        external_url: "https://p.test/v?id=1&x=y".into(),
        position: Some(2),
        new_tab: true,
    };
    let created = h
        .client
        .create_external_url_item("1", "3", &item)
        .await
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.published),
        ("77", Some(false))
    );
    let published = h.client.publish_module_item("1", "3", "77").await.unwrap();
    assert_eq!(published.published, Some(true));
    let seen = canvas.seen();
    assert_eq!(seen[0].target, "/api/v1/courses/1/modules/3/items");
    let form: Vec<(String, String)> = form_pairs(&seen[0].body);
    assert!(form.contains(&("module_item[type]".into(), "ExternalUrl".into())));
    assert!(form.contains(&(
        "module_item[external_url]".into(),
        "https://p.test/v?id=1&x=y".into()
    )));
    assert!(form.contains(&("module_item[position]".into(), "2".into())));
    assert!(form.contains(&("module_item[new_tab]".into(), "true".into())));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("PUT", "/api/v1/courses/1/modules/3/items/77")
    );
    assert_eq!(seen[1].body, "module_item%5Bpublished%5D=true");

    let err = h
        .client
        .create_external_url_item("1", "9", &item)
        .await
        .unwrap_err();
    assert!(matches!(err, CanvasError::Http { status: 502, .. }));
    assert_eq!(
        canvas.seen().len(),
        3,
        "the POST may have landed: not repeated"
    );
}

#[tokio::test]
async fn module_writes_are_form_encoded_and_a_failed_post_is_not_repeated() {
    let canvas = FakeCanvas::start(|seen, _| match seen.method.as_str() {
        "POST" if seen.target.starts_with("/api/v1/courses/9/") => answer(504, "gateway timeout"),
        "POST" => answer(
            200,
            r#"{"id": 12, "name": "Lecture recordings & notes", "position": 3,
            "published": false, "items_count": 0,
            "items_url": "https://canvas.test/api/v1/courses/1/modules/12/items"}"#,
        ),
        _ => answer(
            200,
            r#"{"id": 12, "name": "Lecture recordings & notes", "position": 3,
            "published": true, "items_count": 0}"#,
        ),
    })
    .await;
    let h = harness(&canvas.base, false);
    let name = "Lecture recordings & notes = 100% é";
    let created = h.client.create_module("1", name).await.unwrap();
    assert_eq!(
        (created.id.as_str(), created.course_id.as_str()),
        ("12", "1")
    );
    assert_eq!(
        (created.position, created.published),
        (Some(3), Some(false))
    );
    assert!(created.items.is_empty());
    let published = h.client.publish_module("1", "12").await.unwrap();
    assert_eq!(published.published, Some(true));
    assert!(published.items.is_empty());
    let seen = canvas.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/api/v1/courses/1/modules")
    );
    assert_eq!(
        form_pairs(&seen[0].body),
        [("module[name]".to_string(), name.to_string())]
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("PUT", "/api/v1/courses/1/modules/12")
    );
    assert_eq!(
        seen[1].body,
        "module%5Bpublished%5D=true&module%5Bskip_content_tags%5D=true"
    );

    let err = h.client.create_module("9", name).await.unwrap_err();
    assert!(
        matches!(err, CanvasError::Http { status: 504, .. }),
        "{err:?}"
    );
    assert_eq!(
        canvas.seen().len(),
        3,
        "the module may have been created: not repeated"
    );
}

/// Decodes a form body (`+` and `%XX`).
fn form_pairs(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[tokio::test]
async fn paginate_is_a_stream() {
    let canvas = FakeCanvas::start(|_, _| answer(200, r#"[{"id": 1}, {"id": 2}]"#)).await;
    let h = harness(&canvas.base, false);
    #[derive(serde::Deserialize)]
    struct Thing {
        id: u64,
    }
    let first: Vec<Thing> = h
        .client
        .paginate::<Thing>("/api/v1/things", &[("per_page", "2")])
        .try_collect()
        .await
        .unwrap();
    assert_eq!(first.iter().map(|t| t.id).sum::<u64>(), 3);
}
