//! `status`: everything the controller has done so far. Any process can pick an experiment up
//! from its status alone, so it must round-trip exactly through JSON and YAML.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

crate::string_enum! {
    /// The experiment's phase (`kubectl get experiments` PHASE column).
    Phase {
        /// Iterations are running.
        Progressing => "Progressing",
        /// Waiting: for targets, for a user, or for a failing dependency.
        Pause => "Pause",
        /// Done; routing is stable.
        Completed => "Completed",
    }
}

crate::string_enum! {
    /// The condition types of iter8 v0.2.
    ConditionType {
        /// Service, baseline and candidate exist.
        TargetsProvided => "TargetsProvided",
        /// The metrics configuration was read.
        MetricsSynced => "MetricsSynced",
        /// Analytics (and the metrics backend behind it) answered.
        AnalyticsServiceNormal => "AnalyticsServiceNormal",
        /// Routing rules are in place and ours.
        RoutingRulesReady => "RoutingRulesReady",
        /// The experiment has ended.
        ExperimentCompleted => "ExperimentCompleted",
        /// The experiment ended with the candidate accepted.
        ExperimentSucceeded => "ExperimentSucceeded",
        /// Everything needed to progress is in place.
        Ready => "Ready",
    }
}

crate::string_enum! {
    /// A condition's status, as Kubernetes writes it.
    ConditionStatus {
        /// Holds.
        True => "True",
        /// Does not hold.
        False => "False",
        /// Not known yet.
        Undetermined => "Unknown",
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which condition.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason (e.g. `TargetsNotFound`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed.
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// `status.trafficSplitPercentage`: integer weights that sum to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrafficSplit {
    /// Baseline weight.
    pub baseline: u32,
    /// Candidate weight.
    pub candidate: u32,
}

impl TrafficSplit {
    /// Everything to the baseline.
    pub const ALL_BASELINE: TrafficSplit = TrafficSplit {
        baseline: 100,
        candidate: 0,
    };
    /// Everything to the candidate.
    pub const ALL_CANDIDATE: TrafficSplit = TrafficSplit {
        baseline: 0,
        candidate: 100,
    };

    /// The split giving the candidate `candidate` percent (clamped to 0..=100).
    pub fn with_candidate(candidate: u32) -> Self {
        let candidate = candidate.min(100);
        TrafficSplit {
            baseline: 100 - candidate,
            candidate,
        }
    }
}

impl Default for TrafficSplit {
    fn default() -> Self {
        Self::ALL_BASELINE
    }
}

/// What was measured for one version of one criterion: kept in the status so that users see the
/// numbers a decision was made on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    /// The metric's value; `null` when there was no data, `"NaN"`, `"+Inf"` or `"-Inf"` when
    /// the backend returned one of those.
    #[serde(default, with = "reading_value")]
    pub value: Option<f64>,
    /// Requests counted over the window (the sample-size query).
    #[serde(default)]
    pub sample_size: f64,
}

/// Serde for an optional measured number that may be NaN or infinite: JSON has no such numbers,
/// so they are written as Prometheus writes them (`"NaN"`, `"+Inf"`, `"-Inf"`).
pub mod reading_value {
    use super::*;

    /// Writes the number.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) if x.is_nan() => s.serialize_str("NaN"),
            Some(x) if *x == f64::INFINITY => s.serialize_str("+Inf"),
            Some(x) if *x == f64::NEG_INFINITY => s.serialize_str("-Inf"),
            Some(x) => s.serialize_f64(*x),
        }
    }

    /// Reads the number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Num(x)) => Ok(Some(x)),
            Some(Raw::Text(t)) => match t.as_str() {
                "NaN" => Ok(Some(f64::NAN)),
                "+Inf" | "Inf" => Ok(Some(f64::INFINITY)),
                "-Inf" => Ok(Some(f64::NEG_INFINITY)),
                other => other
                    .parse()
                    .map(Some)
                    .map_err(|_| serde::de::Error::custom(format!("`{other}` is not a number"))),
            },
        }
    }
}

/// Serde for a status timestamp: written as RFC 3339; read from RFC 3339 or from integer Unix
/// nanoseconds, as iter8 v0.2.1 wrote `createTimestamp`, `startTimestamp` and `endTimestamp`, so
/// an experiment it started is continued after an upgrade in place.
pub mod timestamp {
    use super::*;

    /// Writes the time as RFC 3339.
    pub fn serialize<S: Serializer>(v: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// Reads RFC 3339 or Unix nanoseconds; `0` and `""` (Go's zero values) mean "not set".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Nanos(i64),
            Text(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None | Some(Raw::Nanos(0)) => Ok(None),
            Some(Raw::Nanos(ns)) => Ok(Some(DateTime::from_timestamp_nanos(ns))),
            Some(Raw::Text(t)) if t.is_empty() => Ok(None),
            Some(Raw::Text(t)) => DateTime::parse_from_rfc3339(&t)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "`{t}` is neither an RFC 3339 time nor Unix nanoseconds: {e}"
                    ))
                }),
        }
    }
}

