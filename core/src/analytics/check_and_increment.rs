//! `check_and_increment`, deciding exactly as iter8-analytics v0.2.1 does (behaviour guide §4),
//! with its conclusions word for word.
//!
//! - Values and sample sizes are rounded to 3 decimals, as the original's query layer does.
//! - threshold: met iff the candidate's sample is sufficient and its value <= tolerance.
//! - delta: both samples sufficient and candidate <= (1 + tolerance) x baseline.
//! - abort: `stopOnFailure` and a failure on a sufficient sample; a counter metric failing a
//!   threshold on a sufficient sample always aborts.
//! - change detection: per criterion and version `[int(sample), value]` is kept; an entry changes
//!   when it is new, the sample grew, or the value differs.
//! - traffic: no change -> hold; first call or all met -> min(last + step, max); otherwise hold.
//!
//! Where we do better than the original: a backend error fails the whole decision (it never
//! moves traffic), and NaN or -Inf are "no value" (they neither pass nor fall back to
//! `absent_value`); +Inf is a value (it fails any finite tolerance).

use serde::{Deserialize, Serialize};

use super::{AnalysisOutcome, AnalysisRequest, AnalysisState, AnalyticsError};
use crate::measurement::{Measurement, MetricReadings, VersionReading};
use crate::model::{Assessment, CriterionAssessment, Reading, ToleranceType};
use crate::plan::Criterion;

/// The original's conclusions, verbatim (spaces included).
pub mod conclusions {
    /// Summary on the first call.
    pub const STARTED: &str = "Experiment started";
    /// Summary when every criterion is met (two spaces, as in iter8-analytics).
    pub const ALL_MET: &str = "All success criteria were  met";
    /// Summary when some criterion is not met.
    pub const NOT_ALL_MET: &str = "All success criteria were not met";
    /// Summary when the experiment must stop.
    pub const ABORT: &str = "The experiment needs to be aborted";
    /// Summary when nothing changed since the last call.
    pub const NO_CHANGE: &str =
        "No change observed in this iteration. Traffic percentage is not altered";
    /// Summary when the baseline itself fails a threshold.
    pub const BASELINE_FAILED: &str = "The baseline version did not meet success criteria";
    /// A criterion whose sample is too small.
    pub const INSUFFICIENT_SAMPLE: &str = "Insufficient sample size. ";
    /// A counter metric over its threshold.
    pub const COUNTER_EXCEEDED: &str =
        "Counter Metric exceeded threshold value. Aborting experiment.";
    /// The error for a delta criterion on a counter metric.
    pub const DELTA_ON_COUNTER: &str = "Delta criterion cannot be used with counter metric.";
}

/// `[int(sample_size), value]` of one criterion for one version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CriterionInfo(
    /// The sample size, truncated to a whole number.
    pub f64,
    /// The value (`null` for none).
    #[serde(with = "crate::model::reading_value")]
    pub Option<f64>,
);

/// Per-version part of the state: the share and, per criterion, `[sample_size, value]`.
///
/// Fields are in alphabetical order so that the typed state is written exactly as the same
/// state held as JSON (whose object keys are sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VersionState {
    /// Per criterion, in order.
    #[serde(default)]
    pub success_criterion_information: Vec<CriterionInfo>,
    /// The version's share after the decision.
    pub traffic_percentage: f64,
}

/// The state carried between calls: iter8-analytics' `_last_state`, same JSON shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckAndIncrementState {
    /// Baseline part.
    pub baseline: VersionState,
    /// Candidate part.
    pub candidate: VersionState,
}

impl CheckAndIncrementState {
    /// Reads a last state; `None`, `null` and `{}` mean "first call".
    pub fn from_last(last: Option<&serde_json::Value>) -> Result<Option<Self>, AnalyticsError> {
        match last {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(None),
            Some(v) => Self::deserialize(v).map(Some).map_err(|e| {
                AnalyticsError::Invalid(format!("last state is not check_and_increment's: {e}"))
            }),
        }
    }

    /// Reads a last state as a request carries it; `None`, `null` and `{}` mean "first call".
    pub fn from_state(last: Option<&AnalysisState>) -> Result<Option<Self>, AnalyticsError> {
        Self::from_last(last.map(AnalysisState::as_json))
    }
}

/// A version's numbers after `absent_value` and rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resolved {
    value: Option<f64>,
    sample: f64,
}

/// Rounds like Python's `float("%.3f" % x)`: the formatter rounds the exact binary value, half
/// to even, as printf does (`(x * 1000.0).round() / 1000.0` rounds 1.0005 up, Python down: its
/// binary value is just below the tie).
fn round3(x: f64) -> f64 {
    if x.fract() == 0.0 {
        // Whole numbers (sample sizes, most counts) have no decimals to round.
        return x;
    }
    format!("{x:.3}").parse().unwrap_or(x)
}

