//! How to reach Prometheus: base URL, request timeout, retries, authentication and TLS.
//!
//! Secrets (a bearer token, a basic-auth password) are read from a file or an environment
//! variable and never printed: their `Debug` shows `***`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::ExponentialBuilder;

/// Why the settings could not be turned into a client.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The base URL is not an absolute http(s) URL.
    #[error("Prometheus URL `{url}`: {reason}")]
    Url {
        /// The URL as given (credentials removed).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A secret file could not be read.
    #[error("cannot read {what} from file {}: {source}", path.display())]
    SecretFile {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret's environment variable is not set (or not Unicode).
    #[error("cannot read {what}: environment variable `{var}` is not set")]
    SecretEnv {
        /// Which secret.
        what: &'static str,
        /// The variable.
        var: String,
    },
    /// A secret is empty.
    #[error("{what} is empty")]
    EmptySecret {
        /// Which secret.
        what: &'static str,
    },
    /// The CA file could not be read or holds no PEM certificate.
    #[error("CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A secret string; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (e.g. a mounted Kubernetes Secret); surrounding whitespace is trimmed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl SecretSource {
    /// Reads the secret; `what` names it in errors ("bearer token", ...).
    pub fn load(&self, what: &'static str) -> Result<Secret, SettingsError> {
        let raw = match self {
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| SettingsError::SecretFile {
                    what,
                    path: path.clone(),
                    source,
                })?
            }
            SecretSource::Env(var) => std::env::var(var).map_err(|_| SettingsError::SecretEnv {
                what,
                var: var.clone(),
            })?,
        };
        let value = raw.trim();
        if value.is_empty() {
            return Err(SettingsError::EmptySecret { what });
        }
        Ok(Secret::new(value))
    }
}

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// `Authorization: Bearer <token>` with the token read from a file, re-read when the file
    /// changes and after a 401 (see [`crate::token::TokenFile`]).
    BearerFile(PathBuf),
    /// `Authorization: Basic ...`.
    Basic {
        /// The user name (not secret).
        username: String,
        /// The password.
        password: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::BearerFile(path) => f.debug_tuple("BearerFile").field(path).finish(),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"***")
                .finish(),
        }
    }
}

/// TLS options for an `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// Trust only the certificates in this PEM file (like `curl --cacert`).
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate and host name (testing only).
    pub insecure_skip_verify: bool,
}

/// Retries of transport failures (connection refused or reset, timeouts, HTTP 502/503/504).
/// Answers from Prometheus (a bad query, a 4xx) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Pause before the first retry; doubled after each one.
    pub initial_backoff: Duration,
    /// Upper bound of the pause.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };

    /// The pauses between attempts: backon's exponential backoff from `initial_backoff`,
    /// doubling, capped at `max_backoff`, at most `max_retries` of them.
    pub fn schedule(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
    }
}

/// Everything needed to build a [`crate::PrometheusClient`].
#[derive(Clone, PartialEq, Eq)]
pub struct PrometheusSettings {
    /// Base URL, e.g. `http://prometheus.istio-system:9090` (a path prefix is kept).
    pub base_url: String,
    /// Timeout of one HTTP request (connect + answer).
    pub timeout: Duration,
    /// Retries of transport failures.
    pub retry: RetryPolicy,
    /// Authentication.
    pub auth: Auth,
    /// TLS options.
    pub tls: TlsSettings,
    /// Queries sent at the same time, at most (the rest wait for a free slot).
    pub max_concurrent_queries: usize,
}

/// The default of [`PrometheusSettings::max_concurrent_queries`].
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 16;

impl PrometheusSettings {
    /// Settings for a URL with defaults: 10 s timeout, 2 retries, no auth, system roots, 16
    /// queries at once.
    pub fn new(base_url: impl Into<String>) -> Self {
        PrometheusSettings {
            base_url: base_url.into(),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            auth: Auth::None,
            tls: TlsSettings::default(),
            max_concurrent_queries: DEFAULT_MAX_CONCURRENT_QUERIES,
        }
    }

    /// Sets how many queries may be in flight at once (at least one).
    pub fn with_max_concurrent_queries(mut self, n: usize) -> Self {
        self.max_concurrent_queries = n.max(1);
        self
    }

    /// Sets the request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the TLS options.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Trusts only the certificates of a PEM file.
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls.ca_file = Some(path.as_ref().to_path_buf());
        self
    }
}

/// The URL without user info, query or fragment, for messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

impl fmt::Debug for PrometheusSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusSettings")
            .field("base_url", &redact_url(&self.base_url))
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("max_concurrent_queries", &self.max_concurrent_queries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let s = PrometheusSettings::new("https://admin:hunter2@prom.example:9090/?x=1").with_auth(
            Auth::Basic {
                username: "admin".into(),
                password: Secret::new("hunter2"),
            },
        );
        let text = format!("{s:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("prom.example"), "{text}");
        let bearer = Auth::Bearer(Secret::new("tok-123"));
        assert_eq!(format!("{bearer:?}"), "Bearer(***)");
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    }

    #[test]
    fn secrets_load_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let s = SecretSource::File(path.clone())
            .load("bearer token")
            .unwrap();
        assert_eq!(s.expose(), "abc");
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(
            SecretSource::File(path)
                .load("bearer token")
                .unwrap_err()
                .to_string(),
            "bearer token is empty"
        );
        let missing = SecretSource::Env("ITER8_PROMETHEUS_TEST_SURELY_UNSET".into())
            .load("password")
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("ITER8_PROMETHEUS_TEST_SURELY_UNSET")
        );
        let gone = SecretSource::File(dir.path().join("nope")).load("password");
        assert!(
            gone.unwrap_err()
                .to_string()
                .contains("cannot read password from file")
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops_after_max_retries() {
        use backon::BackoffBuilder as _;
        let r = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let pauses: Vec<_> = r.schedule().build().map(|d| d.as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350, 350]);
        assert_eq!(RetryPolicy::NONE.schedule().build().next(), None);
    }
}
