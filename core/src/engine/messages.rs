//! Reasons and status messages, worded as iter8 v0.2 and the tutorial show them.

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
];

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
