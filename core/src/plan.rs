//! The validated, defaulted view of a spec that the engine and analytics run on.
//!
//! [`crate::validation::plan`] builds it; a `Plan` exists only for a valid experiment.

use std::time::Duration;

use crate::measurement::VersionTags;
use crate::metrics_config::Metric;
use crate::model::{Experiment, MinMax, OnSuccess, Strategy, TargetKind, ToleranceType};

/// A success criterion with its metric looked up and its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Criterion {
    /// The metric with its templates.
    pub metric: Metric,
    /// `threshold` or `delta` (never unknown here).
    pub tolerance_type: ToleranceType,
    /// The threshold or relative delta.
    pub tolerance: f64,
    /// Minimum sample before the criterion can be judged.
    pub sample_size: u64,
    /// Abort as soon as it fails on a sufficient sample.
    pub stop_on_failure: bool,
    /// Metric range (Bayesian strategies).
    pub min_max: Option<MinMax>,
}

/// Everything the engine needs from a valid spec, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `Deployment` or `Service`.
    pub kind: TargetKind,
    /// The Service being rolled (for `Service` kind: may be empty).
    pub service: String,
    /// Where the targets live.
    pub namespace: String,
    /// The baseline's name.
    pub baseline: String,
    /// The candidate's name.
    pub candidate: String,
    /// The strategy (no criteria: `increment_without_check`).
    pub strategy: Strategy,
    /// Time between iterations (> 0).
    pub interval: Duration,
    /// Iterations before completion (>= 1).
    pub max_iterations: u32,
    /// Percentage points per step (0 < step <= 100).
    pub step_size: f64,
    /// Cap on the candidate's share while progressing (0 < max <= 100).
    pub max_traffic_percentage: f64,
    /// Where traffic goes on success.
    pub on_success: OnSuccess,
    /// Bayesian confidence.
    pub confidence: f64,
    /// The success criteria, in spec order.
    pub criteria: Vec<Criterion>,
    /// Reward metric (Bayesian A/B), if any.
    pub reward: Option<(Metric, Option<MinMax>)>,
    /// Delete the loser when done.
    pub cleanup: bool,
}

impl Plan {
    /// The labels identifying a version's series, as iter8 v0.2 queries them.
    pub fn tags(&self, version: &str) -> VersionTags {
        let (name_key, ns_key) = match self.kind {
            TargetKind::Service => ("destination_service_name", "destination_service_namespace"),
            _ => ("destination_workload", "destination_workload_namespace"),
        };
        VersionTags::from([
            (name_key.to_string(), version.to_string()),
            (ns_key.to_string(), self.namespace.clone()),
        ])
    }

    /// The baseline's labels.
    pub fn baseline_tags(&self) -> VersionTags {
        self.tags(&self.baseline)
    }

    /// The candidate's labels.
    pub fn candidate_tags(&self) -> VersionTags {
        self.tags(&self.candidate)
    }
}

/// Where a plan came from, for messages.
pub fn describe(exp: &Experiment) -> String {
    format!("{}.{}", exp.name(), exp.namespace())
}
