//! `check_and_increment`, as iter8-analytics v0.2.1 decides it (behaviour guide §4).
//!
//! - Per criterion and version: the value (after `absent_value`) and the sample size.
//! - threshold: met iff the candidate's sample is sufficient and its value <= tolerance.
//! - delta: both samples sufficient and candidate <= (1 + tolerance) x baseline.
//! - abort: a criterion with `stopOnFailure` fails on a sufficient sample; a counter metric over
//!   its threshold on a sufficient sample always aborts.
//! - traffic: first call -> min(step, max); later, all met and new data -> min(last + step, max);
//!   otherwise hold. An error in any measurement is an error of the whole decision: it never
//!   moves traffic.

use serde::{Deserialize, Serialize};

use super::{AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::measurement::{Measurement, MetricReadings, VersionReading};
use crate::model::{Assessment, CriterionAssessment, Reading, ToleranceType};
use crate::plan::Criterion;

/// Conclusions, as plain-English sentences.
pub mod conclusions {
    /// Summary when every criterion is met.
    pub const ALL_MET: &str = "All success criteria were met";
    /// Summary when some criterion is not met.
    pub const NOT_ALL_MET: &str = "Not all success criteria were met";
    /// Summary when the experiment must stop.
    pub const ABORT: &str = "The experiment needs to be aborted";
    /// Summary when nothing changed since the last analysis.
    pub const NO_NEW_DATA: &str = "No new data since the last analysis: traffic is held";
    /// A criterion whose sample is too small.
    pub const INSUFFICIENT_SAMPLE: &str = "Insufficient sample size";
}

/// Per-version part of the state: the share and, per criterion, `[sample_size, value]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VersionState {
    /// The version's share after the decision.
    pub traffic_percentage: f64,
    /// Per criterion, in order: `[sample_size, value]` (`value` null when there was none).
    #[serde(default)]
    pub success_criterion_information: Vec<CriterionInfo>,
}

/// `[sample_size, value]` of one criterion for one version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CriterionInfo(
    /// The sample size.
    pub f64,
    /// The value (`null` for none; NaN and infinities as strings).
    #[serde(with = "crate::model::reading_value")]
    pub Option<f64>,
);

/// The state check_and_increment carries between calls (iter8-analytics' `_last_state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CheckAndIncrementState {
    /// Baseline part.
    pub baseline: VersionState,
    /// Candidate part.
    pub candidate: VersionState,
}

/// A version's numbers after `absent_value` is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resolved {
    value: Option<f64>,
    sample: f64,
}

fn resolve(reading: &VersionReading, criterion: &Criterion) -> Result<Resolved, AnalyticsError> {
    let value = reading
        .value
        .resolve(criterion.metric.absent_value)
        .map_err(|e| AnalyticsError::Metrics(e.clone()))?;
    // No series for the sample-size query means no requests were counted.
    let sample = match &reading.sample_size {
        Measurement::Value(v) => v.max(0.0),
        Measurement::NoData | Measurement::NaN | Measurement::PosInf | Measurement::NegInf => 0.0,
        Measurement::Error(e) => return Err(AnalyticsError::Metrics(e.clone())),
    };
    Ok(Resolved { value, sample })
}

fn reading(r: Resolved) -> Reading {
    Reading {
        value: r.value,
        sample_size: r.sample,
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{}", (x * 1000.0).round() / 1000.0)
    }
}

