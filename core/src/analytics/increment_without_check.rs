//! `increment_without_check`: step up every iteration, up to the cap; nothing is measured.

use serde_json::json;

use super::{AnalysisOutcome, AnalysisRequest, AnalysisState, AnalyticsError};
use crate::model::Assessment;

/// The conclusion recorded when no criteria are checked.
pub const NO_CRITERIA_CONCLUSION: &str = "No success criteria: traffic is shifted without checks";

/// The candidate's next share: the last share plus a step, clamped to `[0, max]`.
pub fn increment_without_check(
    request: &AnalysisRequest,
) -> Result<AnalysisOutcome, AnalyticsError> {
    let last = match &request.last_state {
        None => 0.0,
        Some(state) => state
            .as_json()
            .get("candidate")
            .and_then(|c| c.get("traffic_percentage"))
            .and_then(|t| t.as_f64())
            .ok_or_else(|| {
                AnalyticsError::Invalid(
                    "last state has no candidate.traffic_percentage".to_string(),
                )
            })?,
    };
    let next = (last + request.step_size)
        .min(request.max_traffic_percentage)
        .clamp(0.0, 100.0);
    Ok(AnalysisOutcome {
        candidate_traffic_percentage: next,
        assessment: Assessment {
            conclusions: vec![NO_CRITERIA_CONCLUSION.to_string()],
            all_success_criteria_met: true,
            abort_experiment: false,
            success_criteria: Vec::new(),
        },
        state: AnalysisState::Json(json!({
            "baseline": {"traffic_percentage": 100.0 - next},
            "candidate": {"traffic_percentage": next},
        })),
    })
}
