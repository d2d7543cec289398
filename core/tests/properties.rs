//! Properties of the engine for any valid spec and any sequence of measurements.

mod support;

use iter8_core::analytics::AnalysisRequest;
use iter8_core::{
    Experiment, Measurement, MetricError, MetricErrorKind, MetricReadings, Strategy as Spread,
    TrafficSplit, VersionReading,
};
use proptest::prelude::*;
use support::*;

const METRICS: [(&str, &str); 4] = [
    ("iter8_latency", "threshold"),
    ("iter8_error_rate", "delta"),
    ("iter8_error_count", "threshold"),
    ("iter8_90_perc_latency", "threshold"),
];

#[derive(Debug, Clone)]
struct Spec {
    interval: u32,
    max_iterations: u32,
    step: f64,
    max: f64,
    criteria: Vec<(usize, f64, u32, bool)>,
}

impl Spec {
    fn experiment(&self) -> Experiment {
        let criteria: String = self
            .criteria
            .iter()
            .map(|(m, tol, n, stop)| {
                format!(
                    "      - metricName: {}\n        toleranceType: {}\n        tolerance: {tol}\n        sampleSize: {n}\n        stopOnFailure: {stop}\n",
                    METRICS[*m].0, METRICS[*m].1
                )
            })
            .collect();
        let criteria = if criteria.is_empty() {
            "      []".to_string()
        } else {
            criteria
        };
        with(
            &format!(
                "    interval: {}s\n    maxIterations: {}\n    trafficStepSize: {}\n    maxTrafficPercentage: {}",
                self.interval, self.max_iterations, self.step, self.max
            ),
            &criteria,
        )
    }
}

fn spec(min_criteria: usize) -> impl Strategy<Value = Spec> {
    (
        1u32..120,
        1u32..12,
        prop_oneof![1u32..=100u32, Just(20u32)].prop_map(f64::from),
        prop_oneof![(1u32..=100u32).prop_map(f64::from), (1.0f64..100.0)],
        proptest::collection::vec(
            (0usize..4, 0.0f64..500.0, 0u32..40, any::<bool>()),
            min_criteria..4,
        ),
    )
        .prop_map(|(interval, max_iterations, step, max, criteria)| Spec {
            interval,
            max_iterations,
            step,
            max,
            criteria,
        })
}

fn measurement() -> impl Strategy<Value = Measurement> {
    prop_oneof![
        6 => (0.0f64..1000.0).prop_map(Measurement::Value),
        1 => Just(Measurement::NoData),
        1 => Just(Measurement::NaN),
        1 => Just(Measurement::PosInf),
        1 => Just(Measurement::Error(MetricError::new(MetricErrorKind::Timeout, "timed out"))),
    ]
}

fn reading() -> impl Strategy<Value = VersionReading> {
    (measurement(), prop_oneof![4 => (0.0f64..100.0).prop_map(Measurement::Value), 1 => Just(Measurement::NoData)])
        .prop_map(|(value, sample_size)| VersionReading { value, sample_size })
}

/// Readings for up to 16 analyses, per criterion slot (cycled).
fn tape() -> impl Strategy<Value = Vec<Vec<(VersionReading, VersionReading)>>> {
    proptest::collection::vec(proptest::collection::vec((reading(), reading()), 4), 1..16)
}

fn world(tape: &[Vec<(VersionReading, VersionReading)>]) -> World<'_> {
    World::present(move |i, req: &AnalysisRequest| {
        let row = &tape[i % tape.len()];
        Some(
            req.criteria
                .iter()
                .enumerate()
                .map(|(k, c)| MetricReadings {
                    metric: c.metric.name.clone(),
                    baseline: row[k].0.clone(),
                    candidate: row[k].1.clone(),
                })
                .collect(),
        )
    })
}

