//! `iter8 dashboard`: print the experiment dashboard's JSON, or push it to Grafana.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use iter8_grafana::{ClientSettings, DashboardInput, Telemetry, Token};

/// Flags of `iter8 dashboard`.
#[derive(clap::Args)]
pub struct Args {
    /// Istio telemetry the stock panels query: v1 (Mixer, seconds) or v2 (Envoy stats,
    /// milliseconds). Default: guessed from --metrics, else v2.
    #[arg(long, value_name = "v1|v2")]
    pub telemetry: Option<Telemetry>,
    /// The metrics ConfigMap (iter8config-metrics) the criteria's metrics are read from.
    /// Default: the tutorial's extended configuration (stock metrics plus iter8_90_perc_latency).
    #[arg(long, value_name = "CONFIGMAP.yaml")]
    pub metrics: Option<PathBuf>,
    /// An Experiment manifest: its success criteria get panels and threshold lines, and its
    /// service and versions are preselected.
    #[arg(short = 'f', long = "filename", value_name = "EXPERIMENT.yaml")]
    pub file: Option<PathBuf>,
    /// Upload the dashboard to the Grafana at this URL (POST /api/dashboards/db) instead of
    /// printing it.
    #[arg(long, value_name = "URL")]
    pub push: Option<String>,
    /// With --push: the uid of the Grafana folder to put the dashboard in.
    #[arg(long, value_name = "UID", requires = "push")]
    pub folder_uid: Option<String>,
    /// With --push: a file holding the Grafana token (default: the GRAFANA_TOKEN variable).
    #[arg(long, value_name = "FILE", requires = "push")]
    pub token_file: Option<PathBuf>,
}

/// Runs `iter8 dashboard`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let metrics = match &args.metrics {
        Some(path) => super::input::read_metrics(path)?,
        None => args.telemetry.unwrap_or_default().extended_metrics(),
    };
    let detected = Telemetry::detect(&metrics);
    let telemetry = match (args.telemetry, detected) {
        (Some(chosen), Some(found)) if chosen != found => {
            eprintln!(
                "warning: --telemetry {chosen}, but the metrics configuration queries Istio telemetry {found} series"
            );
            chosen
        }
        (Some(chosen), _) => chosen,
        (None, found) => found.unwrap_or_default(),
    };
    let experiment = match &args.file {
        Some(path) => Some(read_experiment(path)?),
        None => None,
    };
    let dashboard = iter8_grafana::build_dashboard(&DashboardInput {
        telemetry,
        metrics: &metrics,
        experiment: experiment.as_ref(),
    })
    .context("building the dashboard")?;

    let Some(url) = args.push else {
        println!("{}", serde_json::to_string_pretty(&dashboard)?);
        return Ok(ExitCode::SUCCESS);
    };
    let token = match &args.token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => Token::from_env()?,
    };
    let settings = ClientSettings {
        token,
        folder_uid: args.folder_uid,
        ..ClientSettings::new(url)
    };
    let answer = iter8_grafana::push_dashboard_blocking(&settings, &dashboard)?;
    println!(
        "pushed dashboard {} to {}: HTTP {}, status {}, version {}, url {}",
        answer
            .uid
            .as_deref()
            .unwrap_or(iter8_grafana::DASHBOARD_UID),
        settings.url,
        answer.http_status,
        answer.status,
        answer.version,
        answer.url
    );
    Ok(ExitCode::SUCCESS)
}

/// The first Experiment of a manifest.
fn read_experiment(path: &std::path::Path) -> anyhow::Result<iter8_core::Experiment> {
    let mut docs = super::input::read_experiments(path)?.into_iter();
    let first = docs
        .next()
        .with_context(|| format!("{}: no Experiment found", path.display()))?;
    if docs.next().is_some() {
        eprintln!(
            "warning: {} holds several Experiments; using the first, {}",
            path.display(),
            first.experiment.name()
        );
    }
    Ok(first.experiment)
}
