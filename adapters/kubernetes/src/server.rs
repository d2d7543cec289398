//! The operator's HTTP endpoints: `/metrics` (OpenMetrics text), `/healthz` (the process
//! serves) and `/readyz` (the operator reached the API server and runs, or stands by), served
//! within iter8-http-server's default limits (timeouts, connection and request limits, a body
//! cap), so a stray client cannot stall the probes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use iter8_http_server::Limits;

use crate::metrics::OperatorMetrics;

/// Whether the operator is ready; shared with the endpoints.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Marks the operator ready (or not).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the operator is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<OperatorMetrics>,
    health: Arc<Health>,
}

async fn serve_metrics(State(s): State<Endpoints>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Endpoints>) -> (StatusCode, &'static str) {
    if s.health.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The router serving `/metrics`, `/healthz` and `/readyz`.
pub fn router(metrics: Arc<OperatorMetrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoints { metrics, health })
}

/// Serves the endpoints on `listener` within [`Limits::default`] until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<OperatorMetrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    iter8_http_server::serve(
        listener,
        router(metrics, health),
        Limits::default(),
        shutdown,
    )
    .await
}

/// Binds the endpoints' address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
