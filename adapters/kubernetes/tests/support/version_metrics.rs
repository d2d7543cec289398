//! A metric source keyed by version name, so that each tutorial version behaves as the seed
//! describes it (reviews-v4 slow, reviews-v5 failing every request, ...): the operator's
//! analytics port fed in process, where iter8-test-support's per-version fake Prometheus feeds
//! it over HTTP. Both read the same `iter8_test_support::tutorial_versions`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iter8_core::measurement::{
    Measurement, MetricError, MetricErrorKind, MetricReadings, MetricsQuery, VersionReading,
    VersionTags,
};
use iter8_core::ports::MetricSource;
use iter8_test_support::Behaviour;

/// One query as the source saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenQuery {
    /// The candidate's version name.
    pub candidate: String,
    /// Metric name -> the value template it came with.
    pub templates: Vec<(String, String)>,
}

/// Readings by version name. Request counts grow with the analysis window, as the 80/20 split
/// of 25 requests/s would give them (each [`Behaviour`]'s own rate is not used): 20/s for the
/// baseline, 5/s for the candidate; a version with no request yet has no series at all.
pub struct VersionMetrics {
    versions: BTreeMap<String, Behaviour>,
    seen: Arc<Mutex<Vec<SeenQuery>>>,
}

/// Requests per second the baseline and the candidate get.
const BASELINE_RATE: f64 = 20.0;
const CANDIDATE_RATE: f64 = 5.0;

impl VersionMetrics {
    /// A source over these versions.
    pub fn new(versions: BTreeMap<String, Behaviour>) -> VersionMetrics {
        VersionMetrics {
            versions,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The queries received, shared so that tests can look after the source moved.
    pub fn seen(&self) -> Arc<Mutex<Vec<SeenQuery>>> {
        self.seen.clone()
    }

    fn version_of(&self, tags: &VersionTags) -> Result<(&str, Behaviour), MetricError> {
        tags.values()
            .find_map(|v| self.versions.get_key_value(v.as_str()))
            .map(|(k, b)| (k.as_str(), *b))
            .ok_or_else(|| {
                MetricError::new(
                    MetricErrorKind::Configuration,
                    format!("no behaviour scripted for {tags:?}"),
                )
            })
    }
}

fn value_of(metric: &str, b: &Behaviour, requests: f64) -> Result<f64, MetricError> {
    Ok(match metric {
        "iter8_latency" => b.mean_ms,
        "iter8_90_perc_latency" => b.p90_ms,
        "iter8_error_rate" => b.error_rate,
        "iter8_error_count" => (b.error_rate * requests).round(),
        other => {
            return Err(MetricError::new(
                MetricErrorKind::Configuration,
                format!("no script for metric {other}"),
            ));
        }
    })
}

fn reading(metric: &str, b: &Behaviour, requests: f64) -> Result<VersionReading, MetricError> {
    if requests < 1.0 {
        return Ok(VersionReading {
            value: Measurement::NoData,
            sample_size: Measurement::NoData,
        });
    }
    Ok(VersionReading {
        value: Measurement::Value(value_of(metric, b, requests)?),
        sample_size: Measurement::Value(requests),
    })
}

#[async_trait]
impl MetricSource for VersionMetrics {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        let (_, baseline) = self.version_of(&query.baseline)?;
        let (candidate_name, candidate) = self.version_of(&query.candidate)?;
        self.seen.lock().unwrap().push(SeenQuery {
            candidate: candidate_name.to_string(),
            templates: query
                .metrics
                .iter()
                .map(|m| (m.name.to_string(), m.query_template.to_string()))
                .collect(),
        });
        let secs = (query.window.end - query.window.start)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        let (b_requests, c_requests) = (
            (BASELINE_RATE * secs).floor(),
            (CANDIDATE_RATE * secs).floor(),
        );
        query
            .metrics
            .iter()
            .map(|m| {
                Ok(MetricReadings {
                    metric: m.name.clone(),
                    baseline: reading(&m.name, &baseline, b_requests)?,
                    candidate: reading(&m.name, &candidate, c_requests)?,
                })
            })
            .collect()
    }
}
