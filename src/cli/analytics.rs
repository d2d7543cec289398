//! `iter8 analytics serve`: the iter8-analytics v0.2.1 REST API, a drop-in for the original
//! service, deciding with iter8-core's strategies over Prometheus.

use iter8_rand::ChaCha;
use std::net::SocketAddr;
use std::process::ExitCode;

use iter8_analytics::AppState;
use iter8_analytics::serve::{Limits, bind, serve};
use iter8_prometheus::PrometheusSource;

use super::prometheus::PrometheusArgs;
use crate::process;

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
    /// The Prometheus measurements come from (iter8-analytics' ITER8_ANALYTICS_METRICS_BACKEND_URL).
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
}

/// Runs `iter8 analytics`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(serve) => {
            process::install_crypto_provider();
            process::runtime("iter8-analytics")?.block_on(run_server(serve))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves the API over Prometheus until SIGTERM or Ctrl-C.
async fn run_server(args: ServeArgs) -> anyhow::Result<()> {
    let url = args.prometheus.url.clone();
    let source = PrometheusSource::new(args.prometheus.client()?);
    let listener = bind(args.listen).await?;
    eprintln!(
        "iter8 analytics: serving the iter8-analytics v0.2.1 API on http://{}/api/v1 (Prometheus: {url})",
        listener.local_addr()?
    );
    serve(
        listener,
        AppState::new(source, url, ChaCha),
        Limits::default(),
        process::shutdown_signal(),
    )
    .await?;
    Ok(())
}
