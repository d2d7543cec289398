//! What a metrics backend can say about one metric of one version: a typed outcome, never a
//! silent 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics_config::{AbsentValue, Metric};

/// Why a backend could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricErrorKind {
    /// The backend could not be reached (connection refused, DNS, TLS).
    Unreachable,
    /// The backend did not answer in time.
    Timeout,
    /// The backend answered with an HTTP error status.
    HttpStatus,
    /// The backend reported an error (e.g. Prometheus `status: error`, a bad query).
    Backend,
    /// The answer was not what the API promises (not JSON, wrong result type, ...).
    BadResponse,
    /// The request could not be built (bad template, unsafe label value, ...).
    Configuration,
}

/// A backend failure, with a message for users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct MetricError {
    /// What kind of failure.
    pub kind: MetricErrorKind,
    /// What happened, for users.
    pub message: String,
}

impl MetricError {
    /// A failure of a kind with a message.
    pub fn new(kind: MetricErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// A finite value.
    Value(f64),
    /// The backend has no series for this version.
    NoData,
    /// The backend returned NaN (e.g. 0/0).
    NaN,
    /// The backend returned +Inf.
    PosInf,
    /// The backend returned -Inf.
    NegInf,
    /// The backend failed.
    Error(MetricError),
}

impl Measurement {
    /// Classifies a float from a backend.
    pub fn from_f64(v: f64) -> Self {
        if v.is_nan() {
            Measurement::NaN
        } else if v == f64::INFINITY {
            Measurement::PosInf
        } else if v == f64::NEG_INFINITY {
            Measurement::NegInf
        } else {
            Measurement::Value(v)
        }
    }

    /// The number this stands for once `absent_value` is applied: `None` for no value,
    /// `Some(NaN/±Inf)` for those outcomes. Errors have no number.
    pub fn resolve(&self, absent: AbsentValue) -> Result<Option<f64>, &MetricError> {
        match self {
            Measurement::Value(v) => Ok(Some(*v)),
            Measurement::NoData => Ok(match absent {
                AbsentValue::NoValue => None,
                AbsentValue::Value(v) => Some(v),
            }),
            Measurement::NaN => Ok(Some(f64::NAN)),
            Measurement::PosInf => Ok(Some(f64::INFINITY)),
            Measurement::NegInf => Ok(Some(f64::NEG_INFINITY)),
            Measurement::Error(e) => Err(e),
        }
    }

    /// The error, if this is one.
    pub fn error(&self) -> Option<&MetricError> {
        match self {
            Measurement::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// A metric's value and its sample size for one version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionReading {
    /// The metric's value.
    pub value: Measurement,
    /// The request count over the window (the sample-size template).
    pub sample_size: Measurement,
}

/// A metric measured for both versions.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricReadings {
    /// The metric's name (shared with its [`Metric`]).
    pub metric: Arc<str>,
    /// The baseline's reading.
    pub baseline: VersionReading,
    /// The candidate's reading.
    pub candidate: VersionReading,
}

/// The time range an analysis covers: from the experiment's start to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Start (the experiment's `startTimestamp`).
    pub start: DateTime<Utc>,
    /// End (the time of the decision).
    pub end: DateTime<Utc>,
}

impl Window {
    /// The window's length in whole seconds, at least 1 (iter8's `$interval`).
    pub fn interval_secs(&self) -> i64 {
        (self.end - self.start).num_seconds().max(1)
    }
}

/// The labels that identify a version's series (e.g. `destination_workload`).
pub type VersionTags = BTreeMap<String, String>;

/// What to measure for one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsQuery {
    /// The window.
    pub window: Window,
    /// The baseline's labels (shared with the request the query is for).
    pub baseline: Arc<VersionTags>,
    /// The candidate's labels.
    pub candidate: Arc<VersionTags>,
    /// The metrics, with their templates, in criterion order (a metric may repeat).
    pub metrics: Vec<Metric>,
}
