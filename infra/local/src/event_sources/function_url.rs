//! Function URLs on local ports.

use super::*;

/// Lambda's synchronous invocation payload limit (6 MB), applied to the body.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FunctionUrlOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// The function's Timeout; a slower handler answers 502 as a URL does.
    pub timeout: Duration,
    /// Stops the server with this token (in addition to `stop`).
    pub shutdown: Option<ShutdownToken>,
}

impl Default for FunctionUrlOptions {
    fn default() -> Self {
        Self {
            port: 0,
            timeout: Duration::from_secs(30),
            shutdown: None,
        }
    }
}

struct UrlState {
    handler: Arc<dyn HttpHandler>,
    counters: Arc<Counters>,
    timeout: Duration,
}

/// A local stand-in for a Lambda function URL.
pub struct FunctionUrlServer {
    url: String,
    addr: SocketAddr,
    task: Background,
    counters: Arc<Counters>,
}

impl FunctionUrlServer {
    /// Serves `handler` on `127.0.0.1:port` (0 = any free port).
    pub async fn start(handler: Arc<dyn HttpHandler>, port: u16) -> Result<Self, EventSourceError> {
        Self::start_with(
            handler,
            FunctionUrlOptions {
                port,
                ..FunctionUrlOptions::default()
            },
        )
        .await
    }

    pub async fn start_with(
        handler: Arc<dyn HttpHandler>,
        options: FunctionUrlOptions,
    ) -> Result<Self, EventSourceError> {
        let port = options.port;
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|source| EventSourceError::Bind { port, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EventSourceError::Bind { port, source })?;
        let shutdown = options
            .shutdown
            .as_ref()
            .map_or_else(ShutdownToken::new, ShutdownToken::child);
        let counters = Arc::new(Counters::default());
        let state = Arc::new(UrlState {
            handler,
            counters: counters.clone(),
            timeout: options.timeout,
        });
        let app = axum::Router::new()
            .fallback(serve_function_url)
            .with_state(state)
            // The body limit is enforced in the handler, with Lambda's answer.
            .layer(axum::extract::DefaultBodyLimit::disable());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "function URL server failed");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/"),
            addr,
            task: Background {
                shutdown,
                task: Some(task),
                what: "function URL server",
            },
            counters,
        })
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting, lets in-flight requests finish.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

async fn serve_function_url(
    axum::extract::State(state): axum::extract::State<Arc<UrlState>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;

    let (parts, body) = request.into_parts();
    // Refused by the URL before the function runs: neither an invocation nor an error.
    let Ok(body) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else {
        return (
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"),
        )
            .into_response();
    };
    add(&state.counters.invocations, 1);
    let request = http::Request::from_parts(parts, body);
    let outcome = tokio::time::timeout(
        state.timeout,
        AssertUnwindSafe(state.handler.handle(request)).catch_unwind(),
    )
    .await;
    match outcome {
        // A 5xx the handler chose is an answer, not a function error (Lambda counts neither
        // in `Errors`); the function's own metrics count those.
        Ok(Ok(response)) => response.into_response(),
        // What a function URL answers when the function errors or times out.
        Ok(Err(_panic)) => {
            add(&state.counters.failed_invocations, 1);
            tracing::error!("function URL handler panicked");
            (http::StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
        }
        Err(_elapsed) => {
            add(&state.counters.failed_invocations, 1);
            tracing::warn!(timeout = ?state.timeout, "function URL handler timed out");
            (http::StatusCode::BAD_GATEWAY, "Internal Server Error").into_response()
        }
    }
}
