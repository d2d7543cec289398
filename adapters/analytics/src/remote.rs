//! Remote analytics: the core's [`Analytics`] port over the iter8-analytics v0.2.1 API, so the
//! operator can use the original service or `iter8 analytics serve`.
//!
//! The request is the one iter8-controller v0.2 sent: per version `start_time` / `end_time`
//! (RFC 3339, whole seconds) and `tags`; `_last_state` (`{}` on the first call);
//! `traffic_control` with `max_traffic_percent`, `step_size` (check_and_increment,
//! epsilon_t_greedy) or `confidence` and `reward` (Bayesian), and the criteria with their
//! templates, `is_counter`, `absent_value` (a string, `"None"` for no value), `sample_size` and
//! `stop_on_failure`. Whole numbers are written without a fraction (`10`, not `10.0`), as Go's
//! encoder does, so the original service words its conclusions the same way.
//!
//! `POST <analyticsService>/api/v1/experiment/<algorithm>`, with a timeout (default 10 s). Any
//! failure is an [`AnalyticsError::Service`] naming the URL, the HTTP status and the service's
//! `message`. `increment_without_check` is never sent (iter8 v0.2 did not either).
//!
//! An experiment's author chooses `analyticsService`, the operator does not: the client only
//! calls endpoints on its allow-list (by default iter8's own default service), follows no
//! redirects, reads at most [`MAX_RESPONSE_BYTES`] of an answer and puts at most
//! [`MAX_MESSAGE_CHARS`] characters of an error into the experiment's status — the service's
//! `message`, never its raw body.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use iter8_core::analytics::{
    AnalysisOutcome, AnalysisRequest, AnalyticsError, increment_without_check,
};
use iter8_core::ports::Analytics;
use iter8_core::{Assessment, Strategy};
use serde_json::{Map, Value, json};

use crate::response::AnalyticsResponseWire;

/// The default timeout of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read from the service: a decision is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// The longest error message (it ends up in the experiment's status).
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What ends a truncated message.
pub const TRUNCATED: &str = "… (truncated)";

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// reqwest refused the configuration.
    #[error("analytics client: {0}")]
    Client(#[from] reqwest::Error),
    /// An allowed endpoint is not an absolute http(s) URL.
    #[error("allowed analytics endpoint `{url}`: {reason}")]
    Endpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// [`Analytics`] over a remote iter8-analytics v0.2.1 API.
#[derive(Debug, Clone)]
pub struct RemoteAnalytics {
    http: reqwest::Client,
    timeout: Duration,
    endpoint: Option<String>,
    /// The endpoints an experiment may name, normalised by [`normalise_endpoint`].
    allowed: Vec<String>,
}

/// An endpoint in the form the allow-list compares: scheme, host and port as `Url` writes them
/// (lower-case host, default port dropped) and the path without a trailing `/`.
pub fn normalise_endpoint(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| e.to_string())?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err("the scheme must be http or https".into());
    }
    if parsed.host_str().is_none() {
        return Err("no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not accepted".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or a fragment".into());
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// `text`, cut to `max` characters with [`TRUNCATED`] appended when it is longer.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}{TRUNCATED}", &text[..i]),
        None => text.to_string(),
    }
}