fn resolve(reading: &VersionReading, criterion: &Criterion) -> Result<Resolved, AnalyticsError> {
    let value = match &reading.value {
        Measurement::NaN | Measurement::NegInf => None,
        other => other
            .resolve(criterion.metric.absent_value)
            .map_err(|e| AnalyticsError::Metrics(e.clone()))?
            .map(round3),
    };
    // The sample-size query's absent value is 0: no series means no requests were counted.
    let sample = match &reading.sample_size {
        Measurement::Value(v) => round3(v.max(0.0)),
        Measurement::NoData | Measurement::NaN | Measurement::PosInf | Measurement::NegInf => 0.0,
        Measurement::Error(e) => return Err(AnalyticsError::Metrics(e.clone())),
    };
    Ok(Resolved { value, sample })
}

/// A tolerance as Python's `str()` of the JSON number Go sends (`10`, `0.02`), written
/// straight into the conclusion.
struct PythonNumber(f64);

impl std::fmt::Display for PythonNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let x = self.0;
        if x.fract() == 0.0 && x.abs() < 1e16 {
            // Go sends whole numbers without a fraction: Python reads them as ints.
            write!(f, "{}", x as i64)
        } else {
            write!(f, "{x}")
        }
    }
}

/// `{name} of the candidate {is|is not} within {threshold|delta} {tolerance} {|of the
/// baseline}. `, as iter8-analytics words it.
fn verdict_conclusion(name: &str, met: bool, delta: bool, tolerance: f64) -> String {
    let is = if met { "is" } else { "is not" };
    let kind = if delta { "delta" } else { "threshold" };
    let tail = if delta { " of the baseline" } else { " " };
    let tolerance = PythonNumber(tolerance);
    format!("{name} of the candidate {is} within {kind} {tolerance}{tail}. ")
}

/// Whether the sample is sufficient and whether the criterion is met.
fn verdict(criterion: &Criterion, b: Resolved, c: Resolved) -> (bool, bool) {
    let delta = criterion.tolerance_type == ToleranceType::Delta;
    let needed = criterion.sample_size as f64;
    let sufficient = c.sample >= needed && (!delta || b.sample >= needed);
    let met = sufficient
        && match (delta, c.value, b.value) {
            (false, Some(cv), _) => cv <= criterion.tolerance,
            (true, Some(cv), Some(bv)) => cv <= (1.0 + criterion.tolerance) * bv,
            _ => false,
        };
    (sufficient, met)
}

/// Judges one criterion, with its conclusions.
fn judge(criterion: &Criterion, b: Resolved, c: Resolved) -> CriterionAssessment {
    let delta = criterion.tolerance_type == ToleranceType::Delta;
    let (sufficient, met) = verdict(criterion, b, c);
    let name = &criterion.metric.name;
    let counter_exceeded = criterion.metric.is_counter && sufficient && !delta && !met;
    let mut conclusions = Vec::with_capacity(1 + usize::from(counter_exceeded));
    conclusions.push(if sufficient {
        verdict_conclusion(name, met, delta, criterion.tolerance)
    } else {
        conclusions::INSUFFICIENT_SAMPLE.to_string()
    });
    if counter_exceeded {
        conclusions.push(conclusions::COUNTER_EXCEEDED.to_string());
    }
    CriterionAssessment {
        metric_name: name.to_string(),
        conclusions,
        success_criterion_met: met,
        abort_experiment: (criterion.stop_on_failure && sufficient && !met) || counter_exceeded,
        tolerance_type: Some(criterion.tolerance_type.as_str().to_string()),
        tolerance: Some(criterion.tolerance),
        sample_size: Some(criterion.sample_size),
        baseline: Some(Reading {
            value: b.value,
            sample_size: b.sample,
        }),
        candidate: Some(Reading {
            value: c.value,
            sample_size: c.sample,
        }),
    }
}

/// Whether a version's reading is new to the state, updating the stored entry when it is
/// (iter8-analytics' `append_if_metrics_changed_in_this_iteration`).
fn observe_change(stored: &mut Vec<CriterionInfo>, index: usize, r: Resolved) -> bool {
    let entry = CriterionInfo(r.sample.trunc(), r.value);
    match stored.get_mut(index) {
        None => {
            stored.push(entry);
            true
        }
        Some(old) => {
            let same_value = old.1.map(f64::to_bits) == r.value.map(f64::to_bits);
            if entry.0 > old.0 || !same_value {
                *old = entry;
                true
            } else {
                false
            }
        }
    }
}

