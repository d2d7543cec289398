//! The request's wire types (the swagger's `*_parameters` models) and their conversion into the
//! core's [`AnalysisRequest`], with iter8-analytics v0.2.1's defaults: `step_size` 2,
//! `max_traffic_percent` 50, `confidence` 0.95, per criterion `absent_value` `"0.0"`,
//! `sample_size` 10 (0 for the Bayesian strategies) and `stop_on_failure` false; `end_time`
//! defaults to now.

use chrono::{DateTime, Utc};
use iter8_core::analytics::AnalysisRequest;
use iter8_core::measurement::{VersionTags, Window};
use iter8_core::plan::Criterion;
use iter8_core::{AbsentValue, Metric, MinMax, Strategy, ToleranceType};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, START_AFTER_END};

/// iter8-analytics' default step (percentage points).
pub const DEFAULT_STEP_SIZE: f64 = 2.0;
/// iter8-analytics' default cap on the candidate's share.
pub const DEFAULT_MAX_TRAFFIC_PERCENT: f64 = 50.0;
/// iter8-analytics' default Bayesian confidence.
pub const DEFAULT_CONFIDENCE: f64 = 0.95;
/// iter8-analytics' default `absent_value`.
pub const DEFAULT_ABSENT_VALUE: &str = "0.0";
/// iter8-analytics' default minimum sample (check_and_increment, epsilon_t_greedy).
pub const DEFAULT_SAMPLE_SIZE: i64 = 10;

/// `version_definition`: a version's window and labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDefinition {
    /// Start of the window (ISO 8601).
    pub start_time: String,
    /// End of the window (ISO 8601); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// The labels identifying the version's series.
    pub tags: serde_json::Map<String, serde_json::Value>,
}

/// `min_max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinMaxWire {
    /// Lowest value.
    pub min: f64,
    /// Highest value.
    pub max: f64,
}

/// `success_criterion_default` / `success_criterion_br`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessCriterionWire {
    /// The metric's name.
    pub metric_name: String,
    /// Whether the metric is a counter.
    pub is_counter: bool,
    /// The value when a version has no series (`"None"`: no value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_value: Option<String>,
    /// The value's PromQL template.
    pub metric_query_template: String,
    /// The sample size's PromQL template.
    pub metric_sample_size_query_template: String,
    /// `delta` or `threshold`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The tolerance.
    pub value: f64,
    /// The minimum sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<i64>,
    /// Abort when it fails on a sufficient sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on_failure: Option<bool>,
    /// The metric's range (Bayesian strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_max: Option<MinMaxWire>,
}

/// `reward`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardWire {
    /// The metric's name.
    pub metric_name: String,
    /// Whether the metric is a counter.
    pub is_counter: bool,
    /// The value when a version has no series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_value: Option<String>,
    /// The value's PromQL template.
    pub metric_query_template: String,
    /// The sample size's PromQL template.
    pub metric_sample_size_query_template: String,
    /// The metric's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_max: Option<MinMaxWire>,
}

/// `traffic_control_*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficControlWire {
    /// Percentage points per step (check_and_increment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<f64>,
    /// Cap on the candidate's share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_percent: Option<f64>,
    /// Bayesian confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The success criteria.
    pub success_criteria: Vec<SuccessCriterionWire>,
    /// The reward metric (Bayesian strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<RewardWire>,
    /// Seed of the Bayesian draws (an extension of this implementation; default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A request to one of the strategy endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsRequestWire {
    /// The baseline's window and labels.
    pub baseline: VersionDefinition,
    /// The candidate's window and labels.
    pub candidate: VersionDefinition,
    /// The strategy's parameters.
    pub traffic_control: TrafficControlWire,
    /// The state returned by the previous call (`{}` on the first).
    #[serde(rename = "_last_state")]
    pub last_state: serde_json::Value,
}

/// A request converted for the core, with what the response needs from the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The core's request (its window is the baseline's).
    pub request: AnalysisRequest,
    /// The baseline's window.
    pub baseline_window: Window,
    /// The candidate's window.
    pub candidate_window: Window,
    /// Per criterion, the `absent_value` string to echo.
    pub absent_values: Vec<String>,
}

/// Parses a timestamp as iter8-analytics accepts it: RFC 3339 / ISO 8601 with a time zone
/// (`T` or a space between date and time; Python's `str(datetime)` form included).
pub fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = text.trim();
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{field} {text:?} is not an ISO 8601 timestamp with a time zone (e.g. 2019-05-01T19:00:02.389Z)"
            ))
        })
}

/// iter8-analytics' reading of `absent_value`: Python's `float(text)`, or no value when that
/// fails (`"None"`).
pub fn parse_absent_value(text: &str) -> AbsentValue {
    text.trim()
        .parse::<f64>()
        .map(AbsentValue::Value)
        .unwrap_or(AbsentValue::NoValue)
}

fn tags(
    field: &str,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<VersionTags, ApiError> {
    map.iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(ApiError::BadRequest(format!(
                "{field}.tags.{k} must be a string, not {other}"
            ))),
        })
        .collect()
}

fn window(field: &str, v: &VersionDefinition, now: DateTime<Utc>) -> Result<Window, ApiError> {
    let start = parse_time(&format!("{field}.start_time"), &v.start_time)?;
    let end = match &v.end_time {
        Some(t) => parse_time(&format!("{field}.end_time"), t)?,
        None => now,
    };
    Ok(Window { start, end })
}

