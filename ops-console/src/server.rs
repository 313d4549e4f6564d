//! The HTTP server: routes, middleware, limits, and the graceful-shutdown path.
//!
//! [`serve`] runs its own accept loop on hyper's HTTP/1.1 connection (what `axum::serve`
//! runs, without HTTP/2) so that the door has limits, each set under `[server]` and counted
//! in `regula_http_refused_total{reason}` when hit:
//!
//! - **Header-read timeout** (`header_read_timeout_seconds`, 10): a client must send a
//!   complete request head within this time from when the server starts waiting for it —
//!   on a new connection and between requests on a kept-alive one — or the connection is
//!   closed (`header_timeout`). Slowloris clients and idle keep-alive connections both go.
//! - **Connection cap** (`max_connections`, 1024): a connection accepted beyond the cap is
//!   **refused at once** with `503` and a JSON body and closed (`connection_limit`), rather
//!   than left waiting: a console retries, and the connections already open keep working.
//!   `regula_http_connections` is the number open.
//! - **Body size** (`max_body_bytes`, 2 MiB): `413` (`body_too_large`).
//!
//! Every error the framework produces itself (413, 405, 415, a malformed body) is answered
//! in the API's shape, `{"error": {"code", "message"}}`. Each request carries the peer's
//! address (`ConnectInfo<SocketAddr>`). WebSocket limits live in [`crate::api::StreamLimits`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use crate::api::{StreamGate, StreamLimits};
use crate::clock::Stopwatch;
use crate::status::SystemStatus;

/// The limits of the HTTP door (see the module docs; `[server]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time to send a complete request head (also the idle keep-alive limit).
    pub header_read_timeout: Duration,
    /// HTTP connections open at once; beyond, refused with 503.
    pub max_connections: usize,
    /// Largest request body; beyond, 413.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        crate::config::ServerConfig::default().http_limits()
    }
}

/// Counts a request or connection turned away by a limit.
pub fn count_refused(reason: &'static str) {
    metrics::counter!("regula_http_refused_total", "reason" => reason).increment(1);
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    metrics: PrometheusHandle,
    status: Option<SystemStatus>,
    max_body_bytes: usize,
    stream: StreamGate,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// State backed by the process-wide metrics recorder.
    /// State backed by the process-wide metrics recorder, with the default limits.
    pub fn new(metrics: PrometheusHandle) -> Self {
        Self {
            metrics,
            status: None,
            max_body_bytes: HttpLimits::default().max_body_bytes,
            stream: StreamGate::new(StreamLimits::default()),
        }
    }

    /// `/health` also reports the state of the engine and the store.
    #[must_use]
    pub fn with_status(mut self, status: SystemStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// The same with these limits on request bodies and WebSocket streams.
    #[must_use]
    pub fn with_limits(mut self, http: &HttpLimits, stream: StreamLimits) -> Self {
        self.max_body_bytes = http.max_body_bytes;
        self.stream = StreamGate::new(stream);
        self
    }
}

/// All routes of the server: health and metrics, plus `api` (the dispatch API, or an empty
/// router), under the body limit, JSON errors and one request-metrics layer.
pub fn router(state: AppState, api: Router) -> Router {
    let (max_body_bytes, stream) = (state.max_body_bytes, state.stream.clone());
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(state)
        .merge(api)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(Extension(stream))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(record_request))
}

