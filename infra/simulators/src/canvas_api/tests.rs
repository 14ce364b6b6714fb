//! End-to-end tests: a real HTTP client (reqwest) against the started simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::params::encode;
use super::*;
use crate::canvas_live_events::{SHARD_FACTOR, Scenario, ScenarioConfig, Truth, global_id};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn fast() -> ApiSimConfig {
    ApiSimConfig {
        latency: Duration::ZERO,
        time_scale: 100.0,
        ..ApiSimConfig::default()
    }
}

fn scenario() -> Scenario {
    Scenario::build(ScenarioConfig::default())
}

async fn start(config: ApiSimConfig, world: World) -> CanvasApiSim {
    CanvasApiSim::start(config, world).await.expect("start")
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Link` header as rel → URL.
    fn links(&self) -> BTreeMap<String, String> {
        self.header("link")
            .unwrap_or_default()
            .split(',')
            .filter_map(|part| {
                let (url, rel) = part.split_once(">; rel=\"")?;
                Some((
                    rel.trim_end_matches('"').to_string(),
                    url.trim_start_matches('<').to_string(),
                ))
            })
            .collect()
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Answer {
        status,
        headers,
        text,
    }
}

async fn get(c: &reqwest::Client, url: &str, token: &str) -> Answer {
    answer(c.get(url).bearer_auth(token)).await
}

async fn token_request(c: &reqwest::Client, sim: &CanvasApiSim, pairs: &[(&str, &str)]) -> Answer {
    answer(
        c.post(format!("{}/login/oauth2/token", sim.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs)),
    )
    .await
}

async fn graphql(c: &reqwest::Client, sim: &CanvasApiSim, token: &str, body: Value) -> Answer {
    answer(
        c.post(format!("{}/api/graphql", sim.base_url()))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

fn first_course(world: &World) -> u64 {
    *world.courses.keys().next().expect("a course")
}

#[tokio::test]
async fn oauth_code_flow_refresh_keeps_refresh_token_and_revocation_is_invalid_grant() {
    let sim = start(fast(), World::default()).await;
    let c = client();
    let redirect = "https://coursewire.example/callback?x=1";
    let auth = answer(c.get(format!(
        "{}/login/oauth2/auth?{}",
        sim.base_url(),
        form(&[
            ("client_id", DEFAULT_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("state", "st/ate 1"),
        ])
    )))
    .await;
    assert_eq!(auth.status, 302);
    let location = auth.header("location").expect("location").to_string();
    assert!(
        location.starts_with(&format!("{redirect}&code=")),
        "{location}"
    );
    assert!(location.ends_with("&state=st%2Fate%201"), "{location}");
    let code = super::params::Params::parse(location.split_once('?').expect("query").1)
        .get("code")
        .expect("code")
        .to_string();

    let exchange = [
        ("grant_type", "authorization_code"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("redirect_uri", redirect),
        ("code", code.as_str()),
    ];
    let tokens = token_request(&c, &sim, &exchange).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let tokens = tokens.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["user"]["id"], global_id(1));
    assert_eq!(tokens["user"]["name"], "Sim Admin");
    let access = tokens["access_token"].as_str().expect("access").to_string();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();

    let reused = token_request(&c, &sim, &exchange).await;
    assert_eq!(reused.status, 400, "codes are single-use");
    assert_eq!(reused.json()["error"], "invalid_grant");
    let bad_client = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", "wrong"),
            ("refresh_token", refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(bad_client.status, 401);
    assert_eq!(bad_client.json()["error"], "invalid_client");

    let me = get(
        &c,
        &format!("{}/api/v1/users/self", sim.base_url()),
        &access,
    )
    .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], global_id(1));

    // Refresh with a JSON body: a new access token, no new refresh token.
    let refreshed = answer(
        c.post(format!("{}/login/oauth2/token", sim.base_url()))
            .json(&json!({
                "grant_type": "refresh_token",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "refresh_token": refresh,
            })),
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let refreshed = refreshed.json();
    assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
    let access2 = refreshed["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    assert_ne!(access2, access);
    for token in [&access, &access2] {
        let me = get(&c, &format!("{}/api/v1/users/self", sim.base_url()), token).await;
        assert_eq!(me.status, 200, "old tokens live until their own expiry");
    }
    // The same refresh token keeps working.
    let again = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(again.status, 200);

    assert!(sim.revoke_grant(&refresh));
    let revoked = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", refresh.as_str()),
        ],
    )
    .await;
    assert_eq!(revoked.status, 400);
    assert_eq!(revoked.json()["error"], "invalid_grant");
    let me = get(
        &c,
        &format!("{}/api/v1/users/self", sim.base_url()),
        &access2,
    )
    .await;
    assert_eq!(me.status, 401, "revocation kills the grant's access tokens");

    // Programmatic approval works with any redirect_uri.
    let code = sim.authorize(DEFAULT_CLIENT_ID).expect("code");
    let tokens = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("redirect_uri", "urn:ietf:wg:oauth:2.0:oob"),
            ("code", code.as_str()),
        ],
    )
    .await;
    assert_eq!(tokens.status, 200);
    assert!(sim.authorize("nope").is_err());
    let unsupported = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "password"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(unsupported.json()["error"], "unsupported_grant_type");

    // Logout revokes the whole grant.
    let grant = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    let logout = answer(
        c.delete(format!("{}/login/oauth2/token", sim.base_url()))
            .bearer_auth(&grant.access_token),
    )
    .await;
    assert_eq!(logout.status, 200);
    let me = get(
        &c,
        &format!("{}/api/v1/users/self", sim.base_url()),
        &grant.access_token,
    )
    .await;
    assert_eq!(me.status, 401);

    let stats = sim.stats();
    assert_eq!(stats.token_requests.get("authorization_code"), Some(&3));
    assert_eq!(stats.token_requests.get("refresh_token"), Some(&4));
    assert_eq!(stats.token_requests.get("password"), Some(&1));
    sim.stop().await;
}

#[tokio::test]
async fn expired_and_missing_tokens_get_401_with_www_authenticate() {
    let sim = start(
        ApiSimConfig {
            token_lifetime: Duration::from_secs(1),
            ..fast()
        },
        World::default(),
    )
    .await;
    let c = client();
    let url = format!("{}/api/v1/users/self", sim.base_url());
    let short = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    assert_eq!(short.expires_in, 1);
    assert_eq!(get(&c, &url, &short.access_token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = get(&c, &url, &short.access_token).await;
    assert_eq!(expired.status, 401);
    assert_eq!(
        expired.header("www-authenticate"),
        Some("Bearer realm=\"canvas-lms\"")
    );
    assert_eq!(
        expired.json(),
        json!({ "errors": [{ "message": "Invalid access token." }] })
    );
    assert!(expired.header("x-request-cost").is_some());
    assert!(expired.header("x-rate-limit-remaining").is_some());

    let grant = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    assert_eq!(get(&c, &url, &grant.access_token).await.status, 200);
    sim.expire_access_tokens();
    let expired = get(&c, &url, &grant.access_token).await;
    assert_eq!(expired.status, 401);
    assert!(expired.header("www-authenticate").is_some());
    // The refresh token survives; the refreshed token works.
    let refreshed = token_request(
        &c,
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", grant.refresh_token.as_str()),
        ],
    )
    .await
    .json();
    let fresh = refreshed["access_token"].as_str().expect("access");
    assert_eq!(get(&c, &url, fresh).await.status, 200);

    let missing = answer(c.get(&url)).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some("Bearer realm=\"canvas-lms\"")
    );
    assert_eq!(
        missing.json()["errors"][0]["message"],
        "user authorization required"
    );
    let unknown = get(&c, &url, "2107~not-a-token").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(sim.stats().unauthorized, 4);
}

#[tokio::test]
async fn leaky_bucket_throttles_bursts_with_403_then_429_and_recovers_at_outflow() {
    let time_scale = 20.0;
    let sim = start(
        ApiSimConfig {
            latency: Duration::from_millis(400),
            time_scale,
            cost: CostModel {
                base: 40.0,
                per_item: 0.0,
                jitter: 0.0,
            },
            ..ApiSimConfig::default()
        },
        World::default(),
    )
    .await;
    let c = client();
    let grant = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    let url = format!("{}/api/v1/users/self", sim.base_url());
    let burst =
        futures::future::join_all((0..30).map(|_| get(&c, &url, &grant.access_token))).await;
    let ok: Vec<&Answer> = burst.iter().filter(|a| a.status == 200).collect();
    let throttled: Vec<&Answer> = burst.iter().filter(|a| a.status == 403).collect();
    assert_eq!(ok.len() + throttled.len(), 30);
    // 700 / 50 up front = 14 in flight; a little leaks while the burst arrives.
    assert!((14..=17).contains(&ok.len()), "{} admitted", ok.len());
    for a in &throttled {
        assert_eq!(a.text, "403 Forbidden (Rate Limit Exceeded)");
        assert_eq!(a.header("x-request-cost"), Some("0.0000"));
        let remaining: f64 = a
            .header("x-rate-limit-remaining")
            .expect("remaining")
            .parse()
            .expect("number");
        assert!(remaining < 50.0, "{remaining}");
    }
    for a in &ok {
        let cost: f64 = a
            .header("x-request-cost")
            .expect("cost")
            .parse()
            .expect("n");
        assert!((cost - 40.0).abs() < 1e-9);
        assert!(a.header("x-rate-limit-remaining").is_some());
    }
    let stats = sim.stats();
    assert_eq!(stats.throttled, throttled.len() as u64);
    assert!(stats.peak_level > 650.0, "{}", stats.peak_level);
    assert!((stats.cost_total - 40.0 * ok.len() as f64).abs() < 1e-6);

    // Recovery: the level falls at outflow × time_scale units per second.
    let r1 = sim.rate_limit_remaining(&grant.access_token);
    let t1 = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r2 = sim.rate_limit_remaining(&grant.access_token);
    let expected = 10.0 * time_scale * t1.elapsed().as_secs_f64();
    // The level must stay above what leaks in the window, or the floor at 0 cuts the slope.
    assert!(r1 < 400.0, "bucket still full-ish after the burst: {r1}");
    assert!(
        ((r2 - r1) - expected).abs() < expected * 0.1,
        "recovered {} in {:?}, expected {expected}",
        r2 - r1,
        t1.elapsed()
    );
    sim.stop().await;

    let sim = start(
        ApiSimConfig {
            latency: Duration::from_millis(300),
            high_water: 120.0,
            throttle_status: ThrottleStatus::TooMany429,
            ..ApiSimConfig::default()
        },
        World::default(),
    )
    .await;
    let grant = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    let url = format!("{}/api/v1/users/self", sim.base_url());
    let burst = futures::future::join_all((0..6).map(|_| get(&c, &url, &grant.access_token))).await;
    let limited: Vec<&Answer> = burst.iter().filter(|a| a.status == 429).collect();
    assert_eq!(burst.iter().filter(|a| a.status == 200).count(), 2);
    assert_eq!(limited.len(), 4);
    assert!(
        limited
            .iter()
            .all(|a| a.text == "429 Too Many Requests (Rate Limit Exceeded)")
    );
    // Another token has its own bucket.
    let other = sim.issue_grant(DEFAULT_CLIENT_ID).expect("grant");
    assert_eq!(get(&c, &url, &other.access_token).await.status, 200);
}

#[tokio::test]
async fn bookmark_pagination_walks_every_enrollment_once_following_link_next() {
    let world = World::from_events(&scenario().events);
    let course = first_course(&world);
    let sim = start(fast(), world.clone()).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let all_states =
        "state[]=active&state[]=invited&state[]=inactive&state[]=completed&state[]=deleted";
    let mut url = format!(
        "{}/api/v1/courses/{course}/enrollments?{all_states}&per_page=7",
        sim.base_url()
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut added = None;
    loop {
        let page = get(&c, &url, &token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        pages += 1;
        let links = page.links();
        assert!(links.contains_key("current") && links.contains_key("first"));
        assert!(!links.contains_key("last"), "bookmarks have no last page");
        for row in page.json().as_array().expect("array") {
            assert!(row["id"].is_u64(), "ids are JSON numbers");
            assert_eq!(row["course_id"], course);
            assert!(row["user"]["name"].is_string());
            seen.push(row["id"].as_u64().expect("id"));
        }
        if pages == 1 {
            // The roster changes mid-walk; bookmarks neither repeat nor skip.
            let section = row_section(&page);
            let user = sim.add_user("Mid Walk");
            added = Some(
                sim.enroll(course, section, user, "StudentEnrollment")
                    .expect("enroll"),
            );
        }
        let Some(next) = links.get("next") else {
            break;
        };
        assert!(next.starts_with(&sim.base_url()), "absolute: {next}");
        assert!(next.contains("page=bookmark:"), "{next}");
        assert!(
            next.contains("state%5B%5D=deleted"),
            "filters are kept: {next}"
        );
        url = next.clone();
    }
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no enrollment twice");
    let mut expected: BTreeSet<u64> = world
        .enrollments
        .values()
        .filter(|e| e.course_id == course)
        .map(|e| e.id)
        .collect();
    expected.insert(added.expect("added"));
    assert_eq!(unique, expected);
    assert_eq!(pages, expected.len().div_ceil(7));

    // Default states: active and invited only.
    let default = get(
        &c,
        &format!(
            "{}/api/v1/courses/{course}/enrollments?per_page=100",
            sim.base_url()
        ),
        &token,
    )
    .await
    .json();
    assert!(
        default
            .as_array()
            .expect("array")
            .iter()
            .all(|e| ["active", "invited"].contains(&e["enrollment_state"].as_str().unwrap_or("")))
    );
    // A page number a client made up is refused.
    let made_up = get(
        &c,
        &format!(
            "{}/api/v1/courses/{course}/enrollments?page=2",
            sim.base_url()
        ),
        &token,
    )
    .await;
    assert_eq!(made_up.status, 400);
    // Numbered lists name their last page.
    let sections = get(
        &c,
        &format!(
            "{}/api/v1/courses/{course}/sections?per_page=1",
            sim.base_url()
        ),
        &token,
    )
    .await;
    assert!(sections.links()["last"].contains("page=2"));
    let missing = get(
        &c,
        &format!("{}/api/v1/courses/1/enrollments", sim.base_url()),
        &token,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["errors"][0]["message"],
        "The specified resource does not exist."
    );
    let unknown_route = get(&c, &format!("{}/api/v1/nothing", sim.base_url()), &token).await;
    assert_eq!(unknown_route.status, 404);
    assert!(unknown_route.json()["errors"].is_array());
}

fn row_section(page: &Answer) -> u64 {
    page.json()[0]["course_section_id"]
        .as_u64()
        .expect("section")
}

const ROSTER_QUERY: &str = r#"
query Roster($courseId: ID!, $first: Int, $after: String, $states: [EnrollmentWorkflowState!]) {
  course(id: $courseId) {
    _id
    __typename
    title: name
    enrollmentsConnection(first: $first, after: $after, filter: {states: $states}) {
      pageInfo { hasNextPage endCursor }
      edges {
        cursor
        node {
          _id
          state
          type
          section { _id name }
          user { _id name sortableName sisId }
        }
      }
    }
  }
}
"#;

#[tokio::test]
async fn graphql_roster_pages_through_enrollments_like_rest() {
    let world = World::from_events(&scenario().events);
    let course = first_course(&world);
    let sim = start(fast(), world).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;

    let mut after: Option<String> = None;
    let mut from_graphql = BTreeSet::new();
    let mut pages = 0;
    loop {
        let a = graphql(
            &c,
            &sim,
            &token,
            json!({
                "query": ROSTER_QUERY,
                "operationName": "Roster",
                "variables": {
                    "courseId": course.to_string(),
                    "first": 6,
                    "after": after,
                    "states": ["active", "invited"],
                },
            }),
        )
        .await;
        assert_eq!(a.status, 200);
        assert!(a.header("x-request-cost").is_some());
        let body = a.json();
        assert!(body.get("errors").is_none(), "{body}");
        let course_data = &body["data"]["course"];
        assert_eq!(course_data["_id"], course.to_string());
        assert_eq!(course_data["__typename"], "Course");
        assert!(course_data["title"].is_string());
        let connection = &course_data["enrollmentsConnection"];
        let edges = connection["edges"].as_array().expect("edges");
        assert!(edges.len() <= 6);
        for edge in edges {
            let node = &edge["node"];
            assert!(edge["cursor"].is_string());
            from_graphql.insert((
                node["_id"].as_str().expect("id").to_string(),
                node["state"].as_str().expect("state").to_string(),
                node["type"].as_str().expect("type").to_string(),
                node["section"]["_id"]
                    .as_str()
                    .expect("section")
                    .to_string(),
                node["user"]["_id"].as_str().expect("user").to_string(),
            ));
        }
        pages += 1;
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_string);
        assert!(pages < 20);
    }
    assert!(pages > 1);

    let mut from_rest = BTreeSet::new();
    let mut url = format!(
        "{}/api/v1/courses/{course}/enrollments?per_page=10",
        sim.base_url()
    );
    loop {
        let page = get(&c, &url, &token).await;
        for e in page.json().as_array().expect("array") {
            from_rest.insert((
                e["id"].to_string(),
                e["enrollment_state"].as_str().expect("state").to_string(),
                e["type"].as_str().expect("type").to_string(),
                e["course_section_id"].to_string(),
                e["user_id"].to_string(),
            ));
        }
        match page.links().get("next") {
            Some(next) => url = next.clone(),
            None => break,
        }
    }
    assert!(!from_rest.is_empty());
    assert_eq!(from_graphql, from_rest);

    // Sections and modules through connections with defaults, aliases and literals.
    let body = graphql(
        &c,
        &sim,
        &token,
        json!({ "query": format!(
            "{{ c: course(id: \"{course}\") {{ sectionsConnection {{ nodes {{ _id name sisId }} }} \
             modulesConnection(first: 100) {{ nodes {{ _id name position published }} pageInfo {{ hasNextPage hasPreviousPage startCursor }} }} }} }}"
        ) }),
    )
    .await
    .json();
    let sections = body["data"]["c"]["sectionsConnection"]["nodes"]
        .as_array()
        .expect("sections");
    assert_eq!(
        sections.len(),
        ScenarioConfig::default().sections_per_course
    );
    let modules = &body["data"]["c"]["modulesConnection"];
    assert_eq!(
        modules["nodes"].as_array().expect("modules").len(),
        ScenarioConfig::default().modules_per_course
    );
    assert_eq!(modules["nodes"][0]["published"], true);
    assert_eq!(modules["pageInfo"]["hasNextPage"], false);
    assert_eq!(modules["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(sim.stats().graphql_requests, pages + 1);
}

#[tokio::test]
async fn graphql_errors_follow_the_spec() {
    let world = World::from_events(&scenario().events);
    let course = first_course(&world);
    let sim = start(fast(), world).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let ask = |query: &str, variables: Value| {
        graphql(
            &c,
            &sim,
            &token,
            json!({ "query": query, "variables": variables }),
        )
    };

    let syntax = ask("{ course(id: \"1\") { name }", Value::Null).await;
    assert_eq!(syntax.status, 200);
    let body = syntax.json();
    assert!(body.get("data").is_none(), "{body}");
    let message = body["errors"][0]["message"].as_str().expect("message");
    assert!(message.starts_with("Parse error"), "{message}");
    assert!(body["errors"][0]["locations"][0]["line"].is_u64());

    let unknown = ask(
        &format!("{{ course(id: \"{course}\") {{ nope }} }}"),
        Value::Null,
    )
    .await
    .json();
    assert_eq!(
        unknown["errors"][0]["message"],
        "Field 'nope' doesn't exist on type 'Course'"
    );
    assert_eq!(
        unknown["errors"][0]["path"],
        json!(["query", "course", "nope"])
    );
    assert!(unknown.get("data").is_none());

    let missing = ask("query Q($id: ID!) { course(id: $id) { name } }", json!({}))
        .await
        .json();
    assert_eq!(
        missing["errors"][0]["message"],
        "Variable $id of type ID! was provided invalid value"
    );
    let undeclared = ask("{ course(id: $id) { name } }", Value::Null)
        .await
        .json();
    assert!(
        undeclared["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("not declared")
    );
    let bad_enum = ask(
        &format!(
            "{{ course(id: \"{course}\") {{ enrollmentsConnection(filter: {{states: [sleeping]}}) {{ nodes {{ _id }} }} }} }}"
        ),
        Value::Null,
    )
    .await
    .json();
    assert!(
        bad_enum["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("invalid value")
    );

    let not_found = ask("{ course(id: \"424242\") { name } }", Value::Null)
        .await
        .json();
    assert_eq!(not_found, json!({ "data": { "course": null } }));

    let fragment = ask(
        "query { course(id: \"1\") { ...F } } fragment F on Course { name }",
        Value::Null,
    )
    .await
    .json();
    assert!(
        fragment["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("Fragments")
    );
    let mutation = ask(
        "mutation { createModuleItem(input: {title: \"x\"}) { id } }",
        Value::Null,
    )
    .await
    .json();
    assert_eq!(
        mutation["errors"][0]["message"],
        "Field 'createModuleItem' doesn't exist on type 'Mutation'"
    );

    // An execution error nulls the field and keeps the rest.
    let partial = ask(
        &format!(
            "{{ course(id: \"{course}\") {{ name enrollmentsConnection(after: \"!!\") {{ nodes {{ _id }} }} }} }}"
        ),
        Value::Null,
    )
    .await
    .json();
    assert!(partial["data"]["course"]["name"].is_string());
    assert!(partial["data"]["course"]["enrollmentsConnection"].is_null());
    assert_eq!(
        partial["errors"][0]["path"],
        json!(["course", "enrollmentsConnection"])
    );

    // Auth and throttling apply to GraphQL as to REST.
    let anonymous = answer(
        c.post(format!("{}/api/graphql", sim.base_url()))
            .json(&json!({ "query": "{ course(id: \"1\") { name } }" })),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let bad_json = answer(
        c.post(format!("{}/api/graphql", sim.base_url()))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(bad_json.status, 400);
}

#[tokio::test]
async fn module_item_create_and_publish_emit_canvas_shaped_live_events() {
    let s = scenario();
    let world = World::from_events(&s.events);
    let latest = s.events.iter().map(|e| e.event_time).max().expect("events");
    let module = world.modules.values().next().expect("module").clone();
    let course = module.course_id;
    let before: Vec<u64> = world.items_of(module.id).iter().map(|i| i.id).collect();
    let sim = start(fast(), world).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let items_url = format!(
        "{}/api/v1/courses/{course}/modules/{}/items",
        sim.base_url(),
        module.id
    );

    let created = answer(
        c.post(&items_url)
            .bearer_auth(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("module_item[type]", "ExternalUrl"),
                ("module_item[title]", "Lecture 1 recording"),
                ("module_item[external_url]", "https://video.example.edu/1"),
                ("module_item[position]", "1"),
                ("module_item[new_tab]", "true"),
            ])),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let item = created.json();
    assert_eq!(item["type"], "ExternalUrl");
    assert_eq!(item["published"], false);
    assert_eq!(item["position"], 1);
    assert_eq!(item["new_tab"], true);
    assert_eq!(item["module_id"], module.id);
    assert_eq!(item["external_url"], "https://video.example.edu/1");
    let item_id = item["id"].as_u64().expect("id");

    let listed = get(&c, &items_url, &token).await.json();
    let order: Vec<u64> = listed
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(order[0], item_id);
    assert_eq!(&order[1..], before.as_slice(), "later items moved down");

    let published = answer(
        c.put(format!("{items_url}/{item_id}"))
            .bearer_auth(&token)
            .json(&json!({ "module_item": { "published": true } })),
    )
    .await;
    assert_eq!(published.status, 200);
    assert_eq!(published.json()["published"], true);

    let events = sim.take_live_events();
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_name.as_str())
            .collect::<Vec<_>>(),
        ["module_item_created", "module_item_updated"]
    );
    assert!(sim.take_live_events().is_empty(), "drained");
    let reference = s
        .events
        .iter()
        .find(|e| e.event_name == "module_item_created")
        .expect("scenario item");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    for (event, state) in events.iter().zip(["unpublished", "active"]) {
        let body = &event.canvas["body"];
        assert_eq!(keys(body), keys(&reference.canvas["body"]));
        assert_eq!(body["workflow_state"], state);
        assert_eq!(body["position"], 1);
        assert_eq!(body["context_type"], "Course");
        let local: u64 = body["module_item_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("n");
        assert!(local < SHARD_FACTOR, "module item events carry local ids");
        assert_eq!(global_id(local), item_id);
        assert_eq!(
            event.entity,
            ("module_item".to_string(), item_id.to_string())
        );
        assert_eq!(
            body["module_id"],
            (module.id % SHARD_FACTOR).to_string().as_str()
        );
        let meta = &event.canvas["metadata"];
        assert_eq!(meta["event_name"], event.event_name.as_str());
        assert_eq!(meta["producer"], "canvas");
        assert_eq!(meta["event_time"], event.event_time_str());
        assert_eq!(meta["context_id"], course.to_string().as_str());
        assert_eq!(meta["root_account_id"], global_id(1).to_string().as_str());
        assert_eq!(
            meta["root_account_uuid"],
            reference.canvas["metadata"]["root_account_uuid"]
        );
        assert_eq!(meta["developer_key_id"], DEFAULT_CLIENT_ID);
        assert!(meta["request_id"].is_string() && meta["user_id"].is_string());
        assert!(meta["hostname"].is_string() && meta["job_id"].is_null());
        assert!(event.event_time > latest, "new events win last-writer-wins");
    }
    assert!(events[1].event_time > events[0].event_time);

    // Bad requests say why.
    let post = |body: Value| answer(c.post(&items_url).bearer_auth(&token).json(&body));
    let no_title = post(
        json!({ "module_item": { "type": "ExternalUrl", "external_url": "https://x.example" } }),
    )
    .await;
    assert_eq!(no_title.status, 400);
    assert!(no_title.text.contains("title"), "{}", no_title.text);
    let no_url = post(json!({ "module_item": { "type": "ExternalUrl", "title": "x" } })).await;
    assert_eq!(no_url.status, 400);
    assert!(no_url.text.contains("external_url"));
    let bad_url = post(json!({ "module_item": { "type": "ExternalUrl", "title": "x", "external_url": "javascript:alert(1)" } })).await;
    assert_eq!(bad_url.status, 400);
    let quiz =
        post(json!({ "module_item": { "type": "Quiz", "title": "x", "content_id": 1 } })).await;
    assert_eq!(quiz.status, 422);
    assert!(
        quiz.json()["errors"][0]["message"]
            .as_str()
            .expect("m")
            .contains("Quiz")
    );
    let nothing = answer(c.post(&items_url).bearer_auth(&token).json(&json!({}))).await;
    assert_eq!(nothing.status, 400);
    let other_module = answer(
        c.post(format!(
            "{}/api/v1/courses/{course}/modules/999/items",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({ "module_item": { "type": "SubHeader", "title": "x" } })),
    )
    .await;
    assert_eq!(other_module.status, 404);
    assert!(
        sim.take_live_events().is_empty(),
        "failed requests emit nothing"
    );

    // Deleting emits module_item_updated with deleted, and the item leaves the list.
    let deleted = answer(
        c.delete(format!("{items_url}/{item_id}"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(deleted.status, 200);
    let events = sim.take_live_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].canvas["body"]["workflow_state"], "deleted");
    let listed = get(&c, &items_url, &token).await.json();
    assert_eq!(listed.as_array().expect("items").len(), before.len());
    assert_eq!(listed[0]["position"], 1);
}

fn event_names(events: &[crate::canvas_live_events::SimEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_name.as_str()).collect()
}

#[tokio::test]
async fn modules_are_created_published_and_deleted_with_their_items() {
    let s = scenario();
    let world = World::from_events(&s.events);
    let by_hand = world
        .modules
        .values()
        .find(|m| m.workflow_state != "deleted" && !world.items_of(m.id).is_empty())
        .expect("a module with items")
        .clone();
    let course = by_hand.course_id;
    let last = world
        .modules
        .values()
        .filter(|m| m.course_id == course && m.workflow_state != "deleted")
        .map(|m| m.position)
        .max()
        .expect("modules");
    let sim = start(fast(), world).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let modules_url = format!("{}/api/v1/courses/{course}/modules", sim.base_url());
    let send_form = |request: reqwest::RequestBuilder, pairs: &[(&str, &str)]| {
        request
            .bearer_auth(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs))
    };

    // Create: unpublished, last, answered as GET renders it, with the usual cost headers.
    let requests_before = sim.stats().api_requests;
    let created = answer(send_form(
        c.post(&modules_url),
        &[("module[name]", "Lecture recordings & notes")],
    ))
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    assert!(created.header("x-request-cost").is_some());
    assert!(created.header("x-rate-limit-remaining").is_some());
    assert_eq!(sim.stats().api_requests, requests_before + 1);
    let module = created.json();
    assert_eq!(module["name"], "Lecture recordings & notes");
    assert_eq!(module["published"], false);
    assert_eq!(module["position"], last + 1);
    assert_eq!(module["items_count"], 0);
    let id = module["id"].as_u64().expect("id");
    let module_url = format!("{modules_url}/{id}");
    assert_eq!(get(&c, &module_url, &token).await.json(), module);

    let item = answer(send_form(
        c.post(format!("{module_url}/items")),
        &[
            ("module_item[type]", "ExternalUrl"),
            ("module_item[title]", "Lecture 1"),
            ("module_item[external_url]", "https://video.example.edu/1"),
        ],
    ))
    .await
    .json();
    let item_url = format!("{module_url}/items/{}", item["id"]);

    // Publish the module only (as the client does), then again letting Canvas publish its
    // items too; publishing twice is harmless.
    let published = answer(send_form(
        c.put(&module_url),
        &[
            ("module[published]", "true"),
            ("module[skip_content_tags]", "true"),
        ],
    ))
    .await;
    assert_eq!(published.status, 200, "{}", published.text);
    assert_eq!(published.json()["published"], true);
    assert_eq!(get(&c, &item_url, &token).await.json()["published"], false);
    let again = answer(
        c.put(&module_url)
            .bearer_auth(&token)
            .json(&json!({ "module": { "published": true } })),
    )
    .await;
    assert_eq!(again.json()["published"], true);
    assert_eq!(get(&c, &item_url, &token).await.json()["published"], true);

    let listed = get(
        &c,
        &format!("{modules_url}?include[]=items&per_page=100"),
        &token,
    )
    .await
    .json();
    let newest = listed.as_array().expect("modules").last().expect("module");
    assert_eq!(newest["id"], id);
    assert_eq!(newest["items"][0]["title"], "Lecture 1");

    let events = sim.take_live_events();
    assert_eq!(
        event_names(&events),
        [
            "module_created",
            "module_item_created",
            "module_updated",
            "module_updated",
            "module_item_updated",
        ]
    );
    let reference = s
        .events
        .iter()
        .find(|e| e.event_name == "module_created")
        .expect("scenario module");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    let module_events: Vec<_> = events
        .iter()
        .filter(|e| e.event_name.starts_with("module_") && e.entity.0 == "module")
        .collect();
    assert_eq!(module_events.len(), 3);
    for (event, state) in module_events
        .iter()
        .zip(["unpublished", "active", "active"])
    {
        let body = &event.canvas["body"];
        assert_eq!(keys(body), keys(&reference.canvas["body"]));
        assert_eq!(body["workflow_state"], state);
        assert_eq!(body["position"], last + 1);
        assert_eq!(body["module_id"], (id % SHARD_FACTOR).to_string().as_str());
        assert_eq!(event.entity, ("module".to_string(), id.to_string()));
        let meta = &event.canvas["metadata"];
        assert_eq!(meta["context_id"], course.to_string().as_str());
        assert_eq!(meta["developer_key_id"], DEFAULT_CLIENT_ID);
    }
    assert_eq!(events[4].canvas["body"]["workflow_state"], "active");

    // Refusals say why and change nothing.
    let anonymous = answer(c.post(&modules_url).body(form(&[("module[name]", "x")]))).await;
    assert_eq!(anonymous.status, 401);
    let nothing = answer(send_form(c.post(&modules_url), &[])).await;
    assert_eq!(nothing.status, 400);
    assert!(nothing.text.contains("missing module parameter"));
    let blank = answer(send_form(c.post(&modules_url), &[("module[name]", " ")])).await;
    assert_eq!(blank.status, 400);
    assert!(blank.text.contains("missing module name"));
    let bad_flag = answer(send_form(
        c.put(&module_url),
        &[("module[published]", "maybe")],
    ))
    .await;
    assert_eq!(bad_flag.status, 400);
    assert!(bad_flag.text.contains("module[published]"));
    let no_course = answer(send_form(
        c.post(format!("{}/api/v1/courses/999/modules", sim.base_url())),
        &[("module[name]", "x")],
    ))
    .await;
    assert_eq!(no_course.status, 404);
    assert!(
        sim.take_live_events().is_empty(),
        "failed requests emit nothing"
    );

    // Delete: answers the deleted module; items first, then the module, as Canvas does.
    let deleted = answer(c.delete(&module_url).bearer_auth(&token)).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json()["id"], id);
    assert_eq!(deleted.json()["published"], false);
    let events = sim.take_live_events();
    assert_eq!(
        event_names(&events),
        ["module_item_updated", "module_updated"]
    );
    assert!(
        events
            .iter()
            .all(|e| e.canvas["body"]["workflow_state"] == "deleted")
    );
    assert_eq!(get(&c, &module_url, &token).await.status, 404);
    assert_eq!(
        get(&c, &format!("{module_url}/items"), &token).await.status,
        404
    );
    assert_eq!(get(&c, &item_url, &token).await.status, 404);
    let again = answer(send_form(
        c.put(&module_url),
        &[("module[published]", "true")],
    ))
    .await;
    assert_eq!(again.status, 404);
    assert_eq!(
        answer(c.delete(&module_url).bearer_auth(&token))
            .await
            .status,
        404
    );
    let listed = get(&c, &format!("{modules_url}?per_page=100"), &token)
        .await
        .json();
    assert!(
        listed
            .as_array()
            .expect("modules")
            .iter()
            .all(|m| m["id"] != id)
    );

    // A person deletes a module by hand in the UI: same events, from a browser session.
    let items = sim.world_snapshot().items_of(by_hand.id).len();
    sim.delete_module(course, by_hand.id)
        .expect("delete by hand");
    let events = sim.take_live_events();
    assert_eq!(events.len(), items + 1);
    assert_eq!(events[items].event_name, "module_updated");
    assert_eq!(events[items].canvas["body"]["workflow_state"], "deleted");
    let meta = &events[items].canvas["metadata"];
    assert_eq!(meta["http_method"], "DELETE");
    assert!(meta.get("developer_key_id").is_none(), "no token, no key");
    assert!(meta["url"].as_str().expect("url").ends_with(&format!(
        "/courses/{}/modules/{}",
        course % SHARD_FACTOR,
        by_hand.id % SHARD_FACTOR
    )));
    let by_hand_url = format!("{modules_url}/{}", by_hand.id);
    assert_eq!(get(&c, &by_hand_url, &token).await.status, 404);
    assert!(matches!(
        sim.delete_module(course, by_hand.id),
        Err(ApiSimError::NotFound { kind: "module", .. })
    ));

    // The events fold back into the world the API serves.
    let mut all = s.events.clone();
    all.extend(module_events.iter().map(|e| (*e).clone()));
    all.extend(events);
    let now = sim.world_snapshot();
    let folded = World::from_events(&all);
    let state = |w: &World, m: u64| w.module(m).map(|m| m.workflow_state.clone());
    assert_eq!(state(&folded, by_hand.id).as_deref(), Some("deleted"));
    assert_eq!(state(&folded, by_hand.id), state(&now, by_hand.id));
    assert!(folded.items_of(by_hand.id).is_empty());
}

/// A fresh simulator, a client, a token and the URL of `GET /users/self`.
async fn users_self() -> (CanvasApiSim, reqwest::Client, String, String) {
    let sim = start(fast(), World::default()).await;
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let url = format!("{}/api/v1/users/self", sim.base_url());
    (sim, client(), token, url)
}

#[tokio::test]
async fn inject_errors_answers_exactly_n_5xx_and_latency_makes_clients_time_out() {
    let (sim, c, token, url) = users_self().await;
    sim.inject_errors(3, 503);
    assert_eq!(sim.stats().pending_injected_errors, 3);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let a = get(&c, &url, &token).await;
        if a.status == 503 {
            assert!(a.json()["errors"][0]["message"].is_string());
            assert!(a.header("x-request-cost").is_some());
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [503, 503, 503, 200, 200, 200]);
    let stats = sim.stats();
    assert_eq!(stats.injected_errors, 3);
    assert_eq!(stats.pending_injected_errors, 0);

    sim.set_latency(Duration::from_millis(400));
    assert_eq!(sim.stats().latency, Duration::from_millis(400));
    let slow = c
        .get(&url)
        .bearer_auth(&token)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(slow.is_err_and(|e| e.is_timeout()));
    sim.set_latency(Duration::ZERO);
    assert_eq!(get(&c, &url, &token).await.status, 200);
}

#[tokio::test]
async fn force_throttle_refuses_exactly_n_requests_as_over_the_limit() {
    let (sim, c, token, url) = users_self().await;
    sim.force_throttle(2);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let a = get(&c, &url, &token).await;
        if a.status == 403 {
            assert!(a.text.contains("Rate Limit Exceeded"), "{}", a.text);
            assert_eq!(a.header("x-rate-limit-remaining"), Some("0.0000"));
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [403, 403, 200, 200]);
    assert_eq!(sim.stats().throttled, 2);
}

#[test]
fn world_from_events_matches_the_scenario_truth() {
    let s = scenario();
    let world = World::from_events(&s.events);
    let truth = Truth::from_events(&s.events);
    let check = |kind: &str, states: BTreeMap<String, String>| {
        let expected: BTreeMap<String, String> = truth
            .of_type(kind)
            .map(|(id, st)| {
                (
                    id.to_string(),
                    st.workflow_state.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(states, expected, "{kind}");
    };
    let states = |pairs: Vec<(u64, String)>| -> BTreeMap<String, String> {
        pairs
            .into_iter()
            .map(|(id, st)| (id.to_string(), st))
            .collect()
    };
    check(
        "enrollment",
        states(
            world
                .enrollments
                .values()
                .map(|e| (e.id, e.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "section",
        states(
            world
                .sections
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "module",
        states(
            world
                .modules
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "module_item",
        states(
            world
                .module_items
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "course",
        states(
            world
                .courses
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "user",
        states(
            world
                .users
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "assignment",
        states(
            world
                .assignments
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    check(
        "submission",
        states(
            world
                .submissions
                .values()
                .map(|x| (x.id, x.workflow_state.clone()))
                .collect(),
        ),
    );
    for (id, st) in truth.of_type("submission") {
        let sub = &world.submissions[&id.parse::<u64>().expect("id")];
        assert_eq!(sub.grade, st.grade);
        assert_eq!(sub.score, st.score);
    }
    // API forms derived from the live-event states.
    assert!(world.courses.values().all(|c| c.api_state() == "available"));
    assert!(world.courses.values().all(|c| c.sis_course_id.is_some()));
    assert!(
        world
            .module_items
            .values()
            .all(|i| i.published() && i.item_type == "Assignment")
    );
    let enrollment_created = s
        .events
        .iter()
        .find(|e| e.event_name == "enrollment_created")
        .expect("event");
    let e = world
        .enrollment(enrollment_created.entity.1.parse().expect("id"))
        .expect("enrollment");
    assert_eq!(
        e.course_section_id.to_string(),
        enrollment_created.canvas["body"]["course_section_id"]
    );
    assert_eq!(world.hostname, s.config.hostname);
    // Input order does not matter.
    let mut reversed = s.events.clone();
    reversed.reverse();
    assert_eq!(World::from_events(&reversed).enrollments, world.enrollments);
}

#[tokio::test]
async fn roster_mutations_emit_events_that_fold_back_into_the_same_world() {
    let s = scenario();
    let world = World::from_events(&s.events);
    let course = first_course(&world);
    let sections: Vec<u64> = world
        .sections
        .values()
        .filter(|x| x.course_id == course)
        .map(|x| x.id)
        .collect();
    let victim = world
        .enrollments
        .values()
        .find(|e| e.course_id == course && e.workflow_state == "active")
        .expect("active")
        .id;
    let sim = start(fast(), world).await;
    let user = sim.add_user("Grace Hopper");
    let enrollment = sim
        .enroll(course, sections[0], user, "StudentEnrollment")
        .expect("enroll");
    sim.set_enrollment_state(victim, "deleted").expect("delete");
    sim.set_enrollment_state(victim, "deleted")
        .expect("unchanged: no event");
    sim.rename_section(sections[0], "Renamed").expect("rename");
    let new_section = sim.add_section(course, "Evening").expect("section");
    sim.delete_section(sections[1]).expect("delete section");
    assert!(matches!(
        sim.enroll(course, sections[1], user, "StudentEnrollment"),
        Err(ApiSimError::NotFound { .. })
    ));
    assert!(matches!(
        sim.set_enrollment_state(enrollment, "sleeping"),
        Err(ApiSimError::Invalid(_))
    ));
    let events = sim.take_live_events();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        &names[..5],
        [
            "user_created",
            "enrollment_created",
            "enrollment_updated",
            "course_section_updated",
            "course_section_created",
        ]
    );
    assert!(
        names[5..]
            .iter()
            .all(|n| *n == "enrollment_updated" || *n == "course_section_updated")
    );
    assert_eq!(names.last(), Some(&"course_section_updated"));
    assert!(events.windows(2).all(|w| w[0].event_time < w[1].event_time));

    // Same body fields as the generator's events of that type.
    let keys = |v: &Value| -> BTreeSet<String> {
        v["body"]
            .as_object()
            .expect("body")
            .keys()
            .cloned()
            .collect()
    };
    for event in &events {
        let reference_name = match event.event_name.as_str() {
            "course_section_updated" => "course_section_created",
            "enrollment_updated" => "enrollment_created",
            other => other,
        };
        let reference = s
            .events
            .iter()
            .find(|e| e.event_name == reference_name)
            .expect("reference");
        assert_eq!(
            keys(&event.canvas),
            keys(&reference.canvas),
            "{}",
            event.event_name
        );
        let meta = &event.canvas["metadata"];
        assert!(meta["job_id"].is_string() && meta["job_tag"].is_string());
    }
    let created = &events[1].canvas["body"];
    assert_eq!(created["enrollment_id"], enrollment.to_string().as_str());
    assert_eq!(created["workflow_state"], "active");
    assert_eq!(created["user_name"], "Grace Hopper");
    let section_event = &events[4];
    assert_eq!(
        section_event.entity,
        ("section".to_string(), new_section.to_string())
    );
    assert!(
        section_event.canvas["body"]["course_section_id"]
            .as_str()
            .expect("id")
            .parse::<u64>()
            .expect("n")
            < SHARD_FACTOR
    );

    // The scenario plus these events folds into what the simulator serves.
    let snapshot = sim.world_snapshot();
    let mut all = s.events.clone();
    all.extend(events);
    let folded = World::from_events(&all);
    let states = |w: &World| -> Vec<(u64, String, u64)> {
        w.enrollments
            .values()
            .map(|e| (e.id, e.workflow_state.clone(), e.course_section_id))
            .collect()
    };
    assert_eq!(states(&folded), states(&snapshot));
    let sections_of = |w: &World| -> Vec<(u64, String, String)> {
        w.sections
            .values()
            .map(|x| (x.id, x.name.clone(), x.workflow_state.clone()))
            .collect()
    };
    assert_eq!(sections_of(&folded), sections_of(&snapshot));
    assert!(
        snapshot
            .enrollments
            .values()
            .filter(|e| e.course_section_id == sections[1])
            .all(|e| e.workflow_state == "deleted"),
        "deleting a section deletes its enrollments"
    );

    // REST reflects it.
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let listed = get(
        &c,
        &format!("{}/api/v1/courses/{course}/sections", sim.base_url()),
        &token,
    )
    .await
    .json();
    let names: BTreeSet<&str> = listed
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert!(names.contains("Renamed") && names.contains("Evening"));
    assert_eq!(names.len(), sections.len());

    // A silent change is one whose live event was lost: only the API knows.
    sim.mutate_silently(|w| {
        if let Some(e) = w.enrollments.get_mut(&enrollment) {
            e.workflow_state = "inactive".into();
        }
    });
    assert!(sim.take_live_events().is_empty());
    assert_eq!(
        sim.world_snapshot().enrollments[&enrollment].workflow_state,
        "inactive"
    );
}

#[tokio::test]
async fn synthetic_worlds_are_seeded_and_served_with_local_or_string_ids() {
    let a = World::synthetic(9, 4, 5..=12);
    assert_eq!(a, World::synthetic(9, 4, 5..=12));
    assert_ne!(a.enrollments, World::synthetic(10, 4, 5..=12).enrollments);
    assert_eq!(a.courses.len(), 4);
    for course in a.courses.values() {
        let students = a
            .enrollments
            .values()
            .filter(|e| e.course_id == course.id && e.enrollment_type == "StudentEnrollment")
            .count();
        assert!((5..=12).contains(&students), "{students}");
        let sections = a
            .sections
            .values()
            .filter(|s| s.course_id == course.id)
            .count();
        assert!((1..=3).contains(&sections));
        assert_eq!(
            a.modules
                .values()
                .filter(|m| m.course_id == course.id)
                .count(),
            2
        );
    }
    assert!(
        a.enrollments
            .keys()
            .chain(a.users.keys())
            .all(|id| id % SHARD_FACTOR > LOCAL_ID_BASE)
    );

    let course = first_course(&a);
    let local = course % SHARD_FACTOR;
    let sim = start(
        ApiSimConfig {
            id_form: IdForm::Local,
            ..fast()
        },
        a,
    )
    .await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    // Either id form in the URL; local ids in the answer.
    for id in [course, local] {
        let answer = get(
            &c,
            &format!("{}/api/v1/courses/{id}", sim.base_url()),
            &token,
        )
        .await;
        assert_eq!(answer.json()["id"], local);
    }
    let strings = answer(
        c.get(format!(
            "{}/api/v1/courses/{local}/modules?include[]=items",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .header("accept", "application/json+canvas-string-ids"),
    )
    .await
    .json();
    let module = &strings[0];
    assert!(module["id"].is_string());
    assert!(module["items"][0]["id"].is_string());
    assert_eq!(
        module["items_count"],
        module["items"].as_array().expect("items").len()
    );
    let sis = get(
        &c,
        &format!(
            "{}/api/v1/courses/sis_course_id:SYN.9.00000",
            sim.base_url()
        ),
        &token,
    )
    .await;
    assert_eq!(sis.json()["id"], local);
    let listed = get(
        &c,
        &format!(
            "{}/api/v1/accounts/1/courses?state[]=available&per_page=3",
            sim.base_url()
        ),
        &token,
    )
    .await;
    assert_eq!(listed.json().as_array().expect("courses").len(), 3);
    assert!(listed.links()["next"].contains("state%5B%5D=available&page=2&per_page=3"));
}

#[tokio::test]
async fn modules_with_many_items_omit_inline_items() {
    let mut world = World::synthetic(1, 1, 1..=1);
    let course = first_course(&world);
    let module = *world.modules.keys().next().expect("module");
    let mut events = Vec::new();
    for n in 0..11 {
        world
            .add_module_item(
                course,
                module,
                &NewModuleItem {
                    item_type: Some("SubHeader".into()),
                    title: Some(format!("Heading {n}")),
                    ..NewModuleItem::default()
                },
                &Origin::sis_import(),
                &mut events,
            )
            .expect("item");
    }
    assert_eq!(events.len(), 11);
    let sim = start(fast(), world).await;
    let c = client();
    let token = sim
        .issue_grant(DEFAULT_CLIENT_ID)
        .expect("grant")
        .access_token;
    let modules = get(
        &c,
        &format!(
            "{}/api/v1/courses/{course}/modules?include[]=items",
            sim.base_url()
        ),
        &token,
    )
    .await
    .json();
    let big = modules
        .as_array()
        .expect("modules")
        .iter()
        .find(|m| m["id"] == module)
        .expect("module");
    assert!(big.get("items").is_none(), "more than 10 items: not inline");
    assert!(big["items_count"].as_u64().expect("count") > 10);
    let small = modules
        .as_array()
        .expect("modules")
        .iter()
        .find(|m| m["id"] != module)
        .expect("module");
    assert!(small["items"].is_array());
}
