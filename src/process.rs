//! Process setup shared by the long-running commands (`operator`, `analytics serve`): the TLS
//! crypto provider, logging, the tokio runtime and the shutdown signal. Logging, the runtime
//! and signals belong to the process, so only the binary sets them up; the crypto provider is
//! installed here before anything else (the adapters that build an HTTP client also install it
//! when none is, so they work on their own; a second install is a no-op).

use anyhow::Context as _;

/// Installs ring as rustls' process-wide crypto provider, before any TLS client is built (kube
/// and reqwest panic when they must choose between two compiled-in providers). Calling it twice
/// is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A multi-threaded tokio runtime whose threads are named `name`.
pub fn runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()
        .context("starting the tokio runtime")
}

/// Sets up logging to stderr: JSON lines or text, filtered by `RUST_LOG` (default `filter`).
pub fn init_logging(json: bool, filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .with_context(|| format!("log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