/// The verdict on one success criterion (`status.assessment.success_criteria[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CriterionAssessment {
    /// The criterion's metric.
    pub metric_name: String,
    /// Plain-English findings.
    #[serde(default)]
    pub conclusions: Vec<String>,
    /// Whether the candidate meets it.
    #[serde(default)]
    pub success_criterion_met: bool,
    /// Whether it demands an abort.
    #[serde(default)]
    pub abort_experiment: bool,
    /// `threshold` or `delta`.
    #[serde(
        default,
        rename = "toleranceType",
        skip_serializing_if = "Option::is_none"
    )]
    pub tolerance_type: Option<String>,
    /// The tolerance it was judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// The sample size it required.
    #[serde(
        default,
        rename = "sampleSize",
        skip_serializing_if = "Option::is_none"
    )]
    pub sample_size: Option<u64>,
    /// What the baseline measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Reading>,
    /// What the candidate measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Reading>,
}

/// `status.assessment`: the last analysis' verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Assessment {
    /// Plain-English summary.
    #[serde(default)]
    pub conclusions: Vec<String>,
    /// Whether every criterion is met.
    #[serde(default)]
    pub all_success_criteria_met: bool,
    /// Whether the experiment must stop now.
    #[serde(default)]
    pub abort_experiment: bool,
    /// Per-criterion verdicts.
    #[serde(default)]
    pub success_criteria: Vec<CriterionAssessment>,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// `Progressing`, `Pause` or `Completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Reason: text`, as `kubectl get experiments` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the controller first saw the experiment.
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub create_timestamp: Option<DateTime<Utc>>,
    /// When the first iteration began (the start of every analysis window).
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<DateTime<Utc>>,
    /// When the experiment completed.
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<DateTime<Utc>>,
    /// When the last iteration began.
    #[serde(default, with = "timestamp", skip_serializing_if = "Option::is_none")]
    pub last_increment_time: Option<DateTime<Utc>>,
    /// Iterations begun so far.
    #[serde(default)]
    pub current_iteration: u32,
    /// `spec.targetService` as it was when the experiment started: the operator refuses to go on
    /// with a changed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_target_service: Option<crate::model::spec::TargetService>,
    /// Analyses that failed in a row (the failure budget; kept here so that it survives a
    /// restart of the operator).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
    /// The split iter8 has applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_percentage: Option<TrafficSplit>,
    /// The last analysis' verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assessment: Option<Assessment>,
    /// State carried between analytics calls (typed for check_and_increment, JSON otherwise;
    /// written as the same JSON either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_state: Option<crate::analytics::AnalysisState>,
    /// Link to the experiment's Grafana dashboard.
    #[serde(
        default,
        rename = "grafanaURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub grafana_url: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ExperimentStatus {
    /// Whether nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        *self == ExperimentStatus::default()
    }

    /// The split to show: what was applied, or 100/0 before anything was.
    pub fn split(&self) -> TrafficSplit {
        self.traffic_split_percentage.unwrap_or_default()
    }

    /// The condition of a type, if recorded.
    pub fn condition(&self, type_: &ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| &c.type_ == type_)
    }

    /// Whether the experiment has completed.
    pub fn is_completed(&self) -> bool {
        self.phase == Some(Phase::Completed)
    }

    /// Records a condition; `lastTransitionTime` moves only when its status changes.
    pub fn set_condition(
        &mut self,
        type_: ConditionType,
        status: impl Into<ConditionStatus>,
        reason: &str,
        message: &str,
        now: DateTime<Utc>,
    ) {
        let status = status.into();
        match self.conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Some(now);
                    c.status = status;
                }
                c.reason = reason.to_string();
                c.message = message.to_string();
            }
            None => self.conditions.push(Condition {
                type_,
                status,
                reason: reason.to_string(),
                message: message.to_string(),
                last_transition_time: Some(now),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn timestamps_read_rfc3339_and_v021_nanoseconds_and_write_rfc3339() {
        let status: ExperimentStatus = serde_json::from_value(json!({
            "createTimestamp": 1605866400000000000_i64,
            "startTimestamp": "2020-11-20T10:00:01Z",
            "endTimestamp": 0,
            "lastIncrementTime": "",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": 1605866402500000000_i64}],
        }))
        .unwrap();
        assert_eq!(status.create_timestamp, at("2020-11-20T10:00:00Z"));
        assert_eq!(status.start_timestamp, at("2020-11-20T10:00:01Z"));
        assert_eq!(status.end_timestamp, None, "Go's zero value is unset");
        assert_eq!(status.last_increment_time, None);
        assert_eq!(
            status.conditions[0].last_transition_time,
            at("2020-11-20T10:00:02.5Z")
        );
        let written = serde_json::to_value(&status).unwrap();
        assert_eq!(written["createTimestamp"], "2020-11-20T10:00:00Z");
        assert!(written.get("endTimestamp").is_none());
    }

    #[test]
    fn a_bad_timestamp_is_named() {
        let err = serde_json::from_value::<ExperimentStatus>(json!({"startTimestamp": "soon"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`soon` is neither an RFC 3339 time nor Unix nanoseconds"),
            "{err}"
        );
    }
}
