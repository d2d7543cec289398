//! Reasons and status messages, worded as iter8 v0.2 and the tutorial show them.

use crate::model::{Assessment, Reading};

/// `TargetsNotFound`: a target is missing or claimed.
pub const TARGETS_NOT_FOUND: &str = "TargetsNotFound";
/// `IterationUpdate`: an iteration began.
pub const ITERATION_UPDATE: &str = "IterationUpdate";
/// `ExperimentSucceeded`.
pub const EXPERIMENT_SUCCEEDED: &str = "ExperimentSucceeded";
/// `ExperimentFailed`.
pub const EXPERIMENT_FAILED: &str = "ExperimentFailed";
/// `SyncMetricsError`: the metrics configuration could not be read.
pub const SYNC_METRICS_ERROR: &str = "SyncMetricsError";
/// `AnalyticsServiceError`: analytics or the metrics backend failed.
pub const ANALYTICS_SERVICE_ERROR: &str = "AnalyticsServiceError";
/// `RoutingRulesError`: routing could not be set, or is held by another experiment.
pub const ROUTING_RULES_ERROR: &str = "RoutingRulesError";
/// `ValidationError`: the spec is invalid (our addition; names the field).
pub const VALIDATION_ERROR: &str = "ValidationError";
/// `InternalError`: a reconcile panicked (a bug); the operator goes on with other experiments.
pub const INTERNAL_ERROR: &str = "InternalError";
/// `RollbackSkipped`: a deleted experiment went without a rollback, which was moot.
pub const ROLLBACK_SKIPPED: &str = "RollbackSkipped";
/// `TargetsFound`: the Service, baseline and candidate all exist (condition turned true).
pub const TARGETS_FOUND: &str = "TargetsFound";
/// `SyncMetricsSucceeded`: the metrics configuration was read (condition turned true).
pub const SYNC_METRICS_SUCCEEDED: &str = "SyncMetricsSucceeded";
/// `RoutingRulesReady`: the routing rules are in place (condition turned true).
pub const ROUTING_RULES_READY: &str = "RoutingRulesReady";
/// `AnalyticsServiceRunning`: an analysis answered (condition turned true).
pub const ANALYTICS_SERVICE_RUNNING: &str = "AnalyticsServiceRunning";
/// `IterationSucceeded`: an iteration moved traffic (`New Traffic, baseline: B, candidate: C`).
pub const ITERATION_SUCCEEDED: &str = "IterationSucceeded";
/// `IterationFailed`: an iteration after the first found a success criterion unmet.
pub const ITERATION_FAILED: &str = "IterationFailed";
/// `RoutingRulesRepaired`: routing objects of a running experiment were missing and were put
/// back (our addition).
pub const ROUTING_RULES_REPAIRED: &str = "RoutingRulesRepaired";
/// The message of a user pause.
pub const PAUSE: &str = "Pause";
/// The message of a user resume.
pub const RESUME: &str = "Resume";

/// Completion text when every criterion was met.
pub const ALL_CRITERIA_MET: &str = "All Success Criteria Were Met";
/// Completion text when some criterion was not met (the tutorial's wording).
pub const NOT_ALL_CRITERIA_MET: &str = "Not All Success Criteria Met";
/// Completion text of an abort or override.
pub const ABORTED: &str = "Aborted";
/// Completion text without criteria.
pub const LAST_ITERATION_COMPLETED: &str = "Last Iteration Was Completed";

/// Reasons whose events are Warnings.
pub const WARNING_REASONS: &[&str] = &[
    EXPERIMENT_FAILED,
    SYNC_METRICS_ERROR,
    ANALYTICS_SERVICE_ERROR,
    ROUTING_RULES_ERROR,
    VALIDATION_ERROR,
    INTERNAL_ERROR,
    ROLLBACK_SKIPPED,
    ROUTING_RULES_REPAIRED,
];

/// The success criteria an assessment found unmet, with the numbers: `iter8_latency: candidate
/// 312.5 over 48 requests against threshold 200 (sample size 10)`; `; ` between criteria.
pub fn unmet_criteria(assessment: &Assessment) -> String {
    assessment
        .success_criteria
        .iter()
        .filter(|c| !c.success_criterion_met)
        .map(|c| {
            let measured = match c.candidate {
                Some(Reading {
                    value: Some(v),
                    sample_size,
                }) => format!("candidate {v} over {sample_size} requests"),
                Some(Reading {
                    value: None,
                    sample_size,
                }) => format!("candidate no data over {sample_size} requests"),
                None => "candidate not measured".to_string(),
            };
            let tolerance = match (&c.tolerance_type, c.tolerance) {
                (Some(kind), Some(t)) => format!(" against {kind} {t}"),
                _ => String::new(),
            };
            let sample = c
                .sample_size
                .map(|n| format!(" (sample size {n})"))
                .unwrap_or_default();
            format!("{}: {measured}{tolerance}{sample}", c.metric_name)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Reason: text`, or the reason alone when the text is empty (iter8's `composeMessage`).
pub fn compose(reason: &str, text: &str) -> String {
    if text.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}: {text}")
    }
}

/// Splits a status message into reason and text.
pub fn split(message: &str) -> (&str, &str) {
    message.split_once(": ").unwrap_or((message, ""))
}
