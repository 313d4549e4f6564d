//! The HTTP server: routes, middleware, and the graceful-shutdown path.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;

use crate::clock::Stopwatch;
use crate::status::SystemStatus;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    metrics: PrometheusHandle,
    status: Option<SystemStatus>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// State backed by the process-wide metrics recorder.
    pub fn new(metrics: PrometheusHandle) -> Self {
        Self {
            metrics,
            status: None,
        }
    }

    /// `/health` also reports the state of the engine and the store.
    #[must_use]
    pub fn with_status(mut self, status: SystemStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// All routes of the server: health and metrics, plus `api` (the dispatch API, or an empty
/// router), under one request-metrics layer.
pub fn router(state: AppState, api: Router) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .with_state(state)
        .merge(api)
        .fallback(not_found)
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
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not found / no encontrado"})),
    )
        .into_response()
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

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in progress
/// finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<Stopped> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(());
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            // Resolves when the sender signals or is dropped.
            let _ = stop_rx.changed().await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            result?;
            Ok(Stopped::Drained)
        }
        () = shutdown => {
            tracing::info!(grace_s = grace.as_secs(), "shutdown requested; draining requests in progress");
            let _ = stop_tx.send(());
            if let Ok(result) = tokio::time::timeout(grace, server).await {
                result?;
                Ok(Stopped::Drained)
            } else {
                tracing::warn!("grace period elapsed with requests still open; stopping anyway");
                Ok(Stopped::GraceElapsed)
            }
        }
    }
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
mod tests {
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
}
