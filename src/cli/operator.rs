//! `iter8 operator`: the controller. Wires the Kubernetes adapter (experiments, targets,
//! status, events), routing (Istio, or Gateway API for an experiment whose routingReference
//! names an HTTPRoute: [`ByReference`]), Prometheus metrics (through the built-in analytics)
//! and the Grafana link to the core, and serves `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use iter8_analytics::RemoteAnalytics;
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::duration::parse_go;
use iter8_core::ports::Analytics;
use iter8_gateway_api::GatewayRouter;
use iter8_grafana::{ClientSettings, DashboardInput, GrafanaLink, Telemetry, Token};
use iter8_istio::IstioRouter;
use iter8_kubernetes::events::KubeEvents;
use iter8_kubernetes::operator::{self, LeaderElection, OperatorSettings};
use iter8_kubernetes::watch_config::follow_config_map;
use iter8_kubernetes::{Adapters, ByReference, OperatorMetrics, Settings};
use iter8_notifiers::config::CONFIG_MAP;
use iter8_notifiers::{AlsoNotify, Notifier, SenderSettings};
use iter8_prometheus::PrometheusSource;
use iter8_rand::ChaCha;

use super::prometheus::PrometheusArgs;
use crate::process;

/// Where decisions are made.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnalyticsMode {
    /// In the operator, over Prometheus (the default).
    Builtin,
    /// By an iter8-analytics v0.2.1 service (the original or `iter8 analytics serve`) at each
    /// experiment's `spec.analysis.analyticsService`.
    Remote,
}

/// Log line format.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `iter8 operator` (each also read from its environment variable).
#[derive(clap::Args)]
pub struct Args {
    /// Kubeconfig file; without it: KUBECONFIG, ~/.kube/config, then the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, env = "ITER8_KUBE_CONTEXT")]
    pub context: Option<String>,
    /// Reconcile experiments of this namespace only (default: all namespaces).
    #[arg(long, env = "ITER8_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where the metrics ConfigMap iter8config-metrics is read first (then the experiment's namespace).
    #[arg(long, env = "ITER8_METRICS_NAMESPACE", default_value = "iter8")]
    pub metrics_namespace: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ITER8_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Retry a failed reconcile after this long (Go duration).
    #[arg(long, env = "ITER8_RETRY_AFTER", default_value = "10s")]
    pub retry_after: String,
    /// Elect a leader through a Lease, so that several replicas can run.
    #[arg(long, env = "ITER8_LEADER_ELECT")]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, env = "ITER8_LEASE_NAME", default_value = "iter8-controller")]
    pub lease_name: String,
    /// The Lease's namespace (the operator's).
    #[arg(long, env = "POD_NAMESPACE", default_value = "iter8")]
    pub lease_namespace: String,
    /// How long the Lease lasts without renewal (Go duration).
    #[arg(long, env = "ITER8_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: String,
    /// This instance's identity in the Lease and in events (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// How to reach Prometheus.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,
    /// Built-in analytics over Prometheus, or a remote iter8-analytics service.
    #[arg(long, env = "ITER8_ANALYTICS", value_enum, default_value = "builtin")]
    pub analytics: AnalyticsMode,
    /// Timeout of one call to a remote analytics service (Go duration).
    #[arg(long, env = "ITER8_ANALYTICS_TIMEOUT", default_value = "10s")]
    pub analytics_timeout: String,
    /// With `--analytics remote`: an analytics service experiments may name in
    /// spec.analysis.analyticsService (repeatable; default: http://iter8-analytics.iter8:8080).
    #[arg(
        long = "analytics-allowed-endpoint",
        env = "ITER8_ANALYTICS_ALLOWED_ENDPOINTS",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub analytics_allowed_endpoints: Vec<String>,
    /// Check stopOnFailure criteria this often between interval boundaries (Go duration; `0`
    /// turns fast abort off).
    #[arg(long, env = "ITER8_ABORT_CHECK_EVERY", default_value = "5s")]
    pub abort_check_every: String,
    /// The failure budget: after this many failed analyses or routing changes in a row a
    /// running experiment rolls back and ends `ExperimentFailed` (as Argo's consecutiveErrorLimit).
    #[arg(long, env = "ITER8_FAILURE_LIMIT", default_value_t = iter8_core::engine::DEFAULT_FAILURE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub failure_limit: u32,
    /// Let experiments name targets (`spec.targetService.namespace`) in other namespaces than
    /// their own; off, such an experiment pauses with a ValidationError.
    #[arg(long, env = "ITER8_ALLOW_CROSS_NAMESPACE")]
    pub allow_cross_namespace: bool,
    /// At most this many experiments reconciled at once; the others wait their turn.
    #[arg(long, env = "ITER8_MAX_CONCURRENT_RECONCILES", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_reconciles: u32,
    /// Push the experiment dashboard to this Grafana at start-up (token from
    /// --grafana-token-file or GRAFANA_TOKEN); a failed push is logged, not fatal.
    #[arg(long, env = "ITER8_GRAFANA_PUSH_URL")]
    pub grafana_push_url: Option<String>,
    /// File holding the Grafana API token for --grafana-push-url.
    #[arg(long, env = "ITER8_GRAFANA_TOKEN_FILE")]
    pub grafana_token_file: Option<PathBuf>,
    /// Istio telemetry the pushed dashboard queries: v1 or v2.
    #[arg(long, env = "ITER8_GRAFANA_TELEMETRY", default_value = "v2")]
    pub grafana_telemetry: Telemetry,
    /// Log format.
    #[arg(long, env = "ITER8_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter when RUST_LOG is unset.
    #[arg(long, env = "ITER8_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_go(text)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{flag} `{text}`: not a positive duration"))
}

