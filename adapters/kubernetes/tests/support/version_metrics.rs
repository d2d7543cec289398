//! A metric source keyed by version name, so that each tutorial version behaves as the seed
//! describes it (reviews-v4 slow, reviews-v5 failing every request, ...).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use iter8_core::measurement::{
    Measurement, MetricError, MetricErrorKind, MetricReadings, MetricsQuery, VersionReading,
    VersionTags,
};
use iter8_core::ports::MetricSource;

/// How one version serves its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// Mean latency (`iter8_latency`), ms.
    pub mean_ms: f64,
    /// 90th percentile latency (`iter8_90_perc_latency`), ms.
    pub p90_ms: f64,
    /// Share of requests answered with a 5xx (`iter8_error_rate`).
    pub error_rate: f64,
}

/// The versions of the seed tutorial, as its text and dashboards describe them.
pub fn tutorial_versions() -> BTreeMap<&'static str, Behaviour> {
    let ok = |mean_ms: f64, p90_ms: f64| Behaviour {
        mean_ms,
        p90_ms,
        error_rate: 0.0,
    };
    BTreeMap::from([
        ("reviews-v2", ok(42.0, 59.0)),
        ("reviews-v3", ok(37.0, 51.0)),
        // "consistently exhibits a high latency of 5 seconds"
        ("reviews-v4", ok(5000.0, 5100.0)),
        // "its error rate is 100%"; fast otherwise
        (
            "reviews-v5",
            Behaviour {
                mean_ms: 31.0,
                p90_ms: 45.0,
                error_rate: 1.0,
            },
        ),
        // like reviews-v3: p90 far below 200 ms
        ("reviews-v6", ok(38.0, 55.0)),
        ("productpage-v1", ok(160.0, 250.0)),
        ("productpage-v2", ok(130.0, 200.0)),
    ])
}

/// One query as the source saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenQuery {
    /// The candidate's version name.
    pub candidate: String,
    /// Metric name -> the value template it came with.
    pub templates: Vec<(String, String)>,
}

/// Readings by version name. Request counts grow with the analysis window, as the 80/20 split
/// of 25 requests/s would give them: 20/s for the baseline, 5/s for the candidate; a version
/// with no request yet has no series at all.
pub struct VersionMetrics {
    versions: BTreeMap<&'static str, Behaviour>,
    seen: Arc<Mutex<Vec<SeenQuery>>>,
}

/// Requests per second the baseline and the candidate get.
const BASELINE_RATE: f64 = 20.0;
const CANDIDATE_RATE: f64 = 5.0;

impl VersionMetrics {
    /// A source over these versions.
    pub fn new(versions: BTreeMap<&'static str, Behaviour>) -> VersionMetrics {
        VersionMetrics {
            versions,
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The queries received, shared so that tests can look after the source moved.
    pub fn seen(&self) -> Arc<Mutex<Vec<SeenQuery>>> {
        self.seen.clone()
    }

    fn version_of(&self, tags: &VersionTags) -> Result<(&'static str, Behaviour), MetricError> {
        tags.values()
            .find_map(|v| self.versions.get_key_value(v.as_str()))
            .map(|(k, b)| (*k, *b))
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
