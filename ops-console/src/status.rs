//! What probes see: `/health` (liveness: the process answers; its body says how the engine
//! and the store are) and `/ready` (503 with the reason while commands cannot be
//! acknowledged: the store failing or being re-established, the engine stopped).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;

use crate::engine::{EngineHandle, EngineStatus};

/// The state of the running system's parts, for probes.
#[derive(Debug, Clone)]
pub struct SystemStatus {
    engine: EngineHandle,
    store: &'static str,
    travel: TravelModel,
}

/// Where travel times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TravelModel {
    /// The configured road graph, loaded.
    RoadGraph,
    /// No road graph configured: straight-line estimates.
    StraightLine,
}

/// One report of the parts' state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// Whether commands can be acknowledged now.
    pub ready: bool,
    /// The engine and the log it writes.
    pub engine: EngineStatus,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
    /// Where travel times come from.
    pub travel: TravelModel,
}

impl SystemStatus {
    /// The status of a running engine over a store of kind `store`.
    pub fn new(engine: EngineHandle, store: &'static str, travel: TravelModel) -> Self {
        Self {
            engine,
            store,
            travel,
        }
    }

    /// The state now.
    pub fn report(&self) -> StatusReport {
        let engine = self.engine.status();
        StatusReport {
            ready: engine.ready(),
            engine,
            store: self.store,
            travel: self.travel,
        }
    }
}

/// `GET /ready`.
pub fn router(status: SystemStatus) -> Router {
    Router::new().route("/ready", get(ready)).with_state(status)
}

async fn ready(State(status): State<SystemStatus>) -> Response {
    let report = status.report();
    if report.ready {
        return (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response();
    }
    let reason = report
        .engine
        .reason
        .clone()
        .unwrap_or_else(|| report.engine.state.to_owned());
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"ready": false, "state": report.engine.state, "reason": reason})),
    )
        .into_response()
}
