//! Properties of the engine for any valid spec (any strategy), any sequence of measurements and
//! any script of what happens meanwhile: user actions, deleted targets, routing rules held by
//! another experiment, deletion of the experiment.

mod support;

use iter8_core::action::{Action, RoutingAction, Winner};
use iter8_core::analytics::AnalysisRequest;
use iter8_core::observation::Targets;
use iter8_core::{
    Experiment, ExperimentStatus, Measurement, MetricError, MetricErrorKind, MetricReadings,
    Strategy as Spread, TrafficSplit, UserAction, VersionReading,
};
use proptest::prelude::*;
use support::*;

const METRICS: [(&str, &str); 4] = [
    ("iter8_latency", "threshold"),
    ("iter8_error_rate", "delta"),
    ("iter8_error_count", "threshold"),
    ("iter8_90_perc_latency", "threshold"),
];

const STRATEGIES: [&str; 5] = [
    "check_and_increment",
    "increment_without_check",
    "epsilon_greedy",
    "posterior_bayesian_routing",
    "optimistic_bayesian_routing",
];

#[derive(Debug, Clone)]
struct Spec {
    strategy: Option<&'static str>,
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
        let strategy = self
            .strategy
            .map(|s| format!("    strategy: {s}\n"))
            .unwrap_or_default();
        with(
            &format!(
                "{strategy}    interval: {}s\n    maxIterations: {}\n    trafficStepSize: {}\n    maxTrafficPercentage: {}",
                self.interval, self.max_iterations, self.step, self.max
            ),
            &criteria,
        )
    }
}

fn spec(min_criteria: usize) -> impl Strategy<Value = Spec> {
    (
        prop_oneof![2 => Just(None), 3 => proptest::sample::select(&STRATEGIES[..]).prop_map(Some)],
        1u32..120,
        1u32..12,
        prop_oneof![1u32..=100u32, Just(20u32)].prop_map(f64::from),
        prop_oneof![(1u32..=100u32).prop_map(f64::from), (1.0f64..100.0)],
        proptest::collection::vec(
            (0usize..4, 0.0f64..500.0, 0u32..40, any::<bool>()),
            min_criteria..4,
        ),
    )
        .prop_map(
            |(strategy, interval, max_iterations, step, max, criteria)| Spec {
                strategy,
                interval,
                max_iterations,
                step,
                max,
                criteria,
            },
        )
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
    scripted_world(tape, &[])
}

/// Something that happens before a reconcile.
#[derive(Debug, Clone)]
enum Happening {
    /// The user sets `action`.
    Action(UserAction),
    /// A target is deleted (for good).
    Deleted(Target),
    /// Another experiment takes (true) or releases (false) the routing rules.
    RulesHeld(bool),
    /// The experiment is deleted.
    ExperimentDeleted,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Service,
    Baseline,
    Candidate,
}

fn happening() -> impl Strategy<Value = Happening> {
    prop_oneof![
        proptest::sample::select(vec![
            UserAction::Pause,
            UserAction::Resume,
            UserAction::OverrideSuccess,
            UserAction::OverrideFailure,
        ])
        .prop_map(Happening::Action),
        proptest::sample::select(vec![Target::Service, Target::Baseline, Target::Candidate])
            .prop_map(Happening::Deleted),
        any::<bool>().prop_map(Happening::RulesHeld),
        Just(Happening::ExperimentDeleted),
    ]
}

/// What happens before each reconcile, by reconcile number: mostly nothing.
type Script = Vec<Option<Happening>>;

fn script() -> impl Strategy<Value = Script> {
    proptest::collection::vec(
        prop_oneof![6 => Just(None), 1 => happening().prop_map(Some)],
        0..40,
    )
}

/// What happened up to and including reconcile `i`.
fn so_far(script: &[Option<Happening>], i: usize) -> impl Iterator<Item = &Happening> {
    script[..(i + 1).min(script.len())].iter().flatten()
}

fn targets_at(script: &[Option<Happening>], i: usize) -> Targets {
    let mut t = Targets::all_present();
    for h in so_far(script, i) {
        match h {
            Happening::Deleted(Target::Service) => t.service = false,
            Happening::Deleted(Target::Baseline) => t.baseline = false,
            Happening::Deleted(Target::Candidate) => t.candidate = false,
            _ => {}
        }
    }
    t
}

/// Whether another experiment holds the routing rules at reconcile `i`.
fn held_at(script: &[Option<Happening>], i: usize) -> bool {
    so_far(script, i)
        .filter_map(|h| match h {
            Happening::RulesHeld(held) => Some(*held),
            _ => None,
        })
        .last()
        .unwrap_or(false)
}

/// Sets the experiment and the routing as the script has them before the next reconcile.
fn stage(run: &mut Run, script: &[Option<Happening>]) {
    let i = run.reconciles;
    for h in so_far(script, i) {
        match h {
            Happening::Action(a) => run.exp.action = Some(a.clone()),
            Happening::ExperimentDeleted => {
                let now = run.now;
                run.exp.metadata.deletion_timestamp.get_or_insert(now);
            }
            Happening::Deleted(_) | Happening::RulesHeld(_) => {}
        }
    }
    run.held_by = held_at(script, i).then(|| "other.ns".to_string());
}

