//! `iter8 operator`: the controller. Wires the Kubernetes adapter (experiments, targets,
//! status, events), Istio routing, Prometheus metrics (through the built-in analytics) and the
//! Grafana link to the core, and serves `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use iter8_analytics::RemoteAnalytics;
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::duration::parse_go;
use iter8_grafana::{ClientSettings, DashboardInput, GrafanaLink, Telemetry, Token};
use iter8_istio::IstioRouter;
use iter8_kubernetes::operator::{self, LeaderElection, OperatorSettings};
use iter8_kubernetes::{Adapters, Settings};
use iter8_prometheus::{
    Auth, PrometheusClient, PrometheusSettings, PrometheusSource, RetryPolicy, SecretSource,
    TlsSettings,
};

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
    /// Prometheus base URL.
    #[arg(
        long,
        env = "ITER8_PROMETHEUS_URL",
        default_value = "http://prometheus.istio-system:9090"
    )]
    pub prometheus_url: String,
    /// Timeout of one Prometheus request (Go duration).
    #[arg(long, env = "ITER8_PROMETHEUS_TIMEOUT", default_value = "10s")]
    pub prometheus_timeout: String,
    /// At most this many Prometheus queries in flight at once, across all experiments.
    #[arg(
        long,
        env = "ITER8_PROMETHEUS_MAX_CONCURRENT_QUERIES",
        default_value_t = 16
    )]
    pub prometheus_max_concurrent_queries: usize,
    /// Retries of a failed Prometheus request.
    #[arg(long, env = "ITER8_PROMETHEUS_RETRIES", default_value_t = 2)]
    pub prometheus_retries: u32,
    /// Bearer token file for Prometheus (e.g. a mounted Secret).
    #[arg(
        long,
        env = "ITER8_PROMETHEUS_TOKEN_FILE",
        conflicts_with = "prometheus_username"
    )]
    pub prometheus_token_file: Option<PathBuf>,
    /// Basic-auth user name for Prometheus (password from --prometheus-password-file).
    #[arg(long, env = "ITER8_PROMETHEUS_USERNAME")]
    pub prometheus_username: Option<String>,
    /// Basic-auth password file for Prometheus.
    #[arg(
        long,
        env = "ITER8_PROMETHEUS_PASSWORD_FILE",
        requires = "prometheus_username"
    )]
    pub prometheus_password_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an https Prometheus.
    #[arg(long, env = "ITER8_PROMETHEUS_CA_FILE")]
    pub prometheus_ca_file: Option<PathBuf>,
    /// Skip TLS verification of Prometheus (testing only).
    #[arg(long, env = "ITER8_PROMETHEUS_INSECURE_SKIP_VERIFY")]
    pub prometheus_insecure_skip_verify: bool,
    /// Built-in analytics over Prometheus, or a remote iter8-analytics service.
    #[arg(long, env = "ITER8_ANALYTICS", value_enum, default_value = "builtin")]
    pub analytics: AnalyticsMode,
    /// Timeout of one call to a remote analytics service (Go duration).
    #[arg(long, env = "ITER8_ANALYTICS_TIMEOUT", default_value = "10s")]
    pub analytics_timeout: String,
    /// Check stopOnFailure criteria this often between interval boundaries (Go duration; `0`
    /// turns fast abort off).
    #[arg(long, env = "ITER8_ABORT_CHECK_EVERY", default_value = "5s")]
    pub abort_check_every: String,
    /// At most this many experiments reconciled at once; the others wait their turn.
    #[arg(long, env = "ITER8_MAX_CONCURRENT_RECONCILES", default_value_t = 16)]
    pub max_concurrent_reconciles: usize,
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

fn prometheus(args: &Args) -> anyhow::Result<PrometheusSettings> {
    let auth = if let Some(path) = &args.prometheus_token_file {
        Auth::Bearer(SecretSource::File(path.clone()).load("bearer token")?)
    } else if let Some(username) = &args.prometheus_username {
        let Some(path) = &args.prometheus_password_file else {
            bail!("--prometheus-username needs --prometheus-password-file");
        };
        Auth::Basic {
            username: username.clone(),
            password: SecretSource::File(path.clone()).load("basic-auth password")?,
        }
    } else {
        Auth::None
    };
    Ok(PrometheusSettings::new(args.prometheus_url.clone())
        .with_timeout(duration("prometheus-timeout", &args.prometheus_timeout)?)
        .with_retry(RetryPolicy {
            max_retries: args.prometheus_retries,
            ..RetryPolicy::default()
        })
        .with_auth(auth)
        .with_max_concurrent_queries(args.prometheus_max_concurrent_queries)
        .with_tls(TlsSettings {
            ca_file: args.prometheus_ca_file.clone(),
            insecure_skip_verify: args.prometheus_insecure_skip_verify,
        }))
}

/// Runs the operator until SIGTERM (or Ctrl-C).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    operator::install_crypto_provider();
    operator::init_logging(args.log_format == LogFormat::Json, &args.log_level)?;
    operator::runtime()
        .context("starting the tokio runtime")?
        .block_on(serve(args))
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
            max_concurrent_reconciles: match args.max_concurrent_reconciles {
                0 => bail!("--max-concurrent-reconciles: at least 1"),
                n => n,
            },
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
    let prometheus = PrometheusClient::new(&prometheus(&args)?)
        .with_context(|| format!("Prometheus at {}", args.prometheus_url))?;
    let client = operator::client(args.kubeconfig.clone(), args.context.clone()).await?;
    let adapters = Adapters {
        router: Arc::new(IstioRouter::watching(
            client.clone(),
            args.namespace.as_deref(),
        )),
        analytics: match args.analytics {
            AnalyticsMode::Builtin => {
                Arc::new(BuiltinAnalytics::new(PrometheusSource::new(prometheus)))
            }
            AnalyticsMode::Remote => Arc::new(
                RemoteAnalytics::new(duration("analytics-timeout", &args.analytics_timeout)?)
                    .context("the remote analytics client")?,
            ),
        },
        dashboard: Arc::new(GrafanaLink::new()),
    };
    let listener = operator::listen(args.listen).await?;
    operator::run(
        client,
        settings,
        adapters,
        listener,
        operator::shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
