//! The HTTP client for Prometheus' instant-query API (`GET /api/v1/query?query=...&time=...`).
//!
//! Every failure comes back as a [`MetricError`] of the right [`MetricErrorKind`]:
//! connection refused / reset / TLS → `Unreachable`; no answer in time → `Timeout`; an answer
//! with `"status": "error"` → `Backend` with Prometheus's own text (`Timeout` when Prometheus
//! says its query timed out); any other non-2xx → `HttpStatus`; a body that is not the API's
//! JSON, or a result that is not an instant vector → `BadResponse`.
//!
//! Prometheus is trusted less than the operator: an answer is read up to
//! [`MAX_RESPONSE_BYTES`], an error message (it ends up in an experiment's status) is at most
//! [`MAX_MESSAGE_CHARS`] characters with [`TRUNCATED`] marking a cut, a body that is not the
//! API's JSON is never quoted, and at most `max_concurrent_queries` queries are in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use iter8_core::measurement::{MetricError, MetricErrorKind};
use reqwest::{StatusCode, Url};
use serde::Deserialize;

use backon::BackoffBuilder as _;
use iter8_http_client::{BodyError, bounded, read_capped};

use crate::settings::{Auth, PrometheusSettings, RetryPolicy, Secret, SettingsError, redact_url};
use crate::token::TokenFile;

/// The largest answer read: a decision's instant vectors are a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The longest error message.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What ends a truncated message.
pub use iter8_http_client::TRUNCATED;

/// One series of an instant vector: its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series' full label set.
    pub labels: BTreeMap<String, String>,
    /// Its value (may be NaN or ±Inf).
    pub value: f64,
}

/// A client for one Prometheus server.
pub struct PrometheusClient {
    http: reqwest::Client,
    query_url: Url,
    credentials: Credentials,
    retry: RetryPolicy,
    requests: AtomicU64,
    /// One permit per query in flight.
    in_flight: tokio::sync::Semaphore,
}

impl std::fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("query_url", &self.query_url.as_str())
            .field("credentials", &self.credentials)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// What each request carries: [`Auth`], with a token file opened (it is re-read when rotated).
#[derive(Debug)]
enum Credentials {
    None,
    Bearer(Secret),
    BearerFile(TokenFile),
    Basic { username: String, password: Secret },
}

impl Credentials {
    /// Opens a token file now, so a missing or empty one is reported when the client is built.
    fn open(auth: &Auth) -> Result<Self, SettingsError> {
        Ok(match auth {
            Auth::None => Credentials::None,
            Auth::Bearer(token) => Credentials::Bearer(token.clone()),
            Auth::BearerFile(path) => Credentials::BearerFile(TokenFile::open(path)?),
            Auth::Basic { username, password } => Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            },
        })
    }
}

/// What one attempt produced: done (success or a final error) or worth retrying.
enum Attempt {
    Done(Result<Vec<Series>, MetricError>),
    Retry(MetricError),
}

/// Parses a sample value as Prometheus writes it (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
pub fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok(),
    }
}

