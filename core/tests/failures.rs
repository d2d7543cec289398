//! Failure handling in the pure engine: the failure budget (failed attempts in a row end the
//! experiment with a rollback), a paused experiment reacting to deleted targets, and rollbacks
//! retried until routing shows them.

mod support;

use chrono::{DateTime, Duration, Utc};
use iter8_core::action::{Action, RoutingAction, Winner};
use iter8_core::analytics::{self, AnalyticsError};
use iter8_core::engine::{self, Context, Decision, Step};
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::{Experiment, MetricError, MetricErrorKind, Phase, TrafficSplit, UserAction};
use iter8_rand::ChaCha;
use support::*;

fn later() -> DateTime<Utc> {
    t0() + Duration::seconds(90)
}

fn observed(split: TrafficSplit) -> Observations {
    Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(split),
            held_by: None,
            ..Default::default()
        },
    }
}

fn unreachable() -> Result<analytics::AnalysisOutcome, AnalyticsError> {
    Err(AnalyticsError::Metrics(MetricError::new(
        MetricErrorKind::Unreachable,
        "prometheus: connection refused",
    )))
}

/// One reconcile of `exp` with `limit`, the due analysis failing.
fn failing_analysis(exp: &Experiment, limit: u32) -> Decision {
    let m = metrics();
    let mut ctx = Context::new(&m, later());
    ctx.failure_limit = limit;
    match engine::reconcile(exp, &observed(exp.status.split()), &ctx) {
        Step::Analyze(pending) => pending.resume(unreachable()),
        Step::Decided(d) => panic!("the iteration is due: {d:?}"),
    }
}

fn decided(exp: &Experiment, obs: &Observations) -> Decision {
    let m = metrics();
    match engine::reconcile(exp, obs, &Context::new(&m, later())) {
        Step::Decided(d) => d,
        Step::Analyze(p) => panic!("unexpected analysis: {p:?}"),
    }
}

fn rollback() -> Action {
    Action::Route(RoutingAction::Finalize {
        winner: Winner::Baseline,
        split: TrafficSplit::ALL_BASELINE,
    })
}

#[test]
fn below_the_failure_limit_traffic_holds_and_at_it_the_experiment_rolls_back() {
    let mut exp = started();
    let split = exp.status.split();
    for attempt in 1..engine::DEFAULT_FAILURE_LIMIT {
        let d = failing_analysis(&exp, engine::DEFAULT_FAILURE_LIMIT);
        assert_eq!(d.status.phase, Some(Phase::Pause), "attempt {attempt}");
        assert_eq!(d.status.consecutive_failures, attempt);
        assert_eq!(d.status.split(), split);
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        assert_eq!(d.requeue_after, Some(engine::RETRY_AFTER));
        exp.status = d.status;
    }
    let d = failing_analysis(&exp, engine::DEFAULT_FAILURE_LIMIT);
    assert_eq!(d.status.phase, Some(Phase::Completed));
    assert_eq!(
        d.status.message.as_deref(),
        Some(
            "ExperimentFailed: 4 consecutive failed attempts; the last: AnalyticsServiceError: \
             metrics backend: prometheus: connection refused"
        )
    );
    assert_eq!(d.status.split(), TrafficSplit::ALL_BASELINE);
    assert!(d.actions.contains(&rollback()), "{:?}", d.actions);
}

#[test]
fn the_failure_limit_comes_from_the_context() {
    let mut exp = started();
    let d = failing_analysis(&exp, 2);
    assert_eq!(d.status.phase, Some(Phase::Pause));
    exp.status = d.status;
    let d = failing_analysis(&exp, 2);
    assert_eq!(d.status.phase, Some(Phase::Completed));
    assert!(d.actions.contains(&rollback()));
}

#[test]
fn a_successful_analysis_resets_the_count() {
    let mut exp = started();
    for _ in 1..engine::DEFAULT_FAILURE_LIMIT {
        exp.status = failing_analysis(&exp, engine::DEFAULT_FAILURE_LIMIT).status;
    }
    let m = metrics();
    let ctx = Context::new(&m, later());
    let Step::Analyze(pending) = engine::reconcile(&exp, &observed(exp.status.split()), &ctx)
    else {
        panic!("the iteration is due")
    };
    let readings = good(0, pending.request()).unwrap();
    let outcome = analytics::analyze(pending.request(), &readings, &ChaCha);
    let d = pending.resume(outcome);
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert_eq!(d.status.consecutive_failures, 0);
    assert_eq!(d.status.current_iteration, 3);
}

#[test]
fn failed_routing_counts_and_a_failed_rollback_is_retried() {
    let mut exp = started();
    let m = metrics();
    let ctx = Context::new(&m, later());
    for attempt in 1..=engine::DEFAULT_FAILURE_LIMIT {
        let d = engine::routing_failed(&exp, "virtualservices is forbidden", &ctx);
        assert_eq!(d.status.consecutive_failures, attempt);
        assert_eq!(d.status.phase, Some(Phase::Pause));
        exp.status = d.status;
    }
    // At the limit, each reconcile tries the rollback again; a failed one leaves the count at
    // or over the limit, so the next reconcile tries again.
    for _ in 0..2 {
        let d = decided(&exp, &observed(exp.status.split()));
        assert_eq!(d.status.phase, Some(Phase::Completed));
        assert!(d.actions.contains(&rollback()), "{:?}", d.actions);
        exp.status = engine::routing_failed(&exp, "still forbidden", &ctx).status;
        assert!(exp.status.consecutive_failures > engine::DEFAULT_FAILURE_LIMIT);
        assert_eq!(exp.status.phase, Some(Phase::Pause));
    }
}

