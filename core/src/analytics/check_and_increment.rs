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

use std::borrow::Cow;
use std::fmt::Write;

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

    /// Reads a last state as a request carries it: borrowed when it is already typed (no JSON
    /// is parsed); `None`, `null` and `{}` mean "first call".
    pub fn from_state(
        last: Option<&AnalysisState>,
    ) -> Result<Option<Cow<'_, Self>>, AnalyticsError> {
        match last {
            None => Ok(None),
            Some(AnalysisState::CheckAndIncrement(s)) => Ok(Some(Cow::Borrowed(s))),
            Some(AnalysisState::Json(v)) => Self::from_last(Some(v)).map(|s| s.map(Cow::Owned)),
        }
    }
}

/// A version's numbers after `absent_value` and rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resolved {
    value: Option<f64>,
    sample: f64,
}

/// Rounds like Python's `float("%.3f" % x)` (the exact binary value, half to even).
fn round3(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let y = x * 1000.0;
    // `x * 1000` is off by at most |y| * 2^-53; away from a tie the nearest integer is then
    // certain, and n / 1000 is correctly rounded, as parsing "%.3f" would be. Near a tie (or
    // for huge values) let the formatter decide on the exact value. Integer casts instead of
    // `floor`/`round`, which are library calls on baseline x86-64; `copysign` keeps `-0.0`.
    if y.abs() < 1e12 {
        let t = y as i64;
        let f = y - t as f64;
        let from_tie = f.abs() - 0.5;
        if from_tie.abs() > 1e-3 {
            let n = if from_tie < 0.0 {
                t
            } else if f > 0.0 {
                t + 1
            } else {
                t - 1
            };
            return (n as f64).copysign(y) / 1000.0;
        }
    }
    format!("{x:.3}").parse().unwrap_or(x)
}

/// `x.trunc()` without the library call for the values a sample size has.
fn trunc(x: f64) -> f64 {
    if x.abs() < 4.5e15 {
        (x as i64 as f64).copysign(x)
    } else {
        x.trunc()
    }
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

/// Appends a tolerance as Python's `str()` of the JSON number Go sends (`10`, `0.02`).
fn push_python_number(out: &mut String, x: f64) {
    if x.abs() < 1e16 && trunc(x) == x {
        push_decimal(out, x as i64, 0);
    } else if let Some((digits, decimals)) = short_decimal(x) {
        push_decimal(out, digits, decimals);
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{x}");
    }
}

/// `x` as `digits / 10^decimals` with the fewest decimals (at most 6) that reads back as `x`,
/// which is what `{x}` prints (the shortest representation that round-trips), found without
/// the general float formatter.
fn short_decimal(x: f64) -> Option<(i64, u32)> {
    // Below 1e9 two numbers with at most 6 decimals never read back as the same float, so the
    // first that reads back is the shortest representation.
    if x.is_nan() || x.abs() >= 1e9 {
        return None;
    }
    let mut scale = 1.0;
    for decimals in 1..=6 {
        scale *= 10.0;
        let scaled = x * scale;
        let n = (scaled + 0.5f64.copysign(scaled)) as i64;
        // n and 10^decimals are exact, so the division is correctly rounded: it equals `x`
        // exactly when the decimal text reads back as `x`.
        if n as f64 / scale == x {
            return Some((n, decimals));
        }
    }
    None
}

/// Appends `digits / 10^decimals` in plain decimal notation.
fn push_decimal(out: &mut String, digits: i64, decimals: u32) {
    let mut buf = [0u8; 24];
    let mut i = buf.len();
    let mut n = digits.unsigned_abs();
    let mut written = 0;
    while n > 0 || written <= decimals {
        if written == decimals && decimals > 0 {
            i -= 1;
            buf[i] = b'.';
        }
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        written += 1;
    }
    if digits < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    // Only ASCII digits, '.' and '-' were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// `{name} of the candidate {is|is not} within {threshold|delta} {tolerance} {|of the
/// baseline}. `, built in one allocation.
fn verdict_conclusion(name: &str, met: bool, delta: bool, tolerance: f64) -> String {
    let mut s = String::with_capacity(name.len() + 64);
    s.push_str(name);
    s.push_str(if met {
        " of the candidate is within "
    } else {
        " of the candidate is not within "
    });
    s.push_str(if delta { "delta " } else { "threshold " });
    push_python_number(&mut s, tolerance);
    s.push_str(if delta { " of the baseline. " } else { " . " });
    s
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
    let entry = CriterionInfo(trunc(r.sample), r.value);
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
        state: AnalysisState::CheckAndIncrement(state),
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
    let mut state = last.map(Cow::into_owned).unwrap_or(CheckAndIncrementState {
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
    use super::{push_python_number, round3, trunc};

    #[test]
    fn rounds_exactly_like_printf() {
        for x in [
            0.0, 1.0005, 2.0005, 200.0004, 200.0005, 0.1235, 0.1245, 1e-7, -3.14151, 12345.6785,
            1e15, 0.0625, 2.675,
        ] {
            let expected: f64 = format!("{x:.3}").parse().unwrap();
            assert_eq!(round3(x), expected, "{x}");
        }
    }

    /// What the tolerance was formatted with before the fast paths.
    fn python_number_by_formatter(x: f64) -> String {
        if x.fract() == 0.0 && x.abs() < 1e16 {
            format!("{}", x as i64)
        } else {
            format!("{x}")
        }
    }

    fn python_number(x: f64) -> String {
        let mut s = String::new();
        push_python_number(&mut s, x);
        s
    }

    #[test]
    fn tolerances_print_as_before() {
        for x in [
            0.0,
            -0.0,
            10.0,
            200.0,
            0.02,
            0.1,
            0.5,
            1.5,
            2.675,
            0.000001,
            1e-7,
            0.1 + 0.2,
            123.456,
            -0.25,
            1e15,
            1e16,
            1e300,
            999_999_999.999_999,
            f64::INFINITY,
            f64::NAN,
        ] {
            assert_eq!(python_number(x), python_number_by_formatter(x), "{x:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_rounding_agrees_with_the_formatter(x in -1e9f64..1e9) {
            let expected: f64 = format!("{x:.3}").parse().unwrap();
            proptest::prop_assert_eq!(round3(x).to_bits(), expected.to_bits());
        }

        #[test]
        fn fast_rounding_agrees_near_ties(n in -1_000_000i64..1_000_000, off in -3i64..3) {
            let x = (n as f64 + 0.5) / 1000.0 + off as f64 * f64::EPSILON;
            let expected: f64 = format!("{x:.3}").parse().unwrap();
            proptest::prop_assert_eq!(round3(x).to_bits(), expected.to_bits());
        }

        #[test]
        fn fast_rounding_keeps_the_sign_of_zero(x in -4e-4f64..4e-4) {
            let expected: f64 = format!("{x:.3}").parse().unwrap();
            proptest::prop_assert_eq!(round3(x).to_bits(), expected.to_bits());
        }

        #[test]
        fn fast_trunc_agrees(x in proptest::num::f64::ANY) {
            proptest::prop_assert_eq!(trunc(x).to_bits(), x.trunc().to_bits());
        }

        #[test]
        fn decimal_tolerances_print_as_before(n in -10_000_000i64..10_000_000, d in 0u32..8) {
            let x = n as f64 / 10f64.powi(d as i32);
            proptest::prop_assert_eq!(python_number(x), python_number_by_formatter(x));
        }

        #[test]
        fn any_tolerance_prints_as_before(x in proptest::num::f64::ANY) {
            proptest::prop_assert_eq!(python_number(x), python_number_by_formatter(x));
        }
    }
}
