//! Canvas's OAuth2 flow: authorization codes, access tokens that expire, refresh tokens that
//! stay the same across refreshes, grants that can be revoked.
//!
//! - `GET /login/oauth2/auth?client_id&response_type=code&redirect_uri&state` approves at
//!   once and redirects with `code` and `state`.
//! - `POST /login/oauth2/token` (form or JSON): `authorization_code` (single-use code) and
//!   `refresh_token` grants. Unknown client: 401 `invalid_client`; bad code or refresh
//!   token: 400 `invalid_grant`.
//! - `DELETE /login/oauth2/token` with a bearer token: logout, revoking the whole grant.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};

use super::ApiSimError;
use super::params::{Params, encode};
use super::rest::Render;
use super::server::{App, bearer_token, lock, unauthorized_response};

/// Tokens of one grant, as the token endpoint answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub refresh_token: String,
    /// Whole seconds the access token lives.
    pub expires_in: u64,
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Caller {
    pub(crate) token: String,
    pub(crate) user_id: u64,
    pub(crate) client_id: String,
}

/// OAuth error answers (`{"error", "error_description"}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenError {
    InvalidClient(String),
    InvalidGrant(String),
    InvalidRequest(String),
    UnsupportedGrantType(String),
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (status, code, description) = match self {
            Self::InvalidClient(d) => (StatusCode::UNAUTHORIZED, "invalid_client", d),
            Self::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
            Self::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
            Self::UnsupportedGrantType(d) => (StatusCode::BAD_REQUEST, "unsupported_grant_type", d),
        };
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "error": code, "error_description": description }).to_string(),
        )
            .into_response()
    }
}

#[derive(Debug)]
struct Code {
    client_id: String,
    redirect_uri: Option<String>,
    user_id: u64,
    issued: Instant,
}

#[derive(Debug)]
struct Grant {
    client_id: String,
    user_id: u64,
    revoked: bool,
}

#[derive(Debug)]
struct Access {
    refresh_token: String,
    expires_at: Instant,
    revoked: bool,
}

/// Developer keys, codes, grants (keyed by refresh token) and access tokens.
#[derive(Debug)]
pub(crate) struct OAuth {
    clients: HashMap<String, String>,
    lifetime: Duration,
    code_lifetime: Duration,
    refresh_invalidates: bool,
    codes: HashMap<String, Code>,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Access>,
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Canvas tokens look like `<id>~<64 characters>`.
fn new_token() -> String {
    format!("2107~{}", random_text(64))
}

impl OAuth {
    pub(crate) fn new(
        clients: &[(String, String)],
        lifetime: Duration,
        code_lifetime: Duration,
        refresh_invalidates: bool,
    ) -> Self {
        Self {
            clients: clients.iter().cloned().collect(),
            lifetime,
            code_lifetime,
            refresh_invalidates,
            codes: HashMap::new(),
            grants: HashMap::new(),
            tokens: HashMap::new(),
        }
    }

    fn expires_in(&self) -> u64 {
        self.lifetime.as_secs()
    }

