//! `iter8 install`: print the install bundle (namespace, CRD, RBAC, operator Deployment,
//! metrics Service, stock metrics ConfigMap) for `kubectl apply -f -`.

use std::process::ExitCode;

use iter8_kubernetes::install::{self, InstallOptions, Telemetry};

/// Which Istio telemetry the stock metrics ConfigMap queries.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TelemetryArg {
    /// Mixer telemetry (Istio before 1.5).
    V1,
    /// Telemetry v2 (Istio 1.5 and later).
    V2,
}

/// Flags of `iter8 install`.
#[derive(clap::Args)]
pub struct Args {
    /// The Istio telemetry the metrics ConfigMap is written for.
    #[arg(long, value_enum, default_value = "v2")]
    pub telemetry: TelemetryArg,
    /// The operator's namespace.
    #[arg(long, default_value = "iter8")]
    pub namespace: String,
    /// The operator's container image.
    #[arg(long)]
    pub image: Option<String>,
    /// Prometheus' URL, as the operator reaches it.
    #[arg(long, default_value = "http://prometheus.istio-system:9090")]
    pub prometheus_url: String,
    /// Operator replicas (one leads; the others stand by).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub replicas: i32,
    /// Let experiments name targets in other namespaces (the operator runs with
    /// --allow-cross-namespace; no admission policy against it is installed).
    #[arg(long)]
    pub allow_cross_namespace: bool,
}

/// Prints the bundle.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let defaults = InstallOptions::default();
    let options = InstallOptions {
        namespace: args.namespace,
        image: args.image.unwrap_or(defaults.image),
        telemetry: match args.telemetry {
            TelemetryArg::V1 => Telemetry::V1,
            TelemetryArg::V2 => Telemetry::V2,
        },
        prometheus_url: args.prometheus_url,
        replicas: args.replicas,
        allow_cross_namespace: args.allow_cross_namespace,
    };
    print!("{}", install::bundle_yaml(&options)?);
    Ok(ExitCode::SUCCESS)
}
