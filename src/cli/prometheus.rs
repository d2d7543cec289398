//! `PrometheusArgs`: how `iter8 analyze`, `iter8 operator` and `iter8 analytics serve` reach
//! Prometheus. One set of flags (each also read from its environment variable), flattened into
//! each command, so the three spell everything the same way.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::TypedValueParser as _;
use iter8_core::duration::parse_go;
use iter8_prometheus::settings::DEFAULT_MAX_CONCURRENT_QUERIES;
use iter8_prometheus::{
    Auth, PrometheusClient, PrometheusSettings, RetryPolicy, SecretSource, TlsSettings,
};

/// The in-cluster Prometheus of an Istio installation.
pub const DEFAULT_URL: &str = "http://prometheus.istio-system:9090";

/// A positive Go duration (`10s`, `1m30s`), for clap.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_go(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be positive".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Prometheus' URL, authentication, TLS, timeout and retries.
#[derive(clap::Args, Debug, Clone)]
pub struct PrometheusArgs {
    /// Prometheus base URL (a path prefix such as /prometheus is kept).
    #[arg(
        long = "prometheus-url",
        visible_alias = "prometheus",
        env = "ITER8_PROMETHEUS_URL",
        value_name = "URL",
        default_value = DEFAULT_URL
    )]
    pub url: String,
    /// Timeout of one Prometheus request: connect and answer (Go duration).
    #[arg(
        long = "prometheus-timeout",
        env = "ITER8_PROMETHEUS_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = positive_duration
    )]
    pub timeout: Duration,
    /// Retries of a Prometheus request after a transport failure.
    #[arg(
        long = "prometheus-retries",
        env = "ITER8_PROMETHEUS_RETRIES",
        value_name = "N",
        default_value_t = 2
    )]
    pub retries: u32,
    /// Bearer token file (e.g. a mounted Secret or service-account token).
    #[arg(
        long = "prometheus-token-file",
        env = "ITER8_PROMETHEUS_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with_all = ["token_env", "username"]
    )]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding a bearer token.
    #[arg(
        long = "prometheus-token-env",
        env = "ITER8_PROMETHEUS_TOKEN_ENV",
        value_name = "VAR",
        conflicts_with = "username"
    )]
    pub token_env: Option<String>,
    /// Basic-auth user name (the password comes from --prometheus-password-file or -env).
    #[arg(
        long = "prometheus-username",
        env = "ITER8_PROMETHEUS_USERNAME",
        value_name = "USER"
    )]
    pub username: Option<String>,
    /// Basic-auth password file.
    #[arg(
        long = "prometheus-password-file",
        env = "ITER8_PROMETHEUS_PASSWORD_FILE",
        value_name = "FILE",
        requires = "username",
        conflicts_with = "password_env"
    )]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the basic-auth password.
    #[arg(
        long = "prometheus-password-env",
        env = "ITER8_PROMETHEUS_PASSWORD_ENV",
        value_name = "VAR",
        requires = "username"
    )]
    pub password_env: Option<String>,
    /// Trust only the CA certificates in this PEM file (like curl --cacert).
    #[arg(
        long = "prometheus-ca-file",
        env = "ITER8_PROMETHEUS_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// Do not verify Prometheus' TLS certificate (testing only).
    #[arg(
        long = "prometheus-insecure-skip-verify",
        env = "ITER8_PROMETHEUS_INSECURE_SKIP_VERIFY"
    )]
    pub insecure_skip_verify: bool,
    /// Prometheus queries in flight at once, at most; more wait for a free slot.
    #[arg(
        long = "prometheus-max-concurrent-queries",
        env = "ITER8_PROMETHEUS_MAX_CONCURRENT_QUERIES",
        value_name = "N",
        default_value_t = DEFAULT_MAX_CONCURRENT_QUERIES,
        value_parser = clap::value_parser!(u16).range(1..).map(usize::from)
    )]
    pub max_concurrent_queries: usize,
}

/// Where a secret comes from: its file flag, else its environment-variable flag.
fn secret_source(file: &Option<PathBuf>, env: &Option<String>) -> Option<SecretSource> {
    match (file, env) {
        (Some(path), _) => Some(SecretSource::File(path.clone())),
        (None, Some(var)) => Some(SecretSource::Env(var.clone())),
        (None, None) => None,
    }
}

impl PrometheusArgs {
    /// The authentication the flags ask for. Secrets are read at start-up, so a missing file
    /// or variable is reported then (a token file when the client is built, which re-reads it
    /// when it changes and after a 401).
    fn auth(&self) -> anyhow::Result<Auth> {
        match secret_source(&self.token_file, &self.token_env) {
            Some(SecretSource::File(path)) => return Ok(Auth::BearerFile(path)),
            Some(env) => return Ok(Auth::Bearer(env.load("bearer token")?)),
            None => {}
        }
        let Some(username) = &self.username else {
            return Ok(Auth::None);
        };
        let Some(password) = secret_source(&self.password_file, &self.password_env) else {
            bail!(
                "--prometheus-username needs --prometheus-password-file or --prometheus-password-env"
            )
        };
        Ok(Auth::Basic {
            username: username.clone(),
            password: password.load("basic-auth password")?,
        })
    }

    /// The settings these flags describe.
    pub fn settings(&self) -> anyhow::Result<PrometheusSettings> {
        Ok(PrometheusSettings::new(self.url.clone())
            .with_timeout(self.timeout)
            .with_retry(RetryPolicy {
                max_retries: self.retries,
                ..RetryPolicy::default()
            })
            .with_auth(self.auth()?)
            .with_tls(TlsSettings {
                ca_file: self.ca_file.clone(),
                insecure_skip_verify: self.insecure_skip_verify,
            })
            .with_max_concurrent_queries(self.max_concurrent_queries))
    }

    /// A client for these flags.
    pub fn client(&self) -> anyhow::Result<PrometheusClient> {
        let settings = self.settings()?;
        PrometheusClient::new(&settings).with_context(|| format!("Prometheus at {}", self.url))
    }
}
