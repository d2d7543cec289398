//! iter8 v0.2.1's initializing rules and events (its controller's `detectTargets`,
//! `progressExperiment` and recorder), and routing objects put back when they go missing.

mod support;

use iter8_core::action::{Action, EventType, RoutingAction};
use iter8_core::analytics::AnalysisOutcome;
use iter8_core::engine::{self, Context, Decision, Step};
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::{
    Assessment, CriterionAssessment, Experiment, Reading, TrafficSplit, model::Phase,
};
use proptest::prelude::*;
use support::*;

const DR: &str = "DestinationRule default/reviews.default.svc.cluster.local.iter8-experiment";

fn decide(exp: &Experiment, obs: &Observations, now: chrono::DateTime<chrono::Utc>) -> Decision {
    let m = metrics();
    match engine::reconcile(exp, obs, &Context::new(&m, now)) {
        Step::Decided(d) => d,
        Step::Analyze(_) => panic!("unexpected analysis"),
    }
}

fn waiting_for_candidate(routing: RoutingObservation) -> Observations {
    Observations {
        targets: Targets {
            candidate: false,
            ..Targets::all_present()
        },
        routing,
    }
}

fn routes(d: &Decision) -> Vec<RoutingAction> {
    d.actions
        .iter()
        .filter_map(|a| match a {
            Action::Route(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn events(d: &Decision) -> Vec<(EventType, &str, &str)> {
    d.events
        .iter()
        .map(|e| (e.type_, e.reason.as_str(), e.message.as_str()))
        .collect()
}

#[test]
fn initializing_rules_route_all_traffic_to_the_baseline_while_the_candidate_is_missing() {
    let exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    let d = decide(&exp, &waiting_for_candidate(Default::default()), t0());
    assert_eq!(
        d.status.message.as_deref(),
        Some("TargetsNotFound: Missing Candidate")
    );
    assert_eq!(routes(&d), [RoutingAction::Initialize]);
    assert_eq!(d.status.split(), TrafficSplit::ALL_BASELINE);
    assert_eq!(
        d.status.start_timestamp, None,
        "not started before the candidate"
    );

    // In place: nothing to do until the candidate comes.
    let in_place = RoutingObservation {
        split: Some(TrafficSplit::ALL_BASELINE),
        ..Default::default()
    };
    let d = decide(&exp, &waiting_for_candidate(in_place.clone()), t0());
    assert_eq!(routes(&d), []);

    // Half of them gone (the DestinationRule): initialised again.
    let half = RoutingObservation {
        missing: vec![DR.to_string()],
        ..in_place
    };
    let d = decide(&exp, &waiting_for_candidate(half), t0());
    assert_eq!(routes(&d), [RoutingAction::Initialize]);
}

#[test]
fn no_initializing_rules_without_the_baseline_or_on_someone_elses_host() {
    let exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    let no_baseline = Observations {
        targets: Targets {
            baseline: false,
            candidate: false,
            ..Targets::all_present()
        },
        ..Default::default()
    };
    assert_eq!(routes(&decide(&exp, &no_baseline, t0())), []);
    let claimed = Observations {
        targets: Targets {
            candidate: false,
            claimed_by: Some("other.default".into()),
            ..Targets::all_present()
        },
        ..Default::default()
    };
    assert_eq!(routes(&decide(&exp, &claimed, t0())), []);
    let held = waiting_for_candidate(RoutingObservation {
        held_by: Some("other.default".into()),
        ..Default::default()
    });
    assert_eq!(routes(&decide(&exp, &held, t0())), []);
}

#[test]
fn a_missing_routing_object_of_a_running_experiment_is_put_back() {
    let exp = started();
    let split = exp.status.split();
    let o = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(split),
            missing: vec![DR.to_string()],
            ..Default::default()
        },
    };
    let between = exp.status.last_increment_time.unwrap() + chrono::Duration::seconds(5);
    let d = decide(&exp, &o, between);
    assert_eq!(routes(&d), [RoutingAction::SetSplit(split)]);
    assert_eq!(
        events(&d),
        [(
            EventType::Warning,
            "RoutingRulesRepaired",
            format!("{DR} missing: put back with baseline 60, candidate 40").as_str()
        )]
    );
    assert_eq!(
        d.status.message, exp.status.message,
        "the run goes on as it was"
    );

    // Held by another experiment: not ours to put back.
    let held = Observations {
        routing: RoutingObservation {
            held_by: Some("other.default".into()),
            missing: vec![DR.to_string()],
            ..Default::default()
        },
        ..o.clone()
    };
    let d = decide(&exp, &held, between);
    assert_eq!(routes(&d), []);
    assert_eq!(d.status.phase, Some(Phase::Pause));
}

#[test]
fn a_completed_experiments_rules_are_not_put_back() {
    let mut exp = started();
    exp.action = Some(iter8_core::UserAction::OverrideSuccess);
    let d = decide(
        &exp,
        &Observations {
            targets: Targets::all_present(),
            ..Default::default()
        },
        t0(),
    );
    exp.status = d.status;
    exp.action = None;
    assert!(exp.status.is_completed());
    let gone = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            missing: vec![DR.to_string()],
            ..Default::default()
        },
    };
    // `cleanup: delete` deletes the rules at the end: nothing to repair.
    assert_eq!(routes(&decide(&exp, &gone, t0())), []);
}