/// Liveness: 200 while the process answers; the body says how the parts are (readiness is
/// `/ready`).
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut body = json!({
        "status": "ok",
        "service": "regula",
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(status) = &state.status {
        let report = status.report();
        body["ready"] = json!(report.ready);
        body["engine"] = json!(report.engine);
        body["store"] = json!({"backend": report.store, "state": report.engine.state});
        body["travel"] = json!(report.travel);
    }
    Json(body)
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no encontrado / not found",
    )
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Answers the framework's own refusals (413, 405, 415, a body it could not read or parse)
/// in the API's JSON shape instead of axum's plain text; responses that are already JSON
/// pass through untouched.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || response.headers().contains_key(header::UPGRADE) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejection texts are short; anything longer is cut, never buffered whole.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            count_refused("body_too_large");
            (
                "body_too_large",
                "el cuerpo de la solicitud es demasiado grande / the request body is too large"
                    .to_owned(),
            )
        }
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "método no permitido en esta ruta / method not allowed on this route".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", detail),
        s if s.is_server_error() => (
            "unavailable",
            "error interno; reintente / internal error; retry".to_owned(),
        ),
        _ => ("bad_request", detail),
    };
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Counts and times every request, labelled by the matched route (never the raw path, which
/// could carry identifiers).
async fn record_request(request: Request, next: Next) -> Response {
    let watch = Stopwatch::start();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "regula_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "regula_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(watch.elapsed().as_secs_f64());
    response
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every request in progress finished within the grace period.
    Drained,
    /// The grace period ran out with requests still open; they were dropped.
    GraceElapsed,
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then stops
/// accepting, asks every open connection to finish its request in progress and close, and
/// waits for them for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
    limits: HttpLimits,
) -> std::io::Result<Stopped> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Refusals write a few bytes and linger briefly; bounded so a flood cannot pile them up.
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                while connections.try_join_next().is_some() {}
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors or a connection reset before accept: wait a
                        // little instead of spinning, as axum::serve does.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if let Ok(permit) = permits.clone().try_acquire_owned() {
                    connections.spawn(serve_connection(
                        stream, peer, app.clone(), limits.header_read_timeout,
                        stop_rx.clone(), permit,
                    ));
                } else {
                    count_refused("connection_limit");
                    if let Ok(slot) = refusals.clone().try_acquire_owned() {
                        tokio::spawn(refuse(stream, slot));
                    }
                }
            }
        }
    }
    drop(listener);
    tracing::info!(
        grace_s = grace.as_secs(),
        "shutdown requested; draining requests in progress"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_ok() {
        Ok(Stopped::Drained)
    } else {
        tracing::warn!("grace period elapsed with requests still open; stopping anyway");
        connections.abort_all();
        Ok(Stopped::GraceElapsed)
    }
}

/// Refusals being written at once, at most (beyond, the connection is just closed).
const REFUSALS_IN_FLIGHT: usize = 64;

/// One HTTP/1.1 connection (with WebSocket upgrades) until it closes or shutdown asks it
/// to finish; the permit is its place under `max_connections`.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let open = metrics::gauge!("regula_http_connections");
    open.increment(1.0);
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(request.map(Body::new)).await.into_response()) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop_requested(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            count_refused("header_timeout");
        } else {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
    open.decrement(1.0);
    drop(permit);
}

/// Completes when shutdown is signalled (or the server is gone).
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Answers a connection beyond the cap with `503` and a JSON body, then closes it after
/// reading (and discarding) what the client sent, so it sees the answer rather than a reset.
async fn refuse(mut stream: TcpStream, slot: OwnedSemaphorePermit) {
    let body = json!({"error": {
        "code": "too_many_connections",
        "message": "el servidor tiene el máximo de conexiones abiertas; reintente / the server has the most connections it keeps open; retry",
    }})
    .to_string();
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            if tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? == 0 {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    drop(slot);
}

/// Installs the SIGINT (Ctrl-C) and SIGTERM handlers now and returns a future that completes
/// when either arrives.
///
/// Call it **before** announcing the server's address: a signal that arrives between the
/// announcement and the first poll of a lazily installed handler would otherwise kill the
/// process with the default action instead of draining it.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        }
    })
}