    fn check_client(&self, client_id: &str, secret: Option<&str>) -> Result<(), TokenError> {
        match self.clients.get(client_id) {
            None => Err(TokenError::InvalidClient("unknown client".into())),
            Some(expected) if secret != Some(expected.as_str()) => {
                Err(TokenError::InvalidClient("invalid client".into()))
            }
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn knows_client(&self, client_id: &str) -> bool {
        self.clients.contains_key(client_id)
    }

    /// The user approved: a single-use code for `client_id`.
    pub(crate) fn authorize(
        &mut self,
        client_id: &str,
        redirect_uri: Option<&str>,
        user_id: u64,
    ) -> Result<String, ApiSimError> {
        if !self.knows_client(client_id) {
            return Err(ApiSimError::UnknownClient(client_id.into()));
        }
        let code = random_text(64);
        self.codes.insert(
            code.clone(),
            Code {
                client_id: client_id.into(),
                redirect_uri: redirect_uri.map(str::to_string),
                user_id,
                issued: Instant::now(),
            },
        );
        Ok(code)
    }

    fn access_token(&mut self, refresh_token: &str) -> String {
        let token = new_token();
        self.tokens.insert(
            token.clone(),
            Access {
                refresh_token: refresh_token.into(),
                expires_at: Instant::now() + self.lifetime,
                revoked: false,
            },
        );
        token
    }

    /// A new grant (refresh token plus first access token) without the HTTP dance.
    pub(crate) fn issue(
        &mut self,
        client_id: &str,
        user_id: u64,
    ) -> Result<TokenGrant, ApiSimError> {
        if !self.knows_client(client_id) {
            return Err(ApiSimError::UnknownClient(client_id.into()));
        }
        let refresh_token = new_token();
        self.grants.insert(
            refresh_token.clone(),
            Grant {
                client_id: client_id.into(),
                user_id,
                revoked: false,
            },
        );
        let access_token = self.access_token(&refresh_token);
        Ok(TokenGrant {
            access_token,
            refresh_token,
            expires_in: self.expires_in(),
        })
    }

    /// `grant_type=authorization_code`: the code is consumed whatever the outcome.
    pub(crate) fn exchange_code(
        &mut self,
        client_id: &str,
        secret: Option<&str>,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<(TokenGrant, u64), TokenError> {
        self.check_client(client_id, secret)?;
        let Some(entry) = self.codes.remove(code) else {
            return Err(TokenError::InvalidGrant(
                "authorization_code not found".into(),
            ));
        };
        if entry.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "authorization_code was issued to another client".into(),
            ));
        }
        if entry.issued.elapsed() > self.code_lifetime {
            return Err(TokenError::InvalidGrant(
                "authorization_code expired".into(),
            ));
        }
        if let Some(expected) = &entry.redirect_uri
            && redirect_uri.is_some_and(|given| given != expected)
        {
            return Err(TokenError::InvalidGrant(
                "redirect_uri does not match the authorization request".into(),
            ));
        }
        let grant = self
            .issue(client_id, entry.user_id)
            .map_err(|e| TokenError::InvalidClient(e.to_string()))?;
        Ok((grant, entry.user_id))
    }

    /// `grant_type=refresh_token`: a new access token, the same refresh token.
    pub(crate) fn refresh(
        &mut self,
        client_id: &str,
        secret: Option<&str>,
        refresh_token: &str,
    ) -> Result<(String, u64), TokenError> {
        self.check_client(client_id, secret)?;
        let user_id = match self.grants.get(refresh_token) {
            Some(g) if !g.revoked && g.client_id == client_id => g.user_id,
            _ => return Err(TokenError::InvalidGrant("refresh_token not found".into())),
        };
        if self.refresh_invalidates {
            for access in self.tokens.values_mut() {
                if access.refresh_token == refresh_token {
                    access.revoked = true;
                }
            }
        }
        Ok((self.access_token(refresh_token), user_id))
    }

    /// Revokes a grant and every access token it issued; `false` if unknown.
    pub(crate) fn revoke_grant(&mut self, refresh_token: &str) -> bool {
        let Some(grant) = self.grants.get_mut(refresh_token) else {
            return false;
        };
        grant.revoked = true;
        for access in self.tokens.values_mut() {
            if access.refresh_token == refresh_token {
                access.revoked = true;
            }
        }
        true
    }

    /// Logout with an access token: the whole grant goes, as in Canvas.
    pub(crate) fn revoke_by_access_token(&mut self, access_token: &str) -> bool {
        let Some(refresh) = self
            .tokens
            .get(access_token)
            .map(|a| a.refresh_token.clone())
        else {
            return false;
        };
        self.revoke_grant(&refresh)
    }

    /// Every access token issued so far expires now (refresh tokens stay valid).
    pub(crate) fn expire_all(&mut self, now: Instant) {
        for access in self.tokens.values_mut() {
            access.expires_at = access.expires_at.min(now);
        }
    }

    /// The caller behind a token, or `None` if unknown, expired or revoked.
    pub(crate) fn validate(&self, token: &str, now: Instant) -> Option<Caller> {
        let access = self.tokens.get(token)?;
        if access.revoked || now >= access.expires_at {
            return None;
        }
        let grant = self.grants.get(&access.refresh_token)?;
        (!grant.revoked).then(|| Caller {
            token: token.to_string(),
            user_id: grant.user_id,
            client_id: grant.client_id.clone(),
        })
    }
}

/// Parameters of a token request: query string, then form or JSON body (body wins).
fn token_params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Params {
    let mut raw = query.unwrap_or_default().to_string();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body_pairs = if is_json {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|object| {
                object
                    .iter()
                    .filter_map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(format!("{}={}", encode(k), encode(&text)))
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            })
            .unwrap_or_default()
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    // Body parameters come first so `get` finds them before the query string's.
    if !body_pairs.is_empty() {
        raw = if raw.is_empty() {
            body_pairs
        } else {
            format!("{body_pairs}&{raw}")
        };
    }
    Params::parse(&raw)
}

/// Client credentials from the parameters or, failing that, HTTP Basic.
fn client_credentials(params: &Params, headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let id = params.get("client_id").map(str::to_string);
    let secret = params.get("client_secret").map(str::to_string);
    if id.is_some() {
        return (id, secret);
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v.trim()).ok())
        .and_then(|v| String::from_utf8(v).ok());
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => (Some(id.to_string()), Some(secret.to_string())),
        None => (None, secret),
    }
}

