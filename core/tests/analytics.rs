//! check_and_increment decides as iter8-analytics v0.2.1 does (behaviour guide §4), rule by
//! rule, with its conclusions word for word.

mod support;

use iter8_core::analytics::{
    self, AnalysisRequest, AnalysisState, AnalyticsError, CheckAndIncrementState, conclusions,
};
use iter8_core::measurement::Window;
use iter8_core::validation::plan;
use iter8_core::{Measurement, MetricReadings};
use iter8_rand::ChaCha;
use support::*;

const LATENCY: &str = "      - metricName: iter8_latency\n        toleranceType: threshold\n        tolerance: 200\n        sampleSize: 5\n";
const ERROR_RATE_STOP: &str = "      - metricName: iter8_error_rate\n        toleranceType: delta\n        tolerance: 0.02\n        sampleSize: 10\n        stopOnFailure: true\n";
const TRAFFIC: &str = "    interval: 30s\n    trafficStepSize: 20\n    maxIterations: 6\n    maxTrafficPercentage: 80";

fn request(criteria: &str, last: Option<serde_json::Value>) -> AnalysisRequest {
    let exp = with(TRAFFIC, criteria);
    let plan = plan(&exp, &metrics()).unwrap();
    AnalysisRequest::new(
        &plan,
        Window {
            start: t0(),
            end: t0() + chrono::Duration::seconds(60),
        },
        last.map(AnalysisState::from),
    )
}

fn last(candidate: f64, b: &[(f64, Option<f64>)], c: &[(f64, Option<f64>)]) -> serde_json::Value {
    let info = |v: &[(f64, Option<f64>)]| {
        v.iter()
            .map(|(n, x)| serde_json::json!([n, x]))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "baseline": {"traffic_percentage": 100.0 - candidate, "success_criterion_information": info(b)},
        "candidate": {"traffic_percentage": candidate, "success_criterion_information": info(c)},
    })
}

fn latency(b: (f64, f64), c: (f64, f64)) -> Vec<MetricReadings> {
    vec![readings("iter8_latency", v(b.0, b.1), v(c.0, c.1))]
}