/// Why an answer's body could not be read.
enum BodyError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads a body chunk by chunk, giving up once it exceeds `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The algorithm name in the API's URL for a strategy (`None`: not served remotely).
pub fn algorithm(strategy: &Strategy) -> Option<&'static str> {
    match strategy {
        Strategy::CheckAndIncrement => Some("check_and_increment"),
        Strategy::EpsilonGreedy => Some("epsilon_t_greedy"),
        Strategy::PosteriorBayesianRouting => Some("posterior_bayesian_routing"),
        Strategy::OptimisticBayesianRouting => Some("optimistic_bayesian_routing"),
        _ => None,
    }
}

/// A number as Go's `encoding/json` writes a float64: whole numbers without a fraction.
pub fn go_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn min_max(mm: &iter8_core::MinMax) -> Value {
    json!({"min": go_number(mm.min), "max": go_number(mm.max)})
}

/// The JSON body iter8-controller v0.2 would send for `request`.
pub fn payload(request: &AnalysisRequest) -> Value {
    let version = |tags: &iter8_core::measurement::VersionTags| {
        json!({
            "start_time": rfc3339(request.window.start),
            "end_time": rfc3339(request.window.end),
            "tags": tags,
        })
    };
    let bayesian = matches!(
        request.strategy,
        Strategy::PosteriorBayesianRouting | Strategy::OptimisticBayesianRouting
    );
    let criteria: Vec<Value> = request
        .criteria
        .iter()
        .map(|c| {
            let mut m = json!({
                "metric_name": c.metric.name,
                "type": c.tolerance_type.as_str(),
                "value": go_number(c.tolerance),
                "metric_query_template": c.metric.query_template,
                "metric_sample_size_query_template": c.metric.sample_size_query_template,
                "is_counter": c.metric.is_counter,
                "absent_value": c.metric.absent_value.as_api_string(),
                "sample_size": c.sample_size,
                "stop_on_failure": c.stop_on_failure,
            });
            if let (Some(mm), Some(obj)) = (&c.min_max, m.as_object_mut()) {
                obj.insert("min_max".into(), min_max(mm));
            }
            m
        })
        .collect();
    let mut tc = Map::new();
    tc.insert(
        "max_traffic_percent".into(),
        go_number(request.max_traffic_percentage),
    );
    if bayesian {
        tc.insert("confidence".into(), go_number(request.confidence));
        if let Some((metric, mm)) = &request.reward {
            let mut r = json!({
                "metric_name": metric.name,
                "is_counter": metric.is_counter,
                "absent_value": metric.absent_value.as_api_string(),
                "metric_query_template": metric.query_template,
                "metric_sample_size_query_template": metric.sample_size_query_template,
            });
            if let (Some(mm), Some(obj)) = (mm, r.as_object_mut()) {
                obj.insert("min_max".into(), min_max(mm));
            }
            tc.insert("reward".into(), r);
        }
        if request.seed != 0 {
            tc.insert("seed".into(), Value::from(request.seed));
        }
    } else {
        tc.insert("step_size".into(), go_number(request.step_size));
    }
    tc.insert("success_criteria".into(), Value::Array(criteria));
    let last_state = match &request.last_state {
        None => json!({}),
        Some(s) => s.as_json().clone(),
    };
    json!({
        "baseline": version(&request.baseline),
        "candidate": version(&request.candidate),
        "_last_state": last_state,
        "traffic_control": tc,
    })
}

/// The service's own words from an error body: `message`, plus flask_restplus' `errors`. A body
/// without them is not quoted (it may be anything, e.g. a proxy's HTML page).
fn service_message(body: &[u8]) -> String {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let message = v.get("message").and_then(Value::as_str).map(str::to_string);
    let errors = v.get("errors").and_then(Value::as_object).map(|e| {
        e.iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; ")
    });
    match (message, errors) {
        (Some(m), Some(e)) => format!("{m} ({e})"),
        (Some(m), None) => m,
        (None, _) => format!(
            "the answer ({} bytes) is not an iter8-analytics error message",
            body.len()
        ),
    }
}

/// Each criterion's tolerance type, tolerance and sample size, from the request: the API does not
/// echo them, and the built-in analytics reports them, so the status is the same either way.
fn with_criteria(mut assessment: Assessment, request: &AnalysisRequest) -> Assessment {
    for (i, a) in assessment.success_criteria.iter_mut().enumerate() {
        let criterion = request
            .criteria
            .get(i)
            .filter(|c| *c.metric.name == *a.metric_name)
            .or_else(|| {
                request
                    .criteria
                    .iter()
                    .find(|c| *c.metric.name == *a.metric_name)
            });
        if let Some(c) = criterion {
            a.tolerance_type
                .get_or_insert_with(|| c.tolerance_type.as_str().to_string());
            a.tolerance.get_or_insert(c.tolerance);
            a.sample_size.get_or_insert(c.sample_size);
        }
    }
    assessment
}

impl RemoteAnalytics {
    /// A client whose calls time out after `timeout` (installs rustls' ring provider if none is
    /// installed yet).
    pub fn new(timeout: Duration) -> Result<Self, RemoteError> {
        // reqwest is built with `rustls-no-provider`: a process-wide provider must exist before a
        // client is built. Err means one is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            // A redirect would lead the operator to a URL no allow-list checked.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let default =
            normalise_endpoint(iter8_core::model::DEFAULT_ANALYTICS_SERVICE).map_err(|reason| {
                RemoteError::Endpoint {
                    url: iter8_core::model::DEFAULT_ANALYTICS_SERVICE.into(),
                    reason,
                }
            })?;
        Ok(RemoteAnalytics {
            http,
            timeout,
            endpoint: None,
            allowed: vec![default],
        })
    }

    /// Allows experiments to name exactly these endpoints (instead of iter8's default
    /// `http://iter8-analytics.iter8:8080`).
    pub fn with_allowed_endpoints<S: AsRef<str>>(
        mut self,
        endpoints: impl IntoIterator<Item = S>,
    ) -> Result<Self, RemoteError> {
        self.allowed = endpoints
            .into_iter()
            .map(|url| {
                normalise_endpoint(url.as_ref()).map_err(|reason| RemoteError::Endpoint {
                    url: url.as_ref().to_string(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Whether an experiment may name `url` as its analytics service.
    pub fn is_allowed(&self, url: &str) -> bool {
        normalise_endpoint(url).is_ok_and(|u| self.allowed.contains(&u))
    }

    /// Calls `endpoint` instead of each request's `analytics_service`.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The URL a request is sent to.
    pub fn url(&self, request: &AnalysisRequest, algorithm: &str) -> String {
        let base = self
            .endpoint
            .as_deref()
            .unwrap_or(&request.analytics_service)
            .trim_end_matches('/');
        format!("{base}/api/v1/experiment/{algorithm}")
    }

    async fn call(&self, url: &str, body: &Value) -> Result<AnalyticsResponseWire, AnalyticsError> {
        // Every message is bounded: it becomes part of the experiment's status.
        let service = |m: String| AnalyticsError::Service(bounded(&m, MAX_MESSAGE_CHARS));
        let response = self.http.post(url).json(body).send().await.map_err(|e| {
            if e.is_timeout() {
                service(format!("POST {url}: no answer within {:?}", self.timeout))
            } else {
                service(format!("POST {url}: cannot reach the service: {e}"))
            }
        })?;
        let status = response.status();
        let body = read_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => service(format!(
                    "POST {url}: HTTP {}: the answer exceeds {MAX_RESPONSE_BYTES} bytes",
                    status.as_u16()
                )),
                BodyError::Http(e) if e.is_timeout() => {
                    service(format!("POST {url}: no answer within {:?}", self.timeout))
                }
                BodyError::Http(e) => service(format!("POST {url}: reading the answer: {e}")),
            })?;
        if !status.is_success() {
            return Err(service(format!(
                "POST {url}: HTTP {}: {}",
                status.as_u16(),
                service_message(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            service(format!(
                "POST {url}: the answer is not an iter8-analytics response: {e}"
            ))
        })
    }
}

#[async_trait]
impl Analytics for RemoteAnalytics {
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisOutcome, AnalyticsError> {
        if request.strategy == Strategy::IncrementWithoutCheck {
            return increment_without_check(request);
        }
        let Some(name) = algorithm(&request.strategy) else {
            return Err(AnalyticsError::Invalid(format!(
                "strategy `{}` has no remote analytics endpoint",
                request.strategy
            )));
        };
        if self.endpoint.is_none() && request.analytics_service.trim().is_empty() {
            return Err(AnalyticsError::Service(
                "no analytics service URL (spec.analysis.analyticsService)".to_string(),
            ));
        }
        if self.endpoint.is_none() && !self.is_allowed(&request.analytics_service) {
            return Err(AnalyticsError::Invalid(bounded(
                &format!(
                    "spec.analysis.analyticsService `{}` is not an allowed analytics endpoint (allowed: {})",
                    request.analytics_service,
                    self.allowed.join(", ")
                ),
                MAX_MESSAGE_CHARS,
            )));
        }
        let url = self.url(request, name);
        let response = self.call(&url, &payload(request)).await?;
        let candidate = response
            .candidate
            .as_ref()
            .and_then(|c| c.traffic_percentage)
            .filter(|t| t.is_finite())
            .ok_or_else(|| {
                AnalyticsError::Service(format!(
                    "POST {url}: the answer has no candidate.traffic_percentage"
                ))
            })?;
        let state = match &response.last_state {
            None | Some(Value::Null) => json!({}),
            Some(s) => s.clone(),
        }
        .into();
        Ok(AnalysisOutcome {
            candidate_traffic_percentage: candidate,
            assessment: with_criteria(response.assessment(), request),
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_written_as_go_does() {
        assert_eq!(go_number(10.0).to_string(), "10");
        assert_eq!(go_number(0.02).to_string(), "0.02");
        assert_eq!(go_number(-3.0).to_string(), "-3");
    }

    #[test]
    fn error_bodies_are_summarised() {
        assert_eq!(
            service_message(br#"{"message": "Start time cannot exceed end time"}"#),
            "Start time cannot exceed end time"
        );
        assert_eq!(
            service_message(
                br#"{"errors": {"baseline.start_time": "'start_time' is a required property"}, "message": "Input payload validation failed"}"#
            ),
            "Input payload validation failed (baseline.start_time: 'start_time' is a required property)"
        );
        // Anything else is not quoted.
        assert_eq!(
            service_message(b"<html>bad gateway</html>"),
            "the answer (24 bytes) is not an iter8-analytics error message"
        );
    }

    #[test]
    fn long_messages_are_cut_with_a_marker() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdé", 4), format!("abcd{TRUNCATED}"));
    }

    #[test]
    fn endpoints_compare_normalised() {
        let remote = RemoteAnalytics::new(DEFAULT_TIMEOUT)
            .unwrap()
            .with_allowed_endpoints(["http://Analytics.iter8:80/"])
            .unwrap();
        assert!(remote.is_allowed("http://analytics.iter8"));
        assert!(remote.is_allowed("http://analytics.iter8:80"));
        assert!(!remote.is_allowed("http://analytics.iter8:8080"));
        assert!(!remote.is_allowed("https://analytics.iter8"));
        assert!(!remote.is_allowed("http://evil.example"));
        let default = RemoteAnalytics::new(DEFAULT_TIMEOUT).unwrap();
        assert!(default.is_allowed("http://iter8-analytics.iter8:8080/"));
        assert!(!default.is_allowed("http://169.254.169.254"));
        let err = RemoteAnalytics::new(DEFAULT_TIMEOUT)
            .unwrap()
            .with_allowed_endpoints(["ftp://x"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "allowed analytics endpoint `ftp://x`: the scheme must be http or https"
        );
    }
}