/// Binds the listener, reporting the address actually bound (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tower::ServiceExt;

    fn app() -> Router {
        router(
            AppState::new(crate::telemetry::metrics_handle()),
            Router::new(),
        )
    }

    async fn get_text(app: Router, uri: &str) -> (StatusCode, String, Option<String>) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8(body.to_vec()).unwrap(),
            content_type,
        )
    }

    #[tokio::test]
    async fn health_says_ok_with_the_version() {
        let (status, body, _) = get_text(app(), "/health").await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text_and_count_requests() {
        let app = app();
        get_text(app.clone(), "/health").await;
        let (status, body, content_type) = get_text(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            content_type
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        assert!(
            body.contains("# TYPE regula_http_requests_total counter"),
            "{body}"
        );
        assert!(body.contains(r#"route="/health",status="200""#), "{body}");
        assert!(body.contains("regula_build_info{version="), "{body}");
    }

    #[tokio::test]
    async fn unknown_paths_get_a_json_404_labelled_unmatched() {
        let app = app();
        let (status, body, _) = get_text(app.clone(), "/pacientes/12345").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("not found"));
        let (_, metrics, _) = get_text(app, "/metrics").await;
        assert!(
            !metrics.contains("12345"),
            "raw paths must not become labels"
        );
    }

    #[tokio::test]
    async fn serve_drains_and_returns_when_shutdown_completes() {
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            app(),
            async {
                let _ = rx.await;
            },
            Duration::from_secs(5),
            HttpLimits::default(),
        ));
        // The server answers while running.
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        tx.send(()).unwrap();
        assert_eq!(task.await.unwrap().unwrap(), Stopped::Drained);
    }

    /// Resident memory of this process (the server under test runs in it), in KiB.
    pub(crate) fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Starts `app` on loopback with `limits`; dropping the sender stops it.
    async fn start(
        app: Router,
        limits: HttpLimits,
    ) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(
            listener,
            app,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(5),
            limits,
        ));
        (addr, tx)
    }

    /// Sends raw bytes and reads the whole reply (the request asks to close).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut reply))
            .await
            .expect("the server answers and closes")
            .unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    }

    const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    fn json_body(reply: &str) -> serde_json::Value {
        let (_, body) = reply.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {reply}"))
    }

    #[tokio::test]
    async fn a_thousand_half_open_connections_are_closed_while_normal_requests_succeed() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_secs(1),
            max_connections: 2_000,
            ..HttpLimits::default()
        };
        let (addr, _stop) = start(app(), limits).await;
        let before = rss_kib();
        let mut slow = Vec::with_capacity(1_000);
        for _ in 0..1_000 {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A request head that never ends.
            stream
                .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
                .await
                .unwrap();
            slow.push(stream);
        }
        let during = rss_kib();
        let reply = exchange(addr, HEALTH).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        for mut stream in slow {
            let mut reply = Vec::new();
            // Closed (end of stream, or a reset): either way not left hanging.
            let _closed =
                tokio::time::timeout(Duration::from_mins(1), stream.read_to_end(&mut reply))
                    .await
                    .expect("a half-open connection must be closed by the server");
            let reply = String::from_utf8_lossy(&reply);
            assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
        }
        let reply = exchange(addr, HEALTH).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        let after = rss_kib();
        println!(
            "RSS half-open flood: before {before} KiB, with 1000 open {during} KiB, after {after} KiB"
        );
        let metrics = crate::telemetry::metrics_handle().render();
        assert!(
            metrics.contains(r#"regula_http_refused_total{reason="header_timeout"}"#),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_secs(1),
            ..HttpLimits::default()
        };
        let (addr, _stop) = start(app(), limits).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        // The first answer comes, then nothing more is asked: the server closes.
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_mins(1), stream.read_to_end(&mut reply))
            .await
            .expect("an idle kept-alive connection must be closed")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    #[tokio::test]
    async fn a_body_above_the_limit_gets_413_in_json_and_a_wrong_method_405_in_json() {
        let api = Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let http = HttpLimits {
            max_body_bytes: 1024,
            ..HttpLimits::default()
        };
        let state = AppState::new(crate::telemetry::metrics_handle())
            .with_limits(&http, crate::api::StreamLimits::default());
        let (addr, _stop) = start(router(state, api), http).await;

        let small = exchange(
            addr,
            b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello",
        )
        .await;
        assert!(small.starts_with("HTTP/1.1 200"), "{small}");

        let body = "x".repeat(4096);
        let large = exchange(
            addr,
            format!(
                "POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
        assert!(large.starts_with("HTTP/1.1 413"), "{large}");
        assert!(
            large
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{large}"
        );
        assert_eq!(
            json_body(&large)["error"]["code"],
            "body_too_large",
            "{large}"
        );

        let wrong = exchange(
            addr,
            b"DELETE /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
        assert!(wrong.to_ascii_lowercase().contains("allow: get"), "{wrong}");
        assert_eq!(
            json_body(&wrong)["error"]["code"],
            "method_not_allowed",
            "{wrong}"
        );

        let missing = exchange(
            addr,
            b"GET /nothing HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(
            json_body(&missing)["error"]["code"],
            "not_found",
            "{missing}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_refused_at_once_with_503_json() {
        let limits = HttpLimits {
            header_read_timeout: Duration::from_mins(1),
            max_connections: 3,
            ..HttpLimits::default()
        };
        let (addr, _stop) = start(app(), limits).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // One full request each, so the server has surely taken them in.
            stream
                .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 12];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"HTTP/1.1 200");
            held.push(stream);
        }
        let refused = exchange(addr, HEALTH).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert_eq!(json_body(&refused)["error"]["code"], "too_many_connections");

        // A place frees when a connection closes.
        drop(held.pop());
        let mut answered = false;
        for _ in 0..200 {
            if exchange(addr, HEALTH).await.starts_with("HTTP/1.1 200") {
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(answered, "a freed place must be usable");
    }
}