const STEPS: usize = 200;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn splits_are_sound_and_endings_are_safe(spec in spec(0), tape in tape()) {
        let exp = spec.experiment();
        let strategy = exp.spec.strategy();
        let run = Run::new(exp).run(&mut world(&tape), &metrics(), STEPS);
        let mut last = 0;
        for r in &run.records {
            let s = r.decision.status.split();
            prop_assert_eq!(s.baseline + s.candidate, 100);
            prop_assert_eq!(r.routed.baseline + r.routed.candidate, 100);
            if !r.decision.status.is_completed() {
                prop_assert!(f64::from(s.candidate) <= spec.max, "{} > max {}", s.candidate, spec.max);
                if strategy == Spread::CheckAndIncrement || strategy == Spread::IncrementWithoutCheck {
                    prop_assert!(s.candidate >= last, "decreased from {} to {}", last, s.candidate);
                }
                last = s.candidate;
            }
        }
        if run.message().starts_with("ExperimentFailed") {
            prop_assert_eq!(run.exp.status.split(), TrafficSplit::ALL_BASELINE);
            prop_assert_eq!(run.routed, Some(TrafficSplit::ALL_BASELINE));
        }
    }

    #[test]
    fn taking_the_analysis_decides_as_lending_it(
        spec in spec(0),
        tape in tape(),
        fast_abort in proptest::bool::ANY,
    ) {
        let every = fast_abort.then(|| std::time::Duration::from_secs(7));
        let mut lent = Run::new(spec.experiment());
        lent.abort_check_every = every;
        let mut taken = Run::new(spec.experiment());
        taken.abort_check_every = every;
        taken.take_analysis = true;
        let lent = lent.run(&mut world(&tape), &metrics(), STEPS);
        let taken = taken.run(&mut world(&tape), &metrics(), STEPS);
        prop_assert!(lent.records.iter().any(|r| r.analyzed) || spec.experiment().spec.analysis.success_criteria.is_empty());
        prop_assert_eq!(&lent.records, &taken.records);
    }

    #[test]
    fn errors_never_move_traffic(spec in spec(1), tape in tape()) {
        let run = Run::new(spec.experiment()).run(&mut world(&tape), &metrics(), STEPS);
        let mut prev = TrafficSplit::ALL_BASELINE;
        for r in &run.records {
            let msg = r.decision.status.message.clone().unwrap_or_default();
            if msg.starts_with("AnalyticsServiceError") {
                prop_assert_eq!(r.decision.status.split(), prev);
                prop_assert_eq!(r.routed, prev);
            }
            prev = r.decision.status.split();
        }
    }

    #[test]
    fn abort_comes_at_the_first_failing_stop_criterion(spec in spec(1), tape in tape()) {
        let exp = spec.experiment();
        let criteria = exp.spec.analysis.success_criteria.clone();
        let run = Run::new(exp).run(&mut world(&tape), &metrics(), STEPS);
        for (i, r) in run.records.iter().enumerate() {
            let Some(a) = r.decision.status.assessment.as_ref().filter(|_| r.analyzed) else { continue };
            if r.decision.status.message.as_deref().is_some_and(|m| m.starts_with("AnalyticsServiceError")) {
                continue;
            }
            let must_abort = a.success_criteria.iter().zip(&criteria).any(|(c, spec)| {
                let n = spec.sample_size.unwrap_or(10) as f64;
                let delta = spec.tolerance_type.as_ref().map(|t| t.as_str()) == Some("delta");
                let sufficient = c.candidate.is_some_and(|r| r.sample_size >= n)
                    && (!delta || c.baseline.is_some_and(|r| r.sample_size >= n));
                spec.stop_on_failure == Some(true) && sufficient && !c.success_criterion_met
            });
            let aborted = r.decision.status.message.as_deref() == Some("ExperimentFailed: Aborted");
            if must_abort {
                prop_assert!(aborted, "decision {} should abort", i);
                prop_assert_eq!(i, run.records.len() - 1);
            }
        }
    }

    #[test]
    fn no_successful_measurement_never_succeeds(spec in spec(1), tape in proptest::collection::vec(
        proptest::collection::vec(
            (prop_oneof![Just(Measurement::NoData), Just(Measurement::NaN), Just(Measurement::Error(MetricError::new(MetricErrorKind::Backend, "bad")))],
             prop_oneof![Just(Measurement::NoData), (0.0f64..100.0).prop_map(Measurement::Value)]),
            4),
        1..8)) {
        let tape: Vec<Vec<(VersionReading, VersionReading)>> = tape
            .into_iter()
            .map(|row| row.into_iter().map(|(value, sample_size)| {
                let r = VersionReading { value, sample_size };
                (r.clone(), r)
            }).collect())
            .collect();
        let run = Run::new(spec.experiment()).run(&mut world(&tape), &metrics(), STEPS);
        prop_assert!(!run.message().starts_with("ExperimentSucceeded"), "{}", run.message());
    }

    #[test]
    fn decisions_are_deterministic(spec in spec(0), tape in tape()) {
        let a = Run::new(spec.experiment()).run(&mut world(&tape), &metrics(), STEPS);
        let b = Run::new(spec.experiment()).run(&mut world(&tape), &metrics(), STEPS);
        prop_assert_eq!(a.records, b.records);
    }

    #[test]
    fn a_restart_from_the_persisted_status_changes_nothing(spec in spec(0), tape in tape(), cut in 0usize..30) {
        let whole = Run::new(spec.experiment()).run(&mut world(&tape), &metrics(), STEPS);
        let mut w = world(&tape);
        let mut first = Run::new(spec.experiment());
        while !first.exp.status.is_completed() && first.reconciles < cut.min(whole.records.len()) {
            first.step(&mut w, &metrics());
        }
        // The controller dies; another one reads the experiment back from the API server.
        let json = serde_json::to_string(&first.exp).unwrap();
        first.exp = serde_json::from_str(&json).unwrap();
        let resumed = first.run(&mut w, &metrics(), STEPS);
        prop_assert_eq!(resumed.statuses(), whole.statuses());
        prop_assert_eq!(resumed.message(), whole.message());
    }
}