/// `POST /login/oauth2/token`.
pub(crate) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = token_params(&headers, query.as_deref(), &body);
    let grant_type = params.get("grant_type").unwrap_or("").to_string();
    {
        let mut stats = lock(&app.stats);
        let key = if grant_type.is_empty() {
            "missing".to_string()
        } else {
            grant_type.clone()
        };
        *stats.token_requests.entry(key).or_default() += 1;
    }
    let (client_id, secret) = client_credentials(&params, &headers);
    let Some(client_id) = client_id else {
        return TokenError::InvalidClient("client_id is required".into()).into_response();
    };
    let outcome = {
        let mut oauth = lock(&app.oauth);
        match grant_type.as_str() {
            "authorization_code" => match params.get("code") {
                Some(code) => oauth
                    .exchange_code(
                        &client_id,
                        secret.as_deref(),
                        code,
                        params.get("redirect_uri"),
                    )
                    .map(|(grant, user)| (grant.access_token, Some(grant.refresh_token), user)),
                None => Err(TokenError::InvalidRequest("code is required".into())),
            },
            "refresh_token" => match params.get("refresh_token") {
                Some(refresh) => oauth
                    .refresh(&client_id, secret.as_deref(), refresh)
                    .map(|(access, user)| (access, None, user)),
                None => Err(TokenError::InvalidRequest(
                    "refresh_token is required".into(),
                )),
            },
            "" => Err(TokenError::UnsupportedGrantType(
                "grant_type is required".into(),
            )),
            other => Err(TokenError::UnsupportedGrantType(format!(
                "grant_type {other} is not supported"
            ))),
        }
        .map(|(access, refresh, user)| (access, refresh, user, oauth.expires_in()))
    };
    match outcome {
        Ok((access_token, refresh_token, user_id, expires_in)) => {
            let render = Render::new(&app, &headers);
            let user = {
                let world = lock(&app.world);
                world
                    .user(user_id)
                    .map(|u| u.name.clone())
                    .unwrap_or_default()
            };
            let mut body = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "user": {
                    "id": render.id(user_id),
                    "name": user,
                    "global_id": user_id.to_string(),
                    "effective_locale": "en",
                },
                "expires_in": expires_in,
            });
            if let Some(refresh) = refresh_token {
                body["refresh_token"] = refresh.into();
            }
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// `DELETE /login/oauth2/token`: logout.
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let token = bearer_token(&headers, query.as_deref());
    let revoked = token
        .as_deref()
        .is_some_and(|t| lock(&app.oauth).revoke_by_access_token(t));
    if revoked {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        unauthorized_response(token.is_none())
    }
}

/// `GET /login/oauth2/auth`: approves at once and redirects back with the code.
pub(crate) async fn authorize(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let params = Params::parse(query.as_deref().unwrap_or_default());
    let client_id = params.get("client_id").unwrap_or_default();
    if !lock(&app.oauth).knows_client(client_id) {
        return TokenError::InvalidClient("unknown client".into()).into_response();
    }
    let Some(redirect_uri) = params.get("redirect_uri").filter(|u| !u.is_empty()) else {
        return TokenError::InvalidRequest("redirect_uri is required".into()).into_response();
    };
    let state = params.get("state");
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut location = if params.get("response_type") == Some("code") {
        let user = lock(&app.world).api_user.id;
        match lock(&app.oauth).authorize(client_id, Some(redirect_uri), user) {
            Ok(code) => format!("{redirect_uri}{separator}code={}", encode(&code)),
            Err(error) => return TokenError::InvalidClient(error.to_string()).into_response(),
        }
    } else {
        format!("{redirect_uri}{separator}error=unsupported_response_type")
    };
    if let Some(state) = state {
        location.push_str(&format!("&state={}", encode(state)));
    }
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}
