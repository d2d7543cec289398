//! `increment_without_check`: step up every iteration while the cap allows; nothing is
//! measured.

use serde_json::json;

use super::{AnalysisOutcome, AnalysisRequest, AnalysisState, AnalyticsError};
use crate::model::Assessment;

/// The conclusion recorded when no criteria are checked.
pub const NO_CRITERIA_CONCLUSION: &str = "No success criteria: traffic is shifted without checks";

/// The candidate's next share: the last share plus a step when the result stays within the cap,
/// the last share otherwise (as iter8 v0.2.1: step 20, max 50 gives 20, 40, 40, ...).
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
    let stepped = last + request.step_size;
    let next = if stepped <= request.max_traffic_percentage {
        stepped
    } else {
        last
    };
    Ok(AnalysisOutcome {
        candidate_traffic_percentage: next,
        assessment: Assessment {
            conclusions: vec![NO_CRITERIA_CONCLUSION.to_string()],
            all_success_criteria_met: true,
            abort_experiment: false,
            success_criteria: Vec::new(),
        },
        state: AnalysisState::from(json!({
            "baseline": {"traffic_percentage": 100.0 - next},
            "candidate": {"traffic_percentage": next},
        })),
    })
}
