//! The response's wire types (the swagger's `default_response`), marshalled as flask_restplus
//! `marshal_with` does: every declared field, `null` when there is no value, nothing else.
//!
//! The same types read a response (remote analytics); reading is lenient: a missing or `null`
//! field is `None`.

use iter8_core::analytics::AnalysisOutcome;
use iter8_core::model::{Assessment, CriterionAssessment, Reading};
use serde::{Deserialize, Serialize};

use crate::request::Prepared;

/// `stat_details`: only `sample_size` and `value` are ever filled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StatDetails {
    /// Requests counted (Python `int()` of the sample-size query's value).
    #[serde(default)]
    pub sample_size: Option<i64>,
    /// Always `null`.
    #[serde(default)]
    pub min: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub max: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub mean: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub stddev: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub first_quartile: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub median: Option<f64>,
    /// Always `null`.
    #[serde(default)]
    pub third_quartile: Option<f64>,
    /// Always `null`.
    #[serde(default, rename = "95th_percentile")]
    pub p95: Option<f64>,
    /// Always `null`.
    #[serde(default, rename = "99th_percentile")]
    pub p99: Option<f64>,
    /// The metric's value (`null`: no value).
    #[serde(default)]
    pub value: Option<f64>,
}

/// `metric_details`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MetricDetails {
    /// The metric's name.
    #[serde(default)]
    pub metric_name: Option<String>,
    /// Whether it is a counter.
    #[serde(default)]
    pub is_counter: Option<bool>,
    /// The request's `absent_value` (default `"0.0"`).
    #[serde(default)]
    pub absent_value: Option<String>,
    /// The measurement.
    #[serde(default)]
    pub statistics: Option<StatDetails>,
}

/// `version_measurements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VersionMeasurements {
    /// One per criterion, in order.
    #[serde(default)]
    pub metrics: Option<Vec<MetricDetails>>,
    /// The recommended share.
    #[serde(default)]
    pub traffic_percentage: Option<f64>,
}

/// `summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SummaryWire {
    /// Plain-English summary.
    #[serde(default)]
    pub conclusions: Option<Vec<String>>,
    /// Whether every criterion is met.
    #[serde(default)]
    pub all_success_criteria_met: Option<bool>,
    /// Whether the experiment must stop.
    #[serde(default)]
    pub abort_experiment: Option<bool>,
}

/// `success_criterion_output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CriterionOutput {
    /// The criterion's metric.
    #[serde(default)]
    pub metric_name: Option<String>,
    /// Findings.
    #[serde(default)]
    pub conclusions: Option<Vec<String>>,
    /// Whether the candidate meets it.
    #[serde(default)]
    pub success_criterion_met: Option<bool>,
    /// Whether it demands an abort.
    #[serde(default)]
    pub abort_experiment: Option<bool>,
}

/// `assessment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AssessmentWire {
    /// The summary.
    #[serde(default)]
    pub summary: Option<SummaryWire>,
    /// Per criterion.
    #[serde(default)]
    pub success_criteria: Option<Vec<CriterionOutput>>,
}

/// `default_response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AnalyticsResponseWire {
    /// The Prometheus URL the service queries.
    #[serde(default)]
    pub metric_backend_url: Option<String>,
    /// The baseline's measurements and share.
    #[serde(default)]
    pub baseline: Option<VersionMeasurements>,
    /// The candidate's measurements and share.
    #[serde(default)]
    pub candidate: Option<VersionMeasurements>,
    /// The verdicts.
    #[serde(default)]
    pub assessment: Option<AssessmentWire>,
    /// The state to pass on the next call.
    #[serde(default, rename = "_last_state")]
    pub last_state: Option<serde_json::Value>,
}

fn statistics(reading: Option<Reading>) -> StatDetails {
    let r = reading.unwrap_or_default();
    StatDetails {
        sample_size: Some(r.sample_size.trunc() as i64),
        value: r.value.filter(|v| v.is_finite()),
        ..StatDetails::default()
    }
}

fn metrics(
    prepared: &Prepared,
    criteria: &[CriterionAssessment],
    pick: fn(&CriterionAssessment) -> Option<Reading>,
) -> Vec<MetricDetails> {
    prepared
        .request
        .criteria
        .iter()
        .zip(criteria)
        .zip(&prepared.absent_values)
        .map(|((c, a), absent)| MetricDetails {
            metric_name: Some(c.metric.name.to_string()),
            is_counter: Some(c.metric.is_counter),
            absent_value: Some(absent.clone()),
            statistics: Some(statistics(pick(a))),
        })
        .collect()
}

impl AnalyticsResponseWire {
    /// The response for an outcome of a prepared request.
    pub fn from_outcome(
        prepared: &Prepared,
        outcome: &AnalysisOutcome,
        metric_backend_url: &str,
    ) -> Self {
        let a = &outcome.assessment;
        let candidate = outcome.candidate_traffic_percentage;
        AnalyticsResponseWire {
            metric_backend_url: Some(metric_backend_url.to_string()),
            baseline: Some(VersionMeasurements {
                metrics: Some(metrics(prepared, &a.success_criteria, |c| c.baseline)),
                traffic_percentage: Some(100.0 - candidate),
            }),
            candidate: Some(VersionMeasurements {
                metrics: Some(metrics(prepared, &a.success_criteria, |c| c.candidate)),
                traffic_percentage: Some(candidate),
            }),
            assessment: Some(AssessmentWire {
                summary: Some(SummaryWire {
                    conclusions: Some(a.conclusions.clone()),
                    all_success_criteria_met: Some(a.all_success_criteria_met),
                    abort_experiment: Some(a.abort_experiment),
                }),
                success_criteria: Some(
                    a.success_criteria
                        .iter()
                        .map(|c| CriterionOutput {
                            metric_name: Some(c.metric_name.clone()),
                            conclusions: Some(c.conclusions.clone()),
                            success_criterion_met: Some(c.success_criterion_met),
                            abort_experiment: Some(c.abort_experiment),
                        })
                        .collect(),
                ),
            }),
            last_state: Some(outcome.state.as_json().clone()),
        }
    }

    /// The core's assessment read from a response: per-criterion verdicts with the measured
    /// numbers the response carries (criteria and metrics are matched by position).
    pub fn assessment(&self) -> Assessment {
        let a = self.assessment.clone().unwrap_or_default();
        let s = a.summary.unwrap_or_default();
        let reading = |v: &Option<VersionMeasurements>, i: usize| {
            v.as_ref()
                .and_then(|v| v.metrics.as_ref())
                .and_then(|m| m.get(i))
                .and_then(|m| m.statistics.as_ref())
                .map(|st| Reading {
                    value: st.value,
                    sample_size: st.sample_size.unwrap_or(0) as f64,
                })
        };
        Assessment {
            conclusions: s.conclusions.unwrap_or_default(),
            all_success_criteria_met: s.all_success_criteria_met.unwrap_or(false),
            abort_experiment: s.abort_experiment.unwrap_or(false),
            success_criteria: a
                .success_criteria
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, c)| CriterionAssessment {
                    metric_name: c.metric_name.unwrap_or_default(),
                    conclusions: c.conclusions.unwrap_or_default(),
                    success_criterion_met: c.success_criterion_met.unwrap_or(false),
                    abort_experiment: c.abort_experiment.unwrap_or(false),
                    baseline: reading(&self.baseline, i),
                    candidate: reading(&self.candidate, i),
                    ..CriterionAssessment::default()
                })
                .collect(),
        }
    }
}