/// Runs the operator until SIGTERM (or Ctrl-C).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    process::install_crypto_provider();
    process::init_logging(args.log_format == LogFormat::Json, &args.log_level)?;
    process::runtime("iter8-operator")?.block_on(serve(args))
}

/// Pushes the generic experiment dashboard; a failure is logged and the operator goes on.
async fn push_dashboard(args: &Args) -> anyhow::Result<()> {
    let Some(url) = &args.grafana_push_url else {
        return Ok(());
    };
    let token = match &args.grafana_token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => Token::from_env()?,
    };
    let metrics = args.grafana_telemetry.extended_metrics();
    let dashboard = iter8_grafana::build_dashboard(&DashboardInput {
        telemetry: args.grafana_telemetry,
        metrics: &metrics,
        experiment: None,
    })?;
    let settings = ClientSettings {
        token,
        ..ClientSettings::new(url.clone())
    };
    match iter8_grafana::push_dashboard(&settings, &dashboard).await {
        Ok(r) => tracing::info!(url = %r.url, version = r.version, "dashboard pushed to Grafana"),
        Err(e) => tracing::warn!(error = %e, "could not push the dashboard to Grafana"),
    }
    Ok(())
}

/// The remote analytics client: experiments may name only the allowed endpoints.
fn remote_analytics(args: &Args) -> anyhow::Result<RemoteAnalytics> {
    let remote = RemoteAnalytics::new(duration("analytics-timeout", &args.analytics_timeout)?)
        .context("the remote analytics client")?;
    if args.analytics_allowed_endpoints.is_empty() {
        return Ok(remote);
    }
    remote
        .with_allowed_endpoints(&args.analytics_allowed_endpoints)
        .context("--analytics-allowed-endpoint")
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    push_dashboard(&args).await.context("--grafana-push-url")?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "iter8-controller".to_string());
    let settings = OperatorSettings {
        controller: Settings {
            namespace: args.namespace.clone(),
            metrics_namespace: args.metrics_namespace.clone(),
            instance: identity.clone(),
            retry_after: duration("retry-after", &args.retry_after)?,
            abort_check_every: match parse_go(&args.abort_check_every) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(e) => bail!("--abort-check-every: {e}"),
            },
            failure_limit: args.failure_limit,
            allow_cross_namespace: args.allow_cross_namespace,
            max_concurrent_reconciles: args.max_concurrent_reconciles as usize,
        },
        leader_election: args
            .leader_elect
            .then(|| -> anyhow::Result<LeaderElection> {
                Ok(LeaderElection {
                    namespace: args.lease_namespace.clone(),
                    lease_name: args.lease_name.clone(),
                    identity: identity.clone(),
                    duration: duration("lease-duration", &args.lease_duration)?,
                })
            })
            .transpose()?,
    };
    let prometheus = args.prometheus.client()?;
    // Built before connecting to Kubernetes, so a bad flag is reported first.
    let analytics: Arc<dyn Analytics> = match args.analytics {
        AnalyticsMode::Builtin => Arc::new(BuiltinAnalytics::new(
            PrometheusSource::new(prometheus),
            ChaCha,
        )),
        AnalyticsMode::Remote => Arc::new(remote_analytics(&args)?),
    };
    let metrics = Arc::new(OperatorMetrics::new());
    let client = operator::client(
        args.kubeconfig.clone(),
        args.context.clone(),
        &metrics.api_requests(),
    )
    .await?;
    // Events are Kubernetes Events and also go to the notifiers of the `iter8config-notifiers`
    // ConfigMap in the operator's own namespace (POD_NAMESPACE), which a task follows live.
    let notifier = Notifier::start(SenderSettings::default()).map_err(anyhow::Error::msg)?;
    let (following, watch_client) = (notifier.clone(), client.clone());
    let notifiers_namespace = args.lease_namespace.clone();
    tokio::spawn(async move {
        follow_config_map(watch_client, &notifiers_namespace, CONFIG_MAP, |data| {
            following.configure(data);
        })
        .await;
    });
    let adapters = Adapters {
        router: Arc::new(ByReference {
            default: Arc::new(IstioRouter::watching(
                client.clone(),
                args.namespace.as_deref(),
                iter8_kubernetes::backoff::watch_backoff,
            )),
            http_route: Arc::new(GatewayRouter::new(client.clone())),
        }),
        analytics,
        dashboard: Arc::new(GrafanaLink::new()),
        events: Some(Arc::new(AlsoNotify::new(
            Arc::new(KubeEvents::new(client.clone(), identity.clone())),
            notifier,
        ))),
    };
    let listener = operator::listen(args.listen).await?;
    operator::run(
        client,
        settings,
        adapters,
        metrics,
        listener,
        process::shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
