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
        version_tags(&self.kind, &self.namespace, version)
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

/// The labels identifying the series of `version` (of `kind`, in `namespace`), as iter8 v0.2
/// queries them.
pub(crate) fn version_tags(kind: &TargetKind, namespace: &str, version: &str) -> VersionTags {
    let (name_key, ns_key) = match kind {
        TargetKind::Service => ("destination_service_name", "destination_service_namespace"),
        _ => ("destination_workload", "destination_workload_namespace"),
    };
    // Two inserts: `From<[_; 2]>` sorts and deduplicates first, on every analysis request.
    let mut tags = VersionTags::new();
    tags.insert(name_key.to_string(), version.to_string());
    tags.insert(ns_key.to_string(), namespace.to_string());
    tags
}

/// The settings of a valid experiment that the engine steers by, defaults applied and nothing
/// copied: a reconcile that does not ask for an analysis needs no [`Plan`] (whose criteria copy
/// every metric's templates).
#[derive(Debug, Clone)]
pub(crate) struct Settings<'a> {
    pub service: &'a str,
    pub baseline: &'a str,
    pub candidate: &'a str,
    pub strategy: Strategy,
    pub interval: Duration,
    pub max_iterations: u32,
    pub step_size: f64,
    pub max_traffic_percentage: f64,
    pub on_success: OnSuccess,
    pub confidence: f64,
    pub cleanup: bool,
    /// Whether there are success criteria.
    pub has_criteria: bool,
    /// Whether some criterion stops the experiment on failure.
    pub stops_on_failure: bool,
}

impl<'a> Settings<'a> {
    /// The settings of an experiment that passed validation.
    pub fn of(exp: &'a Experiment) -> Self {
        let spec = &exp.spec;
        let ts = &spec.target_service;
        let tc = &spec.traffic_control;
        let criteria = &spec.analysis.success_criteria;
        Settings {
            service: ts.name.as_deref().unwrap_or(""),
            baseline: ts.baseline(),
            candidate: ts.candidate(),
            strategy: spec.strategy(),
            interval: tc
                .interval
                .as_ref()
                .and_then(|i| i.parse().ok())
                .unwrap_or(Duration::from_secs(60)),
            max_iterations: u32::try_from(
                tc.max_iterations
                    .unwrap_or(crate::model::DEFAULT_MAX_ITERATIONS),
            )
            .unwrap_or(u32::MAX),
            step_size: tc
                .traffic_step_size
                .unwrap_or(crate::model::DEFAULT_STEP_SIZE),
            max_traffic_percentage: tc
                .max_traffic_percentage
                .unwrap_or(crate::model::DEFAULT_MAX_TRAFFIC_PERCENTAGE),
            on_success: tc.on_success.clone().unwrap_or(OnSuccess::Candidate),
            confidence: tc.confidence.unwrap_or(crate::model::DEFAULT_CONFIDENCE),
            cleanup: spec.cleanup.is_some(),
            has_criteria: !criteria.is_empty(),
            stops_on_failure: criteria.iter().any(|c| c.stop_on_failure.unwrap_or(false)),
        }
    }
}

/// Where a plan came from, for messages.
pub fn describe(exp: &Experiment) -> String {
    format!("{}.{}", exp.name(), exp.namespace())
}