/// Judges one criterion.
fn judge(criterion: &Criterion, b: Resolved, c: Resolved) -> CriterionAssessment {
    let name = &criterion.metric.name;
    let needed = criterion.sample_size as f64;
    let mut out = CriterionAssessment {
        metric_name: name.clone(),
        tolerance_type: Some(criterion.tolerance_type.as_str().to_string()),
        tolerance: Some(criterion.tolerance),
        sample_size: Some(criterion.sample_size),
        baseline: Some(reading(b)),
        candidate: Some(reading(c)),
        ..Default::default()
    };
    let delta = criterion.tolerance_type == ToleranceType::Delta;
    let sufficient = c.sample >= needed && (!delta || b.sample >= needed);
    if !sufficient {
        out.conclusions.push(format!(
            "{}: {name} needs {} requests per version, has {} (candidate){}",
            conclusions::INSUFFICIENT_SAMPLE,
            criterion.sample_size,
            fmt_num(c.sample),
            if delta {
                format!(" and {} (baseline)", fmt_num(b.sample))
            } else {
                String::new()
            }
        ));
        return out;
    }
    let Some(cv) = c.value else {
        out.conclusions
            .push(format!("No data for {name} of the candidate"));
        return out;
    };
    // NaN and -Inf are not measurements of the service: they can neither pass nor abort.
    if cv.is_nan() || cv == f64::NEG_INFINITY {
        out.conclusions.push(format!(
            "{name} of the candidate is {}: cannot judge",
            fmt_num(cv)
        ));
        return out;
    }
    let (limit, what) = if delta {
        let Some(bv) = b.value.filter(|v| v.is_finite()) else {
            out.conclusions.push(format!(
                "No usable baseline value for {name} ({}): cannot compare",
                b.value.map_or("no data".to_string(), fmt_num)
            ));
            return out;
        };
        (
            (1.0 + criterion.tolerance) * bv,
            format!(
                "within {} of the baseline ({})",
                fmt_num(criterion.tolerance),
                fmt_num(bv)
            ),
        )
    } else {
        (
            criterion.tolerance,
            format!("within the threshold {}", fmt_num(criterion.tolerance)),
        )
    };
    out.success_criterion_met = cv <= limit;
    if out.success_criterion_met {
        out.conclusions.push(format!(
            "{name} of the candidate ({}) is {what}",
            fmt_num(cv)
        ));
    } else {
        out.conclusions.push(format!(
            "{name} of the candidate ({}) is not {what}",
            fmt_num(cv)
        ));
        let counter_over = criterion.metric.is_counter && !delta;
        out.abort_experiment = criterion.stop_on_failure || counter_over;
    }
    out
}

/// Decides the candidate's next share with check_and_increment.
pub fn check_and_increment(
    request: &AnalysisRequest,
    readings: &[MetricReadings],
) -> Result<AnalysisOutcome, AnalyticsError> {
    if readings.len() != request.criteria.len() {
        return Err(AnalyticsError::Invalid(format!(
            "expected readings for {} criteria, got {}",
            request.criteria.len(),
            readings.len()
        )));
    }
    let last: Option<CheckAndIncrementState> = match &request.last_state {
        None => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            AnalyticsError::Invalid(format!("last state is not check_and_increment's: {e}"))
        })?),
    };

    let mut criteria = Vec::with_capacity(readings.len());
    let mut info_b = Vec::with_capacity(readings.len());
    let mut info_c = Vec::with_capacity(readings.len());
    for (criterion, r) in request.criteria.iter().zip(readings) {
        let b = resolve(&r.baseline, criterion)?;
        let c = resolve(&r.candidate, criterion)?;
        info_b.push(CriterionInfo(b.sample, b.value));
        info_c.push(CriterionInfo(c.sample, c.value));
        criteria.push(judge(criterion, b, c));
    }

    let all_met = criteria.iter().all(|c| c.success_criterion_met);
    let abort = criteria.iter().any(|c| c.abort_experiment);
    // NaN never equals itself; compare bit patterns so an unchanged NaN counts as unchanged.
    let same = |a: &[CriterionInfo], b: &[CriterionInfo]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.0.to_bits() == y.0.to_bits() && x.1.map(f64::to_bits) == y.1.map(f64::to_bits)
            })
    };
    let step = request.step_size;
    let max = request.max_traffic_percentage;
    let (candidate, new_data) = match &last {
        None => (step.min(max), true),
        Some(last) => {
            let changed = !same(&last.baseline.success_criterion_information, &info_b)
                || !same(&last.candidate.success_criterion_information, &info_c);
            let now = last.candidate.traffic_percentage;
            if all_met && changed {
                ((now + step).min(max), true)
            } else {
                (now, changed)
            }
        }
    };
    let candidate = candidate.clamp(0.0, 100.0);

    let mut summary = Vec::new();
    summary.push(
        if all_met {
            conclusions::ALL_MET
        } else {
            conclusions::NOT_ALL_MET
        }
        .to_string(),
    );
    if abort {
        summary.push(conclusions::ABORT.to_string());
    }
    if !new_data {
        summary.push(conclusions::NO_NEW_DATA.to_string());
    }
    let state = CheckAndIncrementState {
        baseline: VersionState {
            traffic_percentage: 100.0 - candidate,
            success_criterion_information: info_b,
        },
        candidate: VersionState {
            traffic_percentage: candidate,
            success_criterion_information: info_c,
        },
    };
    Ok(AnalysisOutcome {
        candidate_traffic_percentage: candidate,
        assessment: Assessment {
            conclusions: summary,
            all_success_criteria_met: all_met,
            abort_experiment: abort,
            success_criteria: criteria,
        },
        state: serde_json::to_value(&state)
            .map_err(|e| AnalyticsError::Invalid(format!("state: {e}")))?,
    })
}