/// Runs until the experiment completes or is gone, or `until` reconciles have run.
fn play(mut run: Run, world: &mut World, script: &[Option<Happening>], until: usize) -> Run {
    let m = metrics();
    while !run.exp.status.is_completed() && !run.gone && run.reconciles < until {
        stage(&mut run, script);
        run.step(world, &m);
    }
    run
}

fn scripted_world<'a>(
    tape: &'a [Vec<(VersionReading, VersionReading)>],
    script: &'a [Option<Happening>],
) -> World<'a> {
    let mut w = World::present(move |i, req: &AnalysisRequest| {
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
    });
    w.targets = Box::new(move |i| targets_at(script, i));
    w
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
        // The strategies judged by check_and_increment's rules.
        prop_assume!(matches!(exp.spec.strategy(), Spread::CheckAndIncrement | Spread::EpsilonGreedy));
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
        // increment_without_check measures nothing and succeeds by design.
        prop_assume!(spec.experiment().spec.strategy() != Spread::IncrementWithoutCheck);
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
    fn traffic_moves_only_when_allowed(spec in spec(0), tape in tape(), script in script()) {
        let exp = spec.experiment();
        let run = play(Run::new(exp.clone()), &mut scripted_world(&tape, &script), &script, STEPS);
        let mut prev: ExperimentStatus = exp.status.clone();
        for (i, r) in run.records.iter().enumerate() {
            let s = &r.decision.status;
            let routed = r.decision.actions.iter().any(|a| matches!(a, Action::Route(RoutingAction::SetSplit(_))));
            let user_paused = matches!(so_far(&script, i).filter_map(|h| match h { Happening::Action(a) => Some(a), _ => None }).last(), Some(UserAction::Pause));
            let deleted = so_far(&script, i).any(|h| matches!(h, Happening::ExperimentDeleted));
            if s.start_timestamp.is_some() {
                prop_assert_eq!(r.routed, s.split(), "decision {}: routing serves the status' split", i);
            }
            if s.is_completed() || deleted {
                prev = s.clone();
                continue;
            }
            if s.split() != prev.split() && prev.start_timestamp.is_some() {
                // Only an iteration moves traffic: on the first, or with every criterion met.
                prop_assert_eq!(s.current_iteration, prev.current_iteration + 1, "decision {}", i);
                let all_met = s.assessment.as_ref().is_some_and(|a| a.all_success_criteria_met);
                prop_assert!(prev.current_iteration == 0 || all_met, "decision {} moved traffic with criteria failing", i);
                prop_assert!(f64::from(s.split().candidate) <= spec.max, "decision {}: above the cap", i);
            }
            if user_paused || held_at(&script, i) {
                prop_assert!(!routed, "decision {} moved traffic while paused or without the rules", i);
                prop_assert_eq!(s.split(), prev.split());
            }
            prev = s.clone();
        }
    }

    #[test]
    fn every_ending_routes_all_traffic_to_the_winner(spec in spec(0), tape in tape(), script in script()) {
        let run = play(Run::new(spec.experiment()), &mut scripted_world(&tape, &script), &script, STEPS);
        let last = run.records.last().expect("at least one reconcile");
        let status = &last.decision.status;
        let finalized = last.decision.actions.iter().rev().find_map(|a| match a {
            Action::Route(RoutingAction::Finalize { winner, split }) => Some((*winner, *split)),
            _ => None,
        });
        if status.is_completed() && status.start_timestamp.is_some() {
            let message = status.message.clone().unwrap_or_default();
            let expected = if message.starts_with("ExperimentFailed") {
                (Winner::Baseline, TrafficSplit::ALL_BASELINE)
            } else {
                prop_assert!(message.starts_with("ExperimentSucceeded"), "{}", message);
                (Winner::Candidate, TrafficSplit::ALL_CANDIDATE)
            };
            prop_assert_eq!(finalized, Some(expected), "{}", message);
            prop_assert_eq!(status.split(), expected.1);
            prop_assert_eq!(run.routed, Some(expected.1));
        }
        if run.gone && status.start_timestamp.is_some() {
            // Deleted while running (a run stops at completion): rolled back to the baseline
            // before going, unless the rollback was moot (the baseline gone, or the rules held
            // by another experiment): then it goes at once with a Warning saying so.
            let i = run.records.len() - 1;
            if held_at(&script, i) || !targets_at(&script, i).baseline {
                prop_assert!(last.decision.events.iter().any(|e| e.reason == "RollbackSkipped"));
            } else {
                prop_assert_eq!(run.routed, Some(TrafficSplit::ALL_BASELINE));
            }
        }
    }

    #[test]
    fn a_restart_at_any_point_reproduces_the_run(
        spec in spec(0),
        tape in tape(),
        script in script(),
        cut in 0usize..40,
    ) {
        let whole = play(Run::new(spec.experiment()), &mut scripted_world(&tape, &script), &script, STEPS);
        let mut w = scripted_world(&tape, &script);
        let mut first = play(Run::new(spec.experiment()), &mut w, &script, cut);
        // The controller dies; another one reads the experiment back from the API server.
        let json = serde_json::to_string(&first.exp).unwrap();
        first.exp = serde_json::from_str(&json).unwrap();
        let resumed = play(first, &mut w, &script, STEPS);
        prop_assert_eq!(resumed.statuses(), whole.statuses());
        prop_assert_eq!(&resumed.records, &whole.records);
        prop_assert_eq!(resumed.message(), whole.message());
    }
}
