//! # iter8-http-server
//!
//! Serves an axum [`Router`] on a TCP listener within [`Limits`], so that a slow, idle or
//! hostile client cannot stall or exhaust the server:
//!
//! - a client must send a request's head within `header_read_timeout`, or its connection is
//!   closed (hyper's HTTP/1 header-read timeout; it also covers idle keep-alive connections);
//! - at most `max_connections` connections are served; more wait in the listen backlog;
//! - at most `max_concurrent_requests` requests are handled at once; more are answered
//!   `503 Service Unavailable` at once (tower's load shedding);
//! - a request is answered within `request_timeout`, else `503` (tower-http's timeout);
//! - a body over `max_body_bytes` is answered `413 Payload Too Large` (tower-http's limit).
//!
//! The operator's endpoints (iter8-kubernetes) and `iter8 analytics serve` (iter8-analytics)
//! both serve through it; it knows nothing of either.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{BoxError, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// How much a server accepts; [`Limits::default`] suits both iter8 servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's head (from connecting, or after the previous
    /// answer on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// Time a request may take to be answered.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Requests handled at once.
    pub max_concurrent_requests: usize,
    /// The largest request body.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    /// 10 s to send a head, 30 s per request, 512 connections, 64 requests at once, 256 KiB
    /// bodies (an analytics request is a few KiB; the operator's endpoints take none).
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_concurrent_requests: 64,
            max_body_bytes: 256 * 1024,
        }
    }
}

/// The largest request head (and read buffer) of a connection: hyper's minimum is 8 KiB, its
/// default ~400 KiB per connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The answer when `max_concurrent_requests` are in flight (load shedding's only error).
async fn overloaded(_: BoxError) -> (StatusCode, &'static str) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded: too many requests at once\n",
    )
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting
/// and lets requests in flight finish for up to `request_timeout`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = ServiceBuilder::new()
        .layer(HandleErrorLayer::<_, ()>::new(overloaded))
        .load_shed()
        .concurrency_limit(limits.max_concurrent_requests.max(1))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .service(app);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A free slot first: beyond the limit, clients wait in the kernel's listen backlog.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own problem, not the server's.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
    Ok(())
}
