//! `iter8 analytics serve`: the API on a TCP listener, measuring through Prometheus, until
//! Ctrl-C / SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource, SettingsError};
use tokio::net::TcpListener;

use crate::routes::{AppState, router};

/// Where to listen and which Prometheus to query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// The listen address (e.g. `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Prometheus' base URL (e.g. `http://prometheus.istio-system:9090`).
    pub prometheus: String,
    /// Timeout of one Prometheus query.
    pub prometheus_timeout: Duration,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Prometheus settings are invalid.
    #[error("prometheus: {0}")]
    Prometheus(#[from] SettingsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The runtime could not start or the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The app state over Prometheus for a configuration.
pub fn prometheus_state(config: &ServeConfig) -> Result<AppState<PrometheusSource>, ServeError> {
    let settings =
        PrometheusSettings::new(config.prometheus.clone()).with_timeout(config.prometheus_timeout);
    let client = PrometheusClient::new(&settings)?;
    Ok(AppState::new(
        PrometheusSource::new(client),
        config.prometheus.clone(),
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serves until Ctrl-C or SIGTERM; calls `on_ready` with the bound address once listening.
pub async fn serve(
    config: ServeConfig,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let state = Arc::new(prometheus_state(&config)?);
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    on_ready(listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// Runs [`serve`] on a new multi-threaded tokio runtime (for the command line, which has none).
pub fn run_blocking(
    config: ServeConfig,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(config, on_ready))
}