/// The decision at the next boundary of `exp` on an analysis recommending `recommended` with
/// `assessment`.
fn at_boundary(exp: &Experiment, recommended: f64, assessment: Assessment) -> Decision {
    let m = metrics();
    let now = exp.status.last_increment_time.unwrap() + chrono::Duration::seconds(30);
    let ctx = Context::new(&m, now);
    let o = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(exp.status.split()),
            ..Default::default()
        },
    };
    let Step::Analyze(pending) = engine::reconcile(exp, &o, &ctx) else {
        panic!("the iteration is due")
    };
    pending.resume(Ok(AnalysisOutcome {
        candidate_traffic_percentage: recommended,
        assessment,
        state: serde_json::json!({}).into(),
    }))
}

#[test]
fn an_iteration_that_moves_traffic_records_iteration_succeeded_with_v021s_text() {
    let exp = started();
    let met = Assessment {
        all_success_criteria_met: true,
        ..Default::default()
    };
    assert_eq!(exp.status.split(), TrafficSplit::with_candidate(40));
    let d = at_boundary(&exp, 60.0, met.clone());
    assert_eq!(
        events(&d),
        [
            (
                EventType::Normal,
                "IterationSucceeded",
                "New Traffic, baseline: 40, candidate: 60"
            ),
            (EventType::Normal, "IterationUpdate", "Iteration 3 Started"),
        ]
    );
    // Criteria met but the same share recommended: no traffic moved, no IterationSucceeded.
    let d = at_boundary(&exp, 40.0, met);
    assert_eq!(
        events(&d),
        [(EventType::Normal, "IterationUpdate", "Iteration 3 Started")]
    );
}

#[test]
fn a_failed_iteration_records_iteration_failed_with_the_numbers() {
    let exp = started();
    let unmet = Assessment {
        all_success_criteria_met: false,
        success_criteria: vec![
            CriterionAssessment {
                metric_name: "iter8_mean_latency".into(),
                success_criterion_met: false,
                tolerance_type: Some("threshold".into()),
                tolerance: Some(200.0),
                sample_size: Some(10),
                candidate: Some(Reading {
                    value: Some(312.5),
                    sample_size: 48.0,
                }),
                ..Default::default()
            },
            CriterionAssessment {
                metric_name: "iter8_error_rate".into(),
                success_criterion_met: true,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let d = at_boundary(&exp, 60.0, unmet);
    assert_eq!(routes(&d), [], "traffic holds");
    assert_eq!(
        events(&d),
        [
            (
                EventType::Normal,
                "IterationFailed",
                "iter8_mean_latency: candidate 312.5 over 48 requests against threshold 200 \
                 (sample size 10)"
            ),
            (EventType::Normal, "IterationUpdate", "Iteration 3 Started"),
        ]
    );
}

#[test]
fn a_condition_event_comes_once_per_turn_to_true() {
    let exp = started();
    // A failed analysis turns AnalyticsServiceNormal false; the next good one turns it true.
    let m = metrics();
    let now = exp.status.last_increment_time.unwrap() + chrono::Duration::seconds(30);
    let ctx = Context::new(&m, now);
    let o = Observations {
        targets: Targets::all_present(),
        ..Default::default()
    };
    let Step::Analyze(pending) = engine::reconcile(&exp, &o, &ctx) else {
        panic!("due")
    };
    let failed = pending.resume(Err(iter8_core::analytics::AnalyticsError::Metrics(
        iter8_core::MetricError::new(iter8_core::MetricErrorKind::Unreachable, "refused"),
    )));
    assert!(
        !failed
            .events
            .iter()
            .any(|e| e.reason == "AnalyticsServiceRunning")
    );
    let mut paused = exp.clone();
    paused.status = failed.status;
    let d = at_boundary(
        &paused,
        40.0,
        Assessment {
            all_success_criteria_met: true,
            ..Default::default()
        },
    );
    let reasons: Vec<&str> = d.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["AnalyticsServiceRunning", "IterationUpdate"]);
}

proptest! {
    /// Before the start, routing is asked for only as v0.2.1's initializing rules, and only when
    /// the Service and the baseline exist, the candidate does not, nobody else has them, and
    /// they are not already in place.
    #[test]
    fn before_the_start_only_initializing_rules_are_routed(
        service: bool,
        baseline: bool,
        candidate: bool,
        claimed: bool,
        held: bool,
        observed in proptest::option::of(0u32..=100),
        missing: bool,
    ) {
        let exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
        let o = Observations {
            targets: Targets {
                service,
                baseline,
                candidate,
                claimed_by: claimed.then(|| "other.default".to_string()),
                claimed_target: None,
            },
            routing: RoutingObservation {
                split: observed.map(TrafficSplit::with_candidate),
                held_by: held.then(|| "other.default".to_string()),
                missing: if missing { vec![DR.to_string()] } else { vec![] },
            },
        };
        let m = metrics();
        let d = match engine::reconcile(&exp, &o, &Context::new(&m, t0())) {
            Step::Decided(d) => d,
            Step::Analyze(p) => p.resume(Err(iter8_core::analytics::AnalyticsError::Metrics(
                iter8_core::MetricError::new(iter8_core::MetricErrorKind::Unreachable, "x"),
            ))),
        };
        let waiting = !(service && baseline && candidate) || claimed || held;
        if waiting {
            let wanted = service
                && baseline
                && !candidate
                && !claimed
                && !held
                && (observed != Some(0) || missing);
            let expected: Vec<RoutingAction> =
                if wanted { vec![RoutingAction::Initialize] } else { vec![] };
            prop_assert_eq!(routes(&d), expected);
        } else {
            prop_assert_eq!(routes(&d).first().copied(), Some(RoutingAction::Initialize));
        }
    }
}