/// The `time` parameter: Unix seconds with millisecond precision.
pub fn format_time(t: DateTime<Utc>) -> String {
    let ms = t.timestamp_millis();
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// A message bounded to [`MAX_MESSAGE_CHARS`].
fn error(kind: MetricErrorKind, message: String) -> MetricError {
    MetricError::new(kind, bounded(&message, MAX_MESSAGE_CHARS))
}

impl PrometheusClient {
    /// Builds a client (installs rustls' ring provider if no provider is installed yet).
    pub fn new(settings: &PrometheusSettings) -> Result<Self, SettingsError> {
        // reqwest is built with `rustls-no-provider`: a process-wide provider must exist before
        // a client is built. Err means one is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url_error = |reason: &str| SettingsError::Url {
            url: redact_url(&settings.base_url),
            reason: reason.to_string(),
        };
        let mut base =
            Url::parse(settings.base_url.trim()).map_err(|e| url_error(&e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(url_error("the scheme must be http or https"));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(url_error("not an absolute URL with a host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(url_error("must not have a query or a fragment"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(url_error(
                "credentials in the URL are not accepted; use basic auth from a file or an environment variable",
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let query_url = base
            .join("api/v1/query")
            .map_err(|e| url_error(&e.to_string()))?;

        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .no_proxy();
        if let Some(path) = &settings.tls.ca_file {
            let pem = std::fs::read(path).map_err(|e| SettingsError::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SettingsError::CaFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(SettingsError::CaFile {
                    path: path.clone(),
                    reason: "no PEM certificate in the file".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        if settings.tls.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| SettingsError::Client(e.to_string()))?;
        Ok(PrometheusClient {
            http,
            query_url,
            credentials: Credentials::open(&settings.auth)?,
            retry: settings.retry,
            requests: AtomicU64::new(0),
            in_flight: tokio::sync::Semaphore::new(settings.max_concurrent_queries.max(1)),
        })
    }

    /// The query endpoint, e.g. `http://127.0.0.1:9090/api/v1/query`.
    pub fn query_url(&self) -> &str {
        self.query_url.as_str()
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Runs an instant query evaluated at `time`; retries transport failures.
    pub async fn query(
        &self,
        promql: &str,
        time: DateTime<Utc>,
    ) -> Result<Vec<Series>, MetricError> {
        let mut url = self.query_url.clone();
        url.query_pairs_mut()
            .append_pair("query", promql)
            .append_pair("time", &format_time(time));
        let mut pauses = self.retry.schedule().build();
        let mut attempts = 1;
        loop {
            let attempt = self.attempt(url.clone()).await;
            match attempt {
                Attempt::Done(result) => return result,
                Attempt::Retry(err) => match pauses.next() {
                    Some(pause) => {
                        tokio::time::sleep(pause).await;
                        attempts += 1;
                    }
                    None if attempts > 1 => {
                        let message = format!("{} (after {attempts} attempts)", err.message);
                        return Err(MetricError::new(err.kind, message));
                    }
                    None => return Err(MetricError::new(err.kind, err.message)),
                },
            }
        }
    }

    /// Sends one GET with the current credentials.
    async fn send(&self, url: Url) -> Result<reqwest::Response, reqwest::Error> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let request = self.http.get(url);
        let request = match &self.credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::BearerFile(file) => request.bearer_auth(file.current().expose()),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        };
        request.send().await
    }

    async fn attempt(&self, url: Url) -> Attempt {
        // The semaphore is never closed, so a permit always comes.
        let _permit = self.in_flight.acquire().await.ok();
        let mut response = match self.send(url.clone()).await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(self.transport_error(&e)),
        };
        // A rotated token file: re-read it and try once more with the new token.
        if response.status() == StatusCode::UNAUTHORIZED
            && matches!(&self.credentials, Credentials::BearerFile(file) if file.reload())
        {
            response = match self.send(url).await {
                Ok(r) => r,
                Err(e) => return Attempt::Retry(self.transport_error(&e)),
            };
        }
        let status = response.status();
        let body = match read_capped(response, MAX_RESPONSE_BYTES).await {
            Ok(b) => b,
            Err(e @ BodyError::TooLarge { .. }) => {
                return Attempt::Done(Err(self.bad_response(format!("HTTP {status}: {e}"))));
            }
            Err(BodyError::Http(e)) => return Attempt::Retry(self.transport_error(&e)),
        };
        let parsed = serde_json::from_slice::<ApiResponse>(&body);
        if let Ok(api) = &parsed
            && api.status == "error"
        {
            let error_type = api.error_type.as_deref().unwrap_or("error");
            let text = api.error.as_deref().unwrap_or("(no error text)");
            let kind = if error_type == "timeout" {
                MetricErrorKind::Timeout
            } else {
                MetricErrorKind::Backend
            };
            return Attempt::Done(Err(error(
                kind,
                format!("Prometheus rejected the query ({error_type}): {text}"),
            )));
        }
        if !status.is_success() {
            // The body is not quoted: it may be anything (a proxy's page, a login form).
            let err = error(
                MetricErrorKind::HttpStatus,
                format!(
                    "{} answered HTTP {status} (a body of {} bytes that is not Prometheus' API JSON)",
                    self.query_url,
                    body.len()
                ),
            );
            let transient = matches!(
                status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            );
            return if transient {
                Attempt::Retry(err)
            } else {
                Attempt::Done(Err(err))
            };
        }
        Attempt::Done(match parsed {
            Ok(api) => self.vector(api),
            Err(e) => Err(self.bad_response(format!(
                "the answer ({} bytes) is not Prometheus' API JSON: {e}",
                body.len()
            ))),
        })
    }

    fn vector(&self, api: ApiResponse) -> Result<Vec<Series>, MetricError> {
        if api.status != "success" {
            return Err(self.bad_response(format!("unknown status `{}`", api.status)));
        }
        let data = api
            .data
            .ok_or_else(|| self.bad_response("a successful answer without `data`".into()))?;
        if data.result_type != "vector" {
            return Err(self.bad_response(format!(
                "the query returned a {}, not an instant vector; a query template must return one series per version",
                data.result_type
            )));
        }
        let samples: Vec<VectorSample> = serde_json::from_value(data.result)
            .map_err(|e| self.bad_response(format!("malformed vector: {e}")))?;
        samples
            .into_iter()
            .map(|s| {
                let value = parse_sample_value(&s.value.1).ok_or_else(|| {
                    self.bad_response(format!("sample value `{}` is not a number", s.value.1))
                })?;
                Ok(Series {
                    labels: s.metric,
                    value,
                })
            })
            .collect()
    }

    fn bad_response(&self, what: String) -> MetricError {
        error(
            MetricErrorKind::BadResponse,
            format!("{}: {what}", self.query_url),
        )
    }

    fn transport_error(&self, e: &reqwest::Error) -> MetricError {
        // reqwest's Display is short; the source chain says why (refused, reset, certificate).
        let mut why = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why = s.to_string();
            source = s.source();
        }
        let why = if why.is_empty() { e.to_string() } else { why };
        if e.is_timeout() {
            error(
                MetricErrorKind::Timeout,
                format!("{} did not answer in time: {why}", self.query_url),
            )
        } else {
            error(
                MetricErrorKind::Unreachable,
                format!("cannot reach {}: {why}", self.query_url),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sample_values() {
        assert_eq!(parse_sample_value("1.5"), Some(1.5));
        assert_eq!(parse_sample_value("3600"), Some(3600.0));
        assert!(parse_sample_value("NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_sample_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_sample_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_sample_value("1e3"), Some(1000.0));
        assert_eq!(parse_sample_value("abc"), None);
    }

    #[test]
    fn time_parameter() {
        let t = Utc
            .timestamp_opt(1_704_067_200, 5_000_000)
            .single()
            .unwrap();
        assert_eq!(format_time(t), "1704067200.005");
    }

    #[test]
    fn urls() {
        let c = PrometheusClient::new(&PrometheusSettings::new("http://prom:9090")).unwrap();
        assert_eq!(c.query_url(), "http://prom:9090/api/v1/query");
        let c = PrometheusClient::new(&PrometheusSettings::new("https://h/prometheus")).unwrap();
        assert_eq!(c.query_url(), "https://h/prometheus/api/v1/query");
        for bad in [
            "prom:9090",
            "ftp://h",
            "http://u:p@h",
            "http://h/?q=1",
            "not a url",
        ] {
            let err = PrometheusClient::new(&PrometheusSettings::new(bad)).unwrap_err();
            assert!(
                err.to_string().starts_with("Prometheus URL"),
                "{bad}: {err}"
            );
            assert!(!err.to_string().contains(":p@"), "{err}");
        }
    }
}