#[test]
fn first_call_steps_even_when_criteria_fail() {
    let out = analytics::analyze(
        &request(LATENCY, None),
        &latency((10.0, 50.0), (5000.0, 50.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 20.0);
    assert!(!out.assessment.all_success_criteria_met);
    assert_eq!(out.assessment.conclusions, [conclusions::STARTED]);
    // An empty object is also a first call (the controller sends `{}`).
    let out = analytics::analyze(
        &request(LATENCY, Some(serde_json::json!({}))),
        &latency((10.0, 50.0), (10.0, 50.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 20.0);
}

#[test]
fn first_call_is_capped_by_the_maximum() {
    let exp = with(
        "    trafficStepSize: 30\n    maxTrafficPercentage: 25",
        LATENCY,
    );
    let p = plan(&exp, &metrics()).unwrap();
    let req = AnalysisRequest::new(
        &p,
        Window {
            start: t0(),
            end: t0(),
        },
        None,
    );
    let out = analytics::analyze(&req, &latency((1.0, 9.0), (1.0, 9.0)), &ChaCha).unwrap();
    assert_eq!(out.candidate_traffic_percentage, 25.0);
}

#[test]
fn all_met_with_new_data_steps_up_to_the_cap() {
    let prev = last(20.0, &[(5.0, Some(10.0))], &[(5.0, Some(12.0))]);
    let out = analytics::analyze(
        &request(LATENCY, Some(prev)),
        &latency((10.0, 40.0), (11.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 40.0);
    assert_eq!(out.assessment.conclusions, [conclusions::ALL_MET]);
    let near_cap = last(70.0, &[(5.0, Some(10.0))], &[(5.0, Some(12.0))]);
    let out = analytics::analyze(
        &request(LATENCY, Some(near_cap)),
        &latency((10.0, 40.0), (11.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(
        out.candidate_traffic_percentage, 80.0,
        "capped at maxTrafficPercentage"
    );
}

#[test]
fn nothing_changed_holds_traffic() {
    // Same samples and values as last time.
    let prev = last(40.0, &[(40.0, Some(10.0))], &[(30.0, Some(11.0))]);
    let out = analytics::analyze(
        &request(LATENCY, Some(prev.clone())),
        &latency((10.0, 40.0), (11.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 40.0);
    assert_eq!(
        out.assessment.conclusions,
        [conclusions::ALL_MET, conclusions::NO_CHANGE]
    );
    // A smaller sample with the same value is not a change either (as in the original).
    let out = analytics::analyze(
        &request(LATENCY, Some(prev)),
        &latency((10.0, 39.0), (11.0, 29.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 40.0);
}

#[test]
fn failing_criteria_hold_traffic() {
    let prev = last(20.0, &[(5.0, Some(10.0))], &[(5.0, Some(5000.0))]);
    let out = analytics::analyze(
        &request(LATENCY, Some(prev)),
        &latency((10.0, 40.0), (5000.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(out.candidate_traffic_percentage, 20.0);
    assert!(!out.assessment.all_success_criteria_met);
    assert!(
        !out.assessment.abort_experiment,
        "no stopOnFailure: no abort"
    );
    assert_eq!(
        out.assessment.success_criteria[0].conclusions,
        ["iter8_latency of the candidate is not within threshold 200 . "]
    );
    assert_eq!(out.assessment.conclusions, [conclusions::NOT_ALL_MET]);
}

#[test]
fn threshold_compares_the_candidate_only() {
    let out = analytics::analyze(
        &request(LATENCY, Some(last(20.0, &[], &[]))),
        &latency((9999.0, 40.0), (200.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    let c = &out.assessment.success_criteria[0];
    assert!(c.success_criterion_met, "value == tolerance passes");
    assert_eq!(
        c.conclusions,
        ["iter8_latency of the candidate is within threshold 200 . "]
    );
    // Values are rounded to 3 decimals first, as the original's query layer does.
    let out = analytics::analyze(
        &request(LATENCY, Some(last(20.0, &[], &[]))),
        &latency((1.0, 40.0), (200.0004, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert!(out.assessment.success_criteria[0].success_criterion_met);
}

#[test]
fn insufficient_sample_is_not_met_and_never_aborts() {
    let exp_criteria = "      - metricName: iter8_latency\n        toleranceType: threshold\n        tolerance: 200\n        sampleSize: 50\n        stopOnFailure: true\n";
    let out = analytics::analyze(
        &request(exp_criteria, Some(last(20.0, &[], &[]))),
        &latency((10.0, 100.0), (5000.0, 49.0)),
        &ChaCha,
    )
    .unwrap();
    let c = &out.assessment.success_criteria[0];
    assert!(!c.success_criterion_met);
    assert!(!c.abort_experiment);
    assert_eq!(c.conclusions, [conclusions::INSUFFICIENT_SAMPLE]);
    assert_eq!(out.candidate_traffic_percentage, 20.0);
}

#[test]
fn delta_is_relative_to_the_baseline_and_needs_both_samples() {
    let rate =
        |b: (f64, f64), c: (f64, f64)| vec![readings("iter8_error_rate", v(b.0, b.1), v(c.0, c.1))];
    let crit = "      - metricName: iter8_error_rate\n        toleranceType: delta\n        tolerance: 0.5\n        sampleSize: 10\n";
    let prev = Some(last(20.0, &[], &[]));
    // 0.15 <= (1 + 0.5) * 0.1
    let out = analytics::analyze(
        &request(crit, prev.clone()),
        &rate((0.1, 20.0), (0.15, 20.0)),
        &ChaCha,
    )
    .unwrap();
    assert!(out.assessment.success_criteria[0].success_criterion_met);
    assert_eq!(
        out.assessment.success_criteria[0].conclusions,
        ["iter8_error_rate of the candidate is within delta 0.5 of the baseline. "]
    );
    let out = analytics::analyze(
        &request(crit, prev.clone()),
        &rate((0.1, 20.0), (0.16, 20.0)),
        &ChaCha,
    )
    .unwrap();
    assert!(!out.assessment.success_criteria[0].success_criterion_met);
    // Baseline sample too small.
    let out = analytics::analyze(
        &request(crit, prev),
        &rate((0.1, 9.0), (0.1, 20.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(
        out.assessment.success_criteria[0].conclusions,
        [conclusions::INSUFFICIENT_SAMPLE]
    );
}

#[test]
fn stop_on_failure_aborts_on_a_sufficient_sample() {
    let crit = format!("{LATENCY}{ERROR_RATE_STOP}");
    let r = vec![
        readings("iter8_latency", v(5.0, 40.0), v(5.0, 10.0)),
        readings("iter8_error_rate", v(0.0, 40.0), v(1.0, 10.0)),
    ];
    let out = analytics::analyze(&request(&crit, Some(last(20.0, &[], &[]))), &r, &ChaCha).unwrap();
    assert!(out.assessment.abort_experiment);
    assert!(out.assessment.success_criteria[1].abort_experiment);
    assert!(!out.assessment.success_criteria[0].abort_experiment);
    assert_eq!(
        out.assessment.conclusions,
        [conclusions::ABORT, conclusions::NOT_ALL_MET]
    );
    // One request short: no verdict, no abort.
    let r = vec![
        readings("iter8_latency", v(5.0, 40.0), v(5.0, 9.0)),
        readings("iter8_error_rate", v(0.0, 40.0), v(1.0, 9.0)),
    ];
    let out = analytics::analyze(&request(&crit, Some(last(20.0, &[], &[]))), &r, &ChaCha).unwrap();
    assert!(!out.assessment.abort_experiment);
}

#[test]
fn a_counter_over_its_threshold_always_aborts() {
    let crit = "      - metricName: iter8_error_count\n        toleranceType: threshold\n        tolerance: 10\n        sampleSize: 5\n";
    let r = vec![readings("iter8_error_count", v(0.0, 40.0), v(11.0, 40.0))];
    let out = analytics::analyze(&request(crit, Some(last(20.0, &[], &[]))), &r, &ChaCha).unwrap();
    let c = &out.assessment.success_criteria[0];
    assert!(c.abort_experiment, "no stopOnFailure needed");
    assert_eq!(
        c.conclusions,
        [
            "iter8_error_count of the candidate is not within threshold 10 . ",
            conclusions::COUNTER_EXCEEDED
        ]
    );
}

#[test]
fn delta_on_a_counter_is_a_configuration_error() {
    let mut req = request(LATENCY, None);
    req.criteria[0].metric = metrics().metric("iter8_error_count").unwrap();
    req.criteria[0].tolerance_type = iter8_core::ToleranceType::Delta;
    let err = analytics::analyze(
        &req,
        &[readings("iter8_error_count", v(0.0, 9.0), v(0.0, 9.0))],
        &ChaCha,
    )
    .unwrap_err();
    assert_eq!(
        err,
        AnalyticsError::Invalid("Delta criterion cannot be used with counter metric.".into())
    );
}

#[test]
fn no_data_follows_the_metrics_absent_value() {
    // iter8_latency: absent_value "None" -> no value -> not met.
    let out = analytics::analyze(
        &request(LATENCY, Some(last(20.0, &[], &[]))),
        &[readings(
            "iter8_latency",
            v(5.0, 40.0),
            iter8_core::VersionReading {
                value: Measurement::NoData,
                sample_size: Measurement::Value(40.0),
            },
        )],
        &ChaCha,
    )
    .unwrap();
    let c = &out.assessment.success_criteria[0];
    assert!(!c.success_criterion_met);
    assert_eq!(c.candidate.unwrap().value, None);
    // Stock v2 iter8_error_rate: absent_value 0 -> 0.
    let stock = iter8_core::MetricsConfig::stock_telemetry_v2();
    let mut req = request(LATENCY, Some(last(20.0, &[], &[])));
    req.criteria[0].metric = stock.metric("iter8_error_rate").unwrap();
    let out = analytics::analyze(
        &req,
        &[readings(
            "iter8_error_rate",
            v(0.0, 40.0),
            iter8_core::VersionReading {
                value: Measurement::NoData,
                sample_size: Measurement::Value(40.0),
            },
        )],
        &ChaCha,
    )
    .unwrap();
    assert_eq!(
        out.assessment.success_criteria[0].candidate.unwrap().value,
        Some(0.0)
    );
    assert!(out.assessment.success_criteria[0].success_criterion_met);
}

#[test]
fn nan_and_infinities_are_never_silently_numbers() {
    let req = request(LATENCY, Some(last(20.0, &[], &[])));
    for (value, met) in [
        (f64::NAN, false),
        (f64::NEG_INFINITY, false),
        (f64::INFINITY, false),
    ] {
        let out = analytics::analyze(&req, &latency((5.0, 40.0), (value, 40.0)), &ChaCha).unwrap();
        let c = &out.assessment.success_criteria[0];
        assert_eq!(c.success_criterion_met, met, "{value}");
        assert_ne!(
            c.candidate.unwrap().value,
            Some(0.0),
            "{value} must not become 0"
        );
    }
}

#[test]
fn a_backend_error_fails_the_whole_decision() {
    let err = analytics::analyze(
        &request(LATENCY, Some(last(20.0, &[], &[]))),
        &[readings("iter8_latency", v(5.0, 40.0), failed())],
        &ChaCha,
    )
    .unwrap_err();
    assert!(matches!(err, AnalyticsError::Metrics(_)), "{err:?}");
}

#[test]
fn the_baseline_failing_too_is_noted() {
    let prev = last(20.0, &[(5.0, Some(900.0))], &[(5.0, Some(900.0))]);
    let out = analytics::analyze(
        &request(LATENCY, Some(prev)),
        &latency((800.0, 40.0), (900.0, 30.0)),
        &ChaCha,
    )
    .unwrap();
    assert_eq!(
        out.assessment.conclusions,
        [conclusions::NOT_ALL_MET, conclusions::BASELINE_FAILED]
    );
}

#[test]
fn state_has_iter8_analytics_shape_and_round_trips() {
    let out = analytics::analyze(
        &request(LATENCY, None),
        &latency((10.5, 40.9), (12.25, 30.2)),
        &ChaCha,
    )
    .unwrap();
    let expected = serde_json::json!({
        "baseline": {"traffic_percentage": 80.0, "success_criterion_information": [[40.0, 10.5]]},
        "candidate": {"traffic_percentage": 20.0, "success_criterion_information": [[30.0, 12.25]]},
    });
    // Written as iter8-analytics' `_last_state`, to the byte.
    assert_eq!(out.state, expected);
    let text = serde_json::to_string(&out.state).unwrap();
    assert_eq!(text, serde_json::to_string(&expected).unwrap());
    // Read back equal, and written again identically.
    let back: AnalysisState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, out.state);
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
    let parsed = CheckAndIncrementState::from_state(Some(&out.state))
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), out.state);
    let bad = analytics::analyze(
        &request(LATENCY, Some(serde_json::json!({"candidate": 3}))),
        &latency((1.0, 1.0), (1.0, 1.0)),
        &ChaCha,
    );
    assert!(matches!(bad, Err(AnalyticsError::Invalid(_))));
}

#[test]
fn states_typed_or_not_are_written_back_exactly_as_read() {
    for text in [
        // As the Python iter8-analytics writes it: whole sample sizes as integers.
        r#"{"baseline":{"success_criterion_information":[[90,5.0]],"traffic_percentage":60.0},"candidate":{"success_criterion_information":[[30,6.0]],"traffic_percentage":40.0}}"#,
        // epsilon_t_greedy's: check_and_increment's plus a count.
        r#"{"baseline":{"success_criterion_information":[[90.0,5.0]],"traffic_percentage":60.0},"candidate":{"success_criterion_information":[[30.0,6.0]],"traffic_percentage":40.0},"effective_iteration_count":2}"#,
        // increment_without_check's: no criterion information.
        r#"{"baseline":{"traffic_percentage":60.0},"candidate":{"traffic_percentage":40.0}}"#,
        // check_and_increment's as this crate writes it, with a missing and a NaN value.
        r#"{"baseline":{"success_criterion_information":[[90.0,null]],"traffic_percentage":60.0},"candidate":{"success_criterion_information":[[30.0,"NaN"]],"traffic_percentage":40.0}}"#,
        "{}",
        "null",
    ] {
        let state: AnalysisState = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&state).unwrap(), text, "{state:?}");
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(state, value, "{text}");
    }
}

#[test]
fn increment_without_check_steps_while_within_the_cap() {
    // As v0.2.1: step 20, max 50 gives 20, 40, 40 (a step past the cap is not taken).
    let exp = with(
        "    trafficStepSize: 20\n    maxTrafficPercentage: 50",
        "      []",
    );
    let p = plan(&exp, &metrics()).unwrap();
    let mut req = AnalysisRequest::new(
        &p,
        Window {
            start: t0(),
            end: t0(),
        },
        None,
    );
    let mut seen = Vec::new();
    for _ in 0..3 {
        let out = analytics::analyze(&req, &[], &ChaCha).unwrap();
        seen.push(out.candidate_traffic_percentage);
        req.last_state = Some(out.state);
    }
    assert_eq!(seen, [20.0, 40.0, 40.0]);
}

/// A Randomness that records which streams a strategy asks for, drawing from ChaCha.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(u64, u64)>>);

impl iter8_core::ports::Randomness for Recorded {
    fn draws(&self, seed: u64, call: u64) -> Box<dyn iter8_core::ports::Draws> {
        self.0.lock().unwrap().push((seed, call));
        ChaCha.draws(seed, call)
    }
}

#[test]
fn bayesian_strategies_draw_from_the_request_seed_one_stream_per_iteration() {
    let readings = latency((10.0, 50.0), (12.0, 50.0));
    for strategy in [
        iter8_core::Strategy::PosteriorBayesianRouting,
        iter8_core::Strategy::OptimisticBayesianRouting,
    ] {
        let mut first = request(LATENCY, None);
        first.strategy = strategy.clone();
        first.seed = 42;
        let recorded = Recorded::default();
        let out = analytics::analyze(&first, &readings, &recorded).unwrap();
        let second = AnalysisRequest {
            last_state: Some(out.state.clone()),
            ..first.clone()
        };
        analytics::analyze(&second, &readings, &recorded).unwrap();
        assert_eq!(
            *recorded.0.lock().unwrap(),
            [(42, 0), (42, 1)],
            "{strategy}"
        );
        // The same request and draws decide the same way.
        assert_eq!(
            analytics::analyze(&first, &readings, &ChaCha).unwrap(),
            out,
            "{strategy}"
        );
    }
    // Check-and-increment draws nothing.
    let recorded = Recorded::default();
    analytics::analyze(&request(LATENCY, None), &readings, &recorded).unwrap();
    assert!(recorded.0.lock().unwrap().is_empty());
}
