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
    /// Where a remote analytics service would be (`spec.analysis.analyticsService`).
    pub analytics_service: String,
    /// Seed of the strategies' draws, stable for an experiment (see [`experiment_seed`]).
    pub seed: u64,
}

impl Plan {
    /// Whether the spec has success criteria (without any, nothing is checked).
    pub fn has_criteria(&self) -> bool {
        !self.criteria.is_empty()
    }

    /// Whether some criterion stops the experiment as soon as it fails.
    pub fn stops_on_failure(&self) -> bool {
        self.criteria.iter().any(|c| c.stop_on_failure)
    }

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
fn version_tags(kind: &TargetKind, namespace: &str, version: &str) -> VersionTags {
    let (name_key, ns_key) = match kind {
        TargetKind::Service => ("destination_service_name", "destination_service_namespace"),
        _ => ("destination_workload", "destination_workload_namespace"),
    };
    VersionTags::from([
        (name_key.to_string(), version.to_string()),
        (ns_key.to_string(), namespace.to_string()),
    ])
}

/// A seed for the strategies' draws that is stable for an experiment (FNV-1a of
/// `namespace/name`), so a restarted controller draws what the first one would have.
pub fn experiment_seed(exp: &Experiment) -> u64 {
    let key = [exp.namespace(), "/", exp.name()];
    key.iter()
        .flat_map(|part| part.bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Where a plan came from, for messages.
pub fn describe(exp: &Experiment) -> String {
    format!("{}.{}", exp.name(), exp.namespace())
}
