//! Serving the API on a TCP listener until a shutdown future completes, within
//! iter8-http-server's limits (header-read and request timeouts, connection and concurrency
//! limits, a body cap). Which metric source the server measures through (Prometheus for
//! `iter8 analytics serve`, whose client bounds the queries in flight), the runtime and the
//! signals are the caller's: this crate only translates HTTP to the core.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use iter8_core::ports::MetricSource;
use tokio::net::TcpListener;

use crate::routes::{AppState, router};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds the listen address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

pub use iter8_http_server::Limits;

/// Serves the API over `state` on `listener` within `limits` until `shutdown` completes;
/// in-flight requests finish first (for up to the request timeout).
pub async fn serve<M: MetricSource + 'static>(
    listener: TcpListener,
    state: AppState<M>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    iter8_http_server::serve(listener, router(Arc::new(state)), limits, shutdown).await?;
    Ok(())
}