#[test]
fn a_completed_experiments_final_routing_is_retried_until_observed() {
    let mut exp = started();
    let split = exp.status.split();
    exp.action = Some(UserAction::OverrideFailure);
    let d = decided(&exp, &observed(exp.status.split()));
    assert_eq!(d.status.phase, Some(Phase::Completed));
    exp.status = d.status;
    exp.action = None;
    let m = metrics();
    let ctx = Context::new(&m, later());
    // Routing still serves the old split: the rollback is applied again and checked later.
    let d = decided(&exp, &observed(split));
    assert!(d.actions.contains(&rollback()), "{:?}", d.actions);
    assert_eq!(d.requeue_after, Some(engine::RETRY_AFTER));
    // It fails: the experiment stays completed, and says so in RoutingRulesReady.
    let failed = engine::routing_failed(&exp, "apiserver unavailable", &ctx);
    assert_eq!(failed.status.phase, Some(Phase::Completed));
    assert_eq!(failed.status.message, exp.status.message);
    assert_eq!(failed.requeue_after, Some(engine::RETRY_AFTER));
    let c = failed
        .status
        .condition(&iter8_core::ConditionType::RoutingRulesReady)
        .unwrap();
    assert_eq!(c.message, "apiserver unavailable");
    // Once routing shows the rollback, nothing more is done.
    let d = decided(&exp, &observed(TrafficSplit::ALL_BASELINE));
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.requeue_after, None);
}

#[test]
fn a_paused_experiment_still_reacts_to_a_deleted_target() {
    let mut exp = started();
    exp.action = Some(UserAction::Pause);
    let d = decided(&exp, &observed(exp.status.split()));
    assert_eq!(d.status.message.as_deref(), Some("Pause"));
    exp.status = d.status;
    let gone = Observations {
        targets: Targets {
            candidate: false,
            ..Targets::all_present()
        },
        ..observed(exp.status.split())
    };
    let d = decided(&exp, &gone);
    assert_eq!(d.status.phase, Some(Phase::Completed));
    assert_eq!(
        d.status.message.as_deref(),
        Some("ExperimentFailed: Aborted")
    );
    assert!(d.actions.contains(&rollback()), "{:?}", d.actions);
}

#[test]
fn deletion_goes_at_once_with_a_warning_when_the_rollback_is_moot() {
    let mut exp = started();
    exp.metadata.deletion_timestamp = Some(later());
    let baseline_gone = Observations {
        targets: Targets {
            baseline: false,
            ..Targets::all_present()
        },
        ..observed(exp.status.split())
    };
    let rules_gone = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation::default(),
    };
    for (obs, why) in [
        (baseline_gone, "the baseline is gone"),
        (rules_gone, "the routing rules are gone"),
    ] {
        let d = decided(&exp, &obs);
        assert_eq!(d.actions, [Action::RemoveFinalizer], "{why}");
        let warning = d
            .events
            .iter()
            .find(|e| e.reason == "RollbackSkipped")
            .unwrap_or_else(|| panic!("{why}: {:?}", d.events));
        assert_eq!(warning.type_, iter8_core::action::EventType::Warning);
        assert_eq!(
            warning.message,
            format!("no rollback to the baseline on deletion: {why}")
        );
    }
    // With both in place, the rollback comes first.
    let d = decided(&exp, &observed(exp.status.split()));
    assert_eq!(d.actions, [rollback(), Action::RemoveFinalizer]);
    assert!(d.events.iter().all(|e| e.reason != "RollbackSkipped"));
}

#[test]
fn targets_in_another_namespace_need_the_operators_permission() {
    let mut exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    exp.metadata.namespace = Some("bookinfo-iter8".into());
    exp.spec.target_service.namespace = Some("elsewhere".into());
    let m = metrics();
    let mut ctx = Context::new(&m, t0());
    let Step::Decided(d) = engine::reconcile(&exp, &observed(TrafficSplit::ALL_BASELINE), &ctx)
    else {
        panic!("an invalid experiment needs no analysis")
    };
    assert_eq!(
        d.status.message.as_deref(),
        Some(
            "ValidationError: spec.targetService.namespace: must be the experiment's own \
             namespace bookinfo-iter8, not elsewhere (the operator runs without \
             --allow-cross-namespace)"
        )
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
    ctx.allow_cross_namespace = true;
    let step = engine::reconcile(&exp, &observed(TrafficSplit::ALL_BASELINE), &ctx);
    assert!(
        matches!(step, Step::Analyze(_)),
        "allowed, it starts and asks for iteration 1's analysis: {step:?}"
    );
}

#[test]
fn a_target_service_changed_after_the_start_is_refused() {
    let mut exp = started();
    assert_eq!(
        exp.status.started_target_service.as_ref(),
        Some(&exp.spec.target_service)
    );
    let split = exp.status.split();
    exp.spec.target_service.candidate = Some("reviews-v4".into());
    let d = decided(&exp, &observed(exp.status.split()));
    assert_eq!(
        d.status.message.as_deref(),
        Some(
            "ValidationError: spec.targetService: is immutable once the experiment has started; \
             put the started one back"
        )
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
    assert_eq!(d.status.split(), split);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
}
