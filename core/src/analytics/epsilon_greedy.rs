//! `epsilon_t_greedy`, deciding exactly as iter8-analytics v0.2.1 does.
//!
//! The assessment, the conclusions and the change detection are check_and_increment's; only
//! the traffic decision differs. With `n` the effective iteration count after the increment and
//! `e = 1 / n`:
//! - no change observed -> hold;
//! - first call or all criteria met (the candidate is exploited) ->
//!   `min(int((1 - e + e / 2) * 100), max)`;
//! - some criterion not met on an insufficient sample -> hold (the count does not move);
//! - otherwise (the baseline is exploited, the candidate explored) -> `min(int((e / 2) * 100), max)`.
//!
//! `int()` truncates toward zero, as Python's does. The state is check_and_increment's plus
//! `effective_iteration_count`, which iter8-analytics requires on every call after the first.

use serde::{Deserialize, Serialize};

use super::check_and_increment::{CheckAndIncrementState, conclusions, decide};
use super::{AnalysisOutcome, AnalysisRequest, AnalysisState, AnalyticsError};
use crate::measurement::MetricReadings;

/// The state key holding how many times the traffic was recomputed.
pub const EFFECTIVE_ITERATION_COUNT: &str = "effective_iteration_count";

/// The state carried between epsilon_t_greedy calls: iter8-analytics' `_last_state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EpsilonGreedyState {
    /// Traffic and per-criterion information, as for check_and_increment.
    #[serde(flatten)]
    pub versions: CheckAndIncrementState,
    /// How many times the traffic was recomputed.
    pub effective_iteration_count: u64,
}

/// The candidate's share when it is exploited: `int((1 - e + e / 2) * 100)`.
pub fn exploitation_rate(effective_iteration_count: u64) -> f64 {
    let e = 1.0 / effective_iteration_count as f64;
    ((1.0 - e + (e / 2.0)) * 100.0).trunc()
}

/// The candidate's share when it is explored: `int((e / 2) * 100)`.
pub fn exploration_rate(effective_iteration_count: u64) -> f64 {
    let e = 1.0 / effective_iteration_count as f64;
    ((e / 2.0) * 100.0).trunc()
}

fn last_count(last: Option<&serde_json::Value>) -> Result<u64, AnalyticsError> {
    let Some(v) = last.and_then(|l| l.get(EFFECTIVE_ITERATION_COUNT)) else {
        // What Python's KeyError says (iter8-analytics answers 400 with it).
        return Err(AnalyticsError::Invalid(format!(
            "'{EFFECTIVE_ITERATION_COUNT}'"
        )));
    };
    v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                .map(|f| f as u64)
        })
        .ok_or_else(|| {
            AnalyticsError::Invalid(format!(
                "last state: {EFFECTIVE_ITERATION_COUNT} must be a whole number, not {v}"
            ))
        })
}

/// Decides the candidate's next share with epsilon_t_greedy.
pub fn epsilon_t_greedy(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
) -> Result<AnalysisOutcome, AnalyticsError> {
    let last = CheckAndIncrementState::from_state(request.last_state.as_ref())?;
    let first = last.is_none();
    let count = if first {
        0
    } else {
        let json = request.last_state.as_ref().map(AnalysisState::as_json);
        last_count(json)?
    };
    let last_share = last.map_or(0.0, |s| s.candidate.traffic_percentage);

    let (_, assessment, mut versions) = decide(request, readings)?;
    let summary = &assessment;
    let changed = !summary
        .conclusions
        .iter()
        .any(|c| c == conclusions::NO_CHANGE);
    let sufficient = summary.success_criteria.iter().all(|c| {
        c.conclusions.first().map(String::as_str) != Some(conclusions::INSUFFICIENT_SAMPLE)
    });
    let max = request.max_traffic_percentage;
    let (candidate, count) = if !changed {
        (last_share, count)
    } else if first || summary.all_success_criteria_met {
        let n = count + 1;
        (exploitation_rate(n).min(max), n)
    } else if !sufficient {
        (last_share, count)
    } else {
        // check_and_increment already concluded whether the baseline failed, on the same
        // conditions as iter8-analytics' epsilon_t_greedy.
        let n = count + 1;
        (exploration_rate(n).min(max), n)
    };
    let candidate = candidate.clamp(0.0, 100.0);

    versions.candidate.traffic_percentage = candidate;
    versions.baseline.traffic_percentage = 100.0 - candidate;
    let state = EpsilonGreedyState {
        versions,
        effective_iteration_count: count,
    };
    AnalysisOutcome::with_state(candidate, assessment, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_truncate_like_python_int() {
        // Python: int((1 - 1/n + (1/n)/2) * 100) and int(((1/n)/2) * 100).
        let expected = [
            (1, 50.0, 50.0),
            (2, 75.0, 25.0),
            (3, 83.0, 16.0),
            (4, 87.0, 12.0),
            (6, 91.0, 8.0),
            (7, 92.0, 7.0),
            (10, 95.0, 5.0),
            (100, 99.0, 0.0),
        ];
        for (n, exploit, explore) in expected {
            assert_eq!(exploitation_rate(n), exploit, "exploit {n}");
            assert_eq!(exploration_rate(n), explore, "explore {n}");
        }
    }

    #[test]
    fn the_count_is_required_after_the_first_call() {
        let last = serde_json::json!({"baseline": {}, "candidate": {}});
        assert_eq!(
            last_count(Some(&last)).unwrap_err(),
            AnalyticsError::Invalid("'effective_iteration_count'".into())
        );
        let last = serde_json::json!({"effective_iteration_count": 3.0});
        assert_eq!(last_count(Some(&last)).unwrap(), 3);
        let last = serde_json::json!({"effective_iteration_count": "3"});
        assert!(last_count(Some(&last)).is_err());
    }
}