fn metric(name: &str, is_counter: bool, absent: &str, query: &str, sample_query: &str) -> Metric {
    Metric {
        name: name.into(),
        is_counter,
        absent_value: parse_absent_value(absent),
        query_template: query.into(),
        sample_size_template_name: format!("{name} (sample size)").into(),
        sample_size_query_template: sample_query.into(),
    }
}

fn min_max(m: Option<MinMaxWire>) -> Option<MinMax> {
    m.map(|m| MinMax {
        min: m.min,
        max: m.max,
    })
}

impl AnalyticsRequestWire {
    /// Converts to the core's request for `strategy`, as seen at `now`.
    pub fn prepare(&self, strategy: Strategy, now: DateTime<Utc>) -> Result<Prepared, ApiError> {
        let bayesian = matches!(
            strategy,
            Strategy::PosteriorBayesianRouting | Strategy::OptimisticBayesianRouting
        );
        let tc = &self.traffic_control;
        let baseline_window = window("baseline", &self.baseline, now)?;
        let candidate_window = window("candidate", &self.candidate, now)?;
        let measures = !tc.success_criteria.is_empty() || (bayesian && tc.reward.is_some());
        if measures
            && (baseline_window.start > baseline_window.end
                || candidate_window.start > candidate_window.end)
        {
            return Err(ApiError::BadRequest(START_AFTER_END.to_string()));
        }
        let default_sample = if bayesian { 0 } else { DEFAULT_SAMPLE_SIZE };
        let mut absent_values = Vec::with_capacity(tc.success_criteria.len());
        let criteria = tc
            .success_criteria
            .iter()
            .map(|c| {
                let absent = c.absent_value.as_deref().unwrap_or(DEFAULT_ABSENT_VALUE);
                absent_values.push(absent.to_string());
                Criterion {
                    metric: metric(
                        &c.metric_name,
                        c.is_counter,
                        absent,
                        &c.metric_query_template,
                        &c.metric_sample_size_query_template,
                    ),
                    tolerance_type: ToleranceType::from(c.kind.as_str()),
                    tolerance: c.value,
                    sample_size: c.sample_size.unwrap_or(default_sample).max(0) as u64,
                    stop_on_failure: c.stop_on_failure.unwrap_or(false),
                    min_max: min_max(c.min_max),
                }
            })
            .collect();
        if let Some(bad) = tc
            .success_criteria
            .iter()
            .find(|c| !matches!(c.kind.as_str(), "delta" | "threshold"))
        {
            return Err(ApiError::BadRequest(format!(
                "Criterion type can either be Threshold or Delta (got {:?})",
                bad.kind
            )));
        }
        let reward = tc.reward.as_ref().filter(|_| bayesian).map(|r| {
            (
                metric(
                    &r.metric_name,
                    r.is_counter,
                    r.absent_value.as_deref().unwrap_or(DEFAULT_ABSENT_VALUE),
                    &r.metric_query_template,
                    &r.metric_sample_size_query_template,
                ),
                min_max(r.min_max),
            )
        });
        if let Some(mm) = tc
            .success_criteria
            .iter()
            .filter_map(|c| c.min_max)
            .chain(tc.reward.as_ref().and_then(|r| r.min_max))
            .find(|mm| mm.max.partial_cmp(&mm.min) != Some(std::cmp::Ordering::Greater))
        {
            return Err(ApiError::BadRequest(format!(
                "min_max: max ({}) must be greater than min ({})",
                mm.max, mm.min
            )));
        }
        let last_state = match &self.last_state {
            serde_json::Value::Object(m) if m.is_empty() => None,
            serde_json::Value::Null => None,
            other => Some(other.clone().into()),
        };
        Ok(Prepared {
            request: AnalysisRequest {
                strategy,
                window: baseline_window,
                baseline: tags("baseline", &self.baseline.tags)?.into(),
                candidate: tags("candidate", &self.candidate.tags)?.into(),
                criteria,
                step_size: tc.step_size.unwrap_or(DEFAULT_STEP_SIZE),
                max_traffic_percentage: tc
                    .max_traffic_percent
                    .unwrap_or(DEFAULT_MAX_TRAFFIC_PERCENT),
                confidence: tc.confidence.unwrap_or(DEFAULT_CONFIDENCE),
                last_state,
                analytics_service: String::new(),
                seed: tc.seed.unwrap_or(0),
                reward,
            },
            baseline_window,
            candidate_window,
            absent_values,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_in_the_forms_iter8_sends() {
        let want = Utc.with_ymd_and_hms(2019, 4, 24, 19, 40, 32).unwrap();
        for t in [
            "2019-04-24T19:40:32Z",
            "2019-04-24T19:40:32.000Z",
            "2019-04-24T21:40:32+02:00",
            "2019-04-24 19:40:32+00:00",
            "2019-04-24 19:40:32.000000+00:00",
        ] {
            assert_eq!(parse_time("t", t).unwrap(), want, "{t}");
        }
        assert!(parse_time("baseline.start_time", "yesterday").is_err());
        assert!(parse_time("t", "2019-04-24T19:40:32").is_err());
    }

    #[test]
    fn absent_values_as_python_floats() {
        assert_eq!(parse_absent_value("0.0"), AbsentValue::Value(0.0));
        assert_eq!(parse_absent_value(" 2 "), AbsentValue::Value(2.0));
        assert_eq!(parse_absent_value("None"), AbsentValue::NoValue);
        assert_eq!(parse_absent_value("lots"), AbsentValue::NoValue);
    }
}
