//! `iter8 analytics serve`: the iter8-analytics v0.2.1 REST API, a drop-in for the original
//! service, deciding with iter8-core's strategies over Prometheus.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use iter8_analytics::serve::{ServeConfig, run_blocking};

/// Flags of `iter8 analytics`.
#[derive(clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `iter8 analytics` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Serve the iter8-analytics v0.2.1 REST API (POST /api/v1/experiment/<algorithm>, ...).
    Serve(ServeArgs),
}

/// Flags of `iter8 analytics serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Prometheus' base URL (iter8-analytics' ITER8_ANALYTICS_METRICS_BACKEND_URL).
    #[arg(long, default_value = "http://localhost:9090")]
    pub prometheus: String,
    /// Timeout of one Prometheus query, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub prometheus_timeout: f64,
}

/// Runs `iter8 analytics`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(serve) => {
            let timeout = Duration::try_from_secs_f64(serve.prometheus_timeout)
                .ok()
                .filter(|t| !t.is_zero())
                .context("--prometheus-timeout must be a positive number of seconds")?;
            let config = ServeConfig {
                listen: serve.listen,
                prometheus: serve.prometheus.clone(),
                prometheus_timeout: timeout,
            };
            run_blocking(config, |addr| {
                eprintln!(
                    "iter8 analytics: serving the iter8-analytics v0.2.1 API on http://{addr}/api/v1 (Prometheus: {})",
                    serve.prometheus
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