/// Decides the candidate's next share with check_and_increment.
pub fn check_and_increment(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
) -> Result<AnalysisOutcome, AnalyticsError> {
    let (candidate, assessment, state) = decide(request, readings)?;
    Ok(AnalysisOutcome {
        candidate_traffic_percentage: candidate,
        assessment,
        state: AnalysisState::of(&state)?,
    })
}

/// check_and_increment's decision with its state typed (epsilon_t_greedy builds on it).
pub(super) fn decide(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
) -> Result<(f64, Assessment, CheckAndIncrementState), AnalyticsError> {
    if readings.len() != request.criteria.len() {
        return Err(AnalyticsError::Invalid(format!(
            "expected readings for {} criteria, got {}",
            request.criteria.len(),
            readings.len()
        )));
    }
    let last = CheckAndIncrementState::from_state(request.last_state.as_ref())?;
    let first = last.is_none();
    let mut state = last.unwrap_or(CheckAndIncrementState {
        baseline: VersionState {
            traffic_percentage: 100.0,
            success_criterion_information: Vec::with_capacity(readings.len()),
        },
        candidate: VersionState {
            traffic_percentage: 0.0,
            success_criterion_information: Vec::with_capacity(readings.len()),
        },
    });

    let mut changed = false;
    let mut criteria = Vec::with_capacity(readings.len());
    let mut all_samples_sufficient = true;
    // The baseline judged on its own (a delta criterion counts as met): are all its samples
    // sufficient, and does it meet every criterion?
    let mut baseline_samples_ok = true;
    let mut baseline_all_met = true;
    for (i, (criterion, r)) in request.criteria.iter().zip(readings).enumerate() {
        if criterion.tolerance_type == ToleranceType::Delta && criterion.metric.is_counter {
            return Err(AnalyticsError::Invalid(
                conclusions::DELTA_ON_COUNTER.to_string(),
            ));
        }
        let b = resolve(&r.baseline, criterion)?;
        let c = resolve(&r.candidate, criterion)?;
        changed |= observe_change(&mut state.baseline.success_criterion_information, i, b);
        changed |= observe_change(&mut state.candidate.success_criterion_information, i, c);
        let needed = criterion.sample_size as f64;
        let delta = criterion.tolerance_type == ToleranceType::Delta;
        all_samples_sufficient &= c.sample >= needed && (!delta || b.sample >= needed);
        baseline_samples_ok &= b.sample >= needed;
        baseline_all_met &= delta || verdict(criterion, b, b).1;
        criteria.push(judge(criterion, b, c));
    }

    let all_met = criteria.iter().all(|c| c.success_criterion_met);
    let abort = criteria.iter().any(|c| c.abort_experiment);
    let mut summary = Vec::with_capacity(3);
    if first {
        summary.push(conclusions::STARTED.to_string());
    } else {
        if abort {
            summary.push(conclusions::ABORT.to_string());
        }
        summary.push(
            if all_met {
                conclusions::ALL_MET
            } else {
                conclusions::NOT_ALL_MET
            }
            .into(),
        );
    }
    if !changed {
        summary.push(conclusions::NO_CHANGE.to_string());
    }

    let last_share = state.candidate.traffic_percentage;
    let candidate = if !changed {
        last_share
    } else if first || all_met {
        (last_share + request.step_size).min(request.max_traffic_percentage)
    } else {
        if all_samples_sufficient && baseline_samples_ok && !baseline_all_met {
            summary.push(conclusions::BASELINE_FAILED.to_string());
        }
        last_share
    };
    let candidate = candidate.clamp(0.0, 100.0);
    state.candidate.traffic_percentage = candidate;
    state.baseline.traffic_percentage = 100.0 - candidate;

    Ok((
        candidate,
        Assessment {
            conclusions: summary,
            all_success_criteria_met: all_met,
            abort_experiment: abort,
            success_criteria: criteria,
        },
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::{PythonNumber, round3};

    #[test]
    fn rounds_like_printf() {
        // Ties are decided on the exact binary value: 1.0005 is 1.000499999...
        for (x, expected) in [
            (1.0005, 1.0),
            (0.1245, 0.124),
            (-2.71851, -2.719),
            (42.0, 42.0),
            (1e300, 1e300),
        ] {
            assert_eq!(round3(x), expected, "{x}");
        }
    }

    #[test]
    fn tolerances_print_as_python_prints_them() {
        for (x, expected) in [(10.0, "10"), (0.02, "0.02"), (-0.0, "0"), (1.5, "1.5")] {
            assert_eq!(PythonNumber(x).to_string(), expected, "{x}");
        }
    }
}
