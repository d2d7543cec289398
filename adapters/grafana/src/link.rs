//! `status.grafanaURL`: the link to the experiment's dashboard.

use chrono::{DateTime, Utc};
use iter8_core::Experiment;
use iter8_core::ports::DashboardLink;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::dashboard::{DASHBOARD_TITLE, DASHBOARD_UID};

/// Characters escaped in a query value: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a URL query value (UTF-8; only `A-Z a-z 0-9 - . _ ~` stay as they are).
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Builds `status.grafanaURL` from the experiment's `analysis.grafanaEndpoint` (default
/// `http://localhost:3000`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrafanaLink;

impl GrafanaLink {
    /// The link builder.
    pub fn new() -> Self {
        GrafanaLink
    }

    /// The dashboard URL for the experiment between `from` and `to` (`None`: `to=now`); `None`
    /// when the experiment's Grafana endpoint is blank.
    pub fn dashboard_url(
        &self,
        experiment: &Experiment,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Option<String> {
        let endpoint = experiment.spec.grafana_endpoint().trim();
        let endpoint = endpoint.trim_end_matches('/');
        if endpoint.is_empty() {
            return None;
        }
        let ts = &experiment.spec.target_service;
        let to = to
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_else(|| "now".to_string());
        let params = [
            ("var-namespace", experiment.target_namespace()),
            ("var-service", ts.name.as_deref().unwrap_or("")),
            ("var-baseline", ts.baseline()),
            ("var-candidate", ts.candidate()),
        ];
        let mut url = format!("{endpoint}/d/{DASHBOARD_UID}/{DASHBOARD_TITLE}?");
        for (key, value) in params {
            url.push_str(key);
            url.push('=');
            url.push_str(&encode_query_value(value));
            url.push('&');
        }
        url.push_str(&format!("from={}&to={to}", from.timestamp_millis()));
        Some(url)
    }
}

impl DashboardLink for GrafanaLink {
    fn url(
        &self,
        experiment: &Experiment,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Option<String> {
        self.dashboard_url(experiment, from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode_query_value("reviews-v2_a.b~"), "reviews-v2_a.b~");
        assert_eq!(
            encode_query_value("a b&c=d/e?f#g+h%"),
            "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25"
        );
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }
}
