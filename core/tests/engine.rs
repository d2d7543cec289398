//! The traffic state machine: every row of the behaviour guide's §2 message table and the life
//! of an experiment (§3), through the pure `reconcile`.

mod support;

use chrono::{DateTime, Utc};
use iter8_core::action::{Action, EventType, RoutingAction, Winner};
use iter8_core::analytics::AnalysisRequest;
use iter8_core::engine::{self, Context, Step};
use iter8_core::observation::{Observations, RoutingObservation, Targets};
use iter8_core::ports::DashboardLink;
use iter8_core::{
    ConditionStatus, ConditionType, Experiment, MetricReadings, Phase, TrafficSplit, UserAction,
};
use iter8_rand::ChaCha;
use support::*;

fn slow(_: usize, req: &AnalysisRequest) -> Option<Vec<MetricReadings>> {
    let n = req.window.interval_secs() as f64;
    Some(
        req.criteria
            .iter()
            .map(|c| readings(&c.metric.name, v(5.0, n), v(5000.0, n / 4.0)))
            .collect(),
    )
}

fn decide(exp: &Experiment, obs: &Observations, now: DateTime<Utc>) -> engine::Decision {
    let m = metrics();
    match engine::reconcile(exp, obs, &Context::new(&m, now)) {
        Step::Decided(d) => d,
        Step::Analyze(_) => panic!("unexpected analysis"),
    }
}

fn obs(targets: Targets) -> Observations {
    Observations {
        targets,
        ..Default::default()
    }
}

fn message(d: &engine::Decision) -> &str {
    d.status.message.as_deref().unwrap_or("")
}

#[test]
fn missing_targets_pause_with_the_seeds_message() {
    let exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    for (targets, expected) in [
        (
            Targets {
                candidate: false,
                ..Targets::all_present()
            },
            "TargetsNotFound: Missing Candidate",
        ),
        (
            Targets {
                baseline: false,
                ..Targets::all_present()
            },
            "TargetsNotFound: Missing Baseline",
        ),
        (
            Targets {
                service: false,
                ..Targets::all_present()
            },
            "TargetsNotFound: Missing Service",
        ),
    ] {
        let only_candidate_missing = targets.service && targets.baseline;
        let d = decide(&exp, &obs(targets), t0());
        assert_eq!(message(&d), expected);
        assert_eq!(d.status.phase, Some(Phase::Pause));
        assert_eq!(d.status.split(), TrafficSplit::ALL_BASELINE);
        if only_candidate_missing {
            // v0.2.1's initializing rules: all traffic to the baseline while it waits.
            assert_eq!(
                d.actions,
                [
                    Action::AddFinalizer,
                    Action::Route(RoutingAction::Initialize)
                ]
            );
        } else {
            assert_eq!(
                d.actions,
                [Action::AddFinalizer],
                "no routing before the Service and the baseline exist"
            );
        }
        assert_eq!(
            d.requeue_after, None,
            "waits for a watch event, not a timer"
        );
        let c = d.status.condition(&ConditionType::TargetsProvided).unwrap();
        assert_eq!(c.status, ConditionStatus::False);
    }
}

struct Link;
impl DashboardLink for Link {
    fn url(
        &self,
        e: &Experiment,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    ) -> Option<String> {
        Some(format!(
            "{}:{}:{:?}",
            e.name(),
            from.timestamp(),
            to.map(|t| t.timestamp())
        ))
    }
}

#[test]
fn the_engine_asks_for_the_request_its_plan_makes() {
    for file in [
        "canary_reviews-v2_to_reviews-v3.yaml",
        "canary_reviews-v3_to_reviews-v6.yaml",
        "canary_productpage-v1_to_productpage-v2.yaml",
        "service-kind/canary_productpage-v1_to_productpage-v2.yaml",
    ] {
        let mut exp = tutorial(file);
        exp.spec.analysis.reward = Some(iter8_core::Reward {
            metric_name: "iter8_error_rate".into(),
            min_max: None,
        });
        let m = metrics();
        let ctx = Context::new(&m, t0());
        let Step::Analyze(pending) = engine::reconcile(&exp, &obs(Targets::all_present()), &ctx)
        else {
            panic!("{file}: iteration 1 needs an analysis")
        };
        let asked = pending.request();
        let plan = iter8_core::validation::plan(&exp, &m).unwrap();
        let window = iter8_core::measurement::Window {
            start: t0(),
            end: t0(),
        };
        assert_eq!(*asked, AnalysisRequest::new(&plan, window, None), "{file}");
        assert_eq!(
            asked.analytics_service,
            exp.spec.analytics_service(),
            "{file}"
        );
        assert!(
            asked.reward.is_some() && !asked.criteria.is_empty(),
            "{file}"
        );
    }
}

#[test]
fn the_candidate_appearing_starts_iteration_one_at_once() {
    let mut exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    let m = metrics();
    let mut ctx = Context::new(&m, t0());
    ctx.dashboard = &Link;
    let o = obs(Targets::all_present());
    let Step::Analyze(pending) = engine::reconcile(&exp, &o, &ctx) else {
        panic!("iteration 1 needs an analysis")
    };
    let req = pending.request();
    assert_eq!(req.window.start, t0());
    assert_eq!(req.last_state, None);
    let outcome = iter8_core::analytics::analyze(req, &good(0, req).unwrap(), &ChaCha);
    let d = pending.resume(outcome);
    assert_eq!(message(&d), "IterationUpdate: Iteration 1 Started");
    assert_eq!(d.status.phase, Some(Phase::Progressing));
    assert_eq!(
        d.status.split(),
        TrafficSplit {
            baseline: 80,
            candidate: 20
        }
    );
    assert_eq!(
        d.actions,
        [
            Action::AddFinalizer,
            Action::Route(RoutingAction::Initialize),
            Action::Route(RoutingAction::SetSplit(TrafficSplit {
                baseline: 80,
                candidate: 20
            })),
        ]
    );
    assert_eq!(d.requeue_after, Some(std::time::Duration::from_secs(30)));
    assert_eq!(d.status.current_iteration, 1);
    assert_eq!(d.status.start_timestamp, Some(t0()));
    assert_eq!(
        d.status.grafana_url.as_deref(),
        Some(format!("reviews-v3-rollout:{}:None", t0().timestamp()).as_str())
    );
    // v0.2.1's events, in its order: conditions turning true, the moved traffic, the message.
    let events: Vec<(&str, &str)> = d
        .events
        .iter()
        .map(|e| (e.reason.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("SyncMetricsSucceeded", "SyncMetricsSucceeded"),
            ("TargetsFound", "TargetsFound"),
            ("RoutingRulesReady", "RoutingRulesReady"),
            ("AnalyticsServiceRunning", "AnalyticsServiceRunning"),
            (
                "IterationSucceeded",
                "New Traffic, baseline: 80, candidate: 20"
            ),
            ("IterationUpdate", "Iteration 1 Started"),
        ]
    );
    assert!(d.events.iter().all(|e| e.type_ == EventType::Normal));
    exp.status = d.status;
    // Half an interval later nothing is due.
    let o = obs(Targets::all_present());
    let d = decide(&exp, &o, t0() + chrono::Duration::seconds(15));
    assert_eq!(d.requeue_after, Some(std::time::Duration::from_secs(15)));
    assert!(d.events.is_empty());
}

#[test]
fn part_1_rolls_forward_to_the_candidate() {
    let mut w = World::present(good);
    let run =
        Run::new(tutorial("canary_reviews-v2_to_reviews-v3.yaml")).run(&mut w, &metrics(), 50);
    assert_eq!(
        run.message(),
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    assert_eq!(run.exp.status.split(), TrafficSplit::ALL_CANDIDATE);
    assert_eq!(run.routed, Some(TrafficSplit::ALL_CANDIDATE));
    let candidate: Vec<u32> = run
        .records
        .iter()
        .map(|r| r.decision.status.split().candidate)
        .collect();
    assert_eq!(candidate, [20, 40, 60, 80, 80, 80, 80, 80, 100]);
    assert_eq!(
        run.analyses, 9,
        "maxIterations 8: one analysis per iteration plus the final one"
    );
    let last = run.records.last().unwrap();
    assert_eq!(last.now - t0(), chrono::Duration::seconds(8 * 30));
    assert_eq!(
        last.decision.actions,
        [Action::Route(RoutingAction::Finalize {
            winner: Winner::Candidate,
            split: TrafficSplit::ALL_CANDIDATE
        })]
    );
    assert_eq!(run.exp.status.end_timestamp, Some(last.now));
    let done = run
        .exp
        .status
        .condition(&ConditionType::ExperimentSucceeded)
        .unwrap();
    assert_eq!(done.status, ConditionStatus::True);
}

#[test]
fn part_2_rolls_back_when_criteria_fail() {
    let mut w = World::present(slow);
    let run =
        Run::new(tutorial("canary_reviews-v3_to_reviews-v4.yaml")).run(&mut w, &metrics(), 50);
    assert_eq!(
        run.message(),
        "ExperimentFailed: Not All Success Criteria Met"
    );
    assert_eq!(run.exp.status.split(), TrafficSplit::ALL_BASELINE);
    assert_eq!(run.routed, Some(TrafficSplit::ALL_BASELINE));
    let candidate: Vec<u32> = run
        .records
        .iter()
        .map(|r| r.decision.status.split().candidate)
        .collect();
    assert_eq!(
        candidate,
        [20, 20, 20, 20, 20, 20, 0],
        "held at the first step, then rolled back"
    );
    assert_eq!(
        run.records.last().unwrap().decision.events[0].type_,
        EventType::Warning
    );
}

#[test]
fn part_3_aborts_on_the_stop_on_failure_criterion() {
    let errors = |_: usize, req: &AnalysisRequest| {
        let n = req.window.interval_secs() as f64;
        Some(vec![
            readings("iter8_latency", v(5.0, n), v(4.0, n / 2.0)),
            readings("iter8_error_rate", v(0.0, n), v(1.0, n / 2.0)),
        ])
    };
    let mut w = World::present(errors);
    let run =
        Run::new(tutorial("canary_reviews-v3_to_reviews-v5.yaml")).run(&mut w, &metrics(), 50);
    assert_eq!(run.message(), "ExperimentFailed: Aborted");
    assert_eq!(run.exp.status.split(), TrafficSplit::ALL_BASELINE);
    assert_eq!(
        run.records.len(),
        2,
        "aborted at the second decision, not after 6 iterations"
    );
    assert!(run.exp.status.assessment.as_ref().unwrap().abort_experiment);
}

#[test]
fn fast_abort_checks_stop_criteria_between_boundaries() {
    let errors = |_: usize, req: &AnalysisRequest| {
        let n = req.window.interval_secs() as f64;
        Some(vec![
            readings("iter8_latency", v(5.0, n * 4.0), v(4.0, n)),
            readings("iter8_error_rate", v(0.0, n * 4.0), v(1.0, n)),
        ])
    };
    let mut run = Run::new(tutorial("canary_reviews-v3_to_reviews-v5.yaml"));
    run.abort_check_every = Some(std::time::Duration::from_secs(5));
    let run = run.run(&mut World::present(errors), &metrics(), 50);
    assert_eq!(run.message(), "ExperimentFailed: Aborted");
    let ended = run.records.last().unwrap().now - t0();
    assert!(
        ended <= chrono::Duration::seconds(10),
        "aborted after {ended}, not at the 30 s boundary"
    );
    assert_eq!(run.routed, Some(TrafficSplit::ALL_BASELINE));
}

#[test]
fn fast_abort_checks_change_nothing_else() {
    let healthy = |_: usize, req: &AnalysisRequest| {
        let n = req.window.interval_secs() as f64;
        Some(vec![
            readings("iter8_latency", v(5.0, n * 4.0), v(6.0, n)),
            readings("iter8_error_rate", v(0.01, n * 4.0), v(0.01, n)),
        ])
    };
    let plain = Run::new(tutorial("canary_reviews-v3_to_reviews-v5.yaml")).run(
        &mut World::present(healthy),
        &metrics(),
        100,
    );
    assert_eq!(
        plain.message(),
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    let mut fast = Run::new(tutorial("canary_reviews-v3_to_reviews-v5.yaml"));
    fast.abort_check_every = Some(std::time::Duration::from_secs(7));
    let fast = fast.run(&mut World::present(healthy), &metrics(), 100);
    assert!(
        fast.analyses > plain.analyses,
        "checks ran between boundaries"
    );
    let changes = |run: &Run| {
        let mut out: Vec<iter8_core::ExperimentStatus> = Vec::new();
        for s in run.statuses() {
            if out.last() != Some(&s) {
                out.push(s);
            }
        }
        out
    };
    assert_eq!(changes(&fast), changes(&plain));
}

#[test]
fn no_criteria_steps_without_checks_and_succeeds() {
    // As v0.2.1: a step is taken only while the result stays within the cap (20, 40, 40, ...).
    let exp = with(
        "    interval: 10s\n    trafficStepSize: 20\n    maxIterations: 4\n    maxTrafficPercentage: 50",
        "      []",
    );
    let mut w = World::present(|_, _| panic!("nothing is measured"));
    let run = Run::new(exp).run(&mut w, &metrics(), 50);
    assert_eq!(
        run.message(),
        "ExperimentSucceeded: Last Iteration Was Completed"
    );
    let candidate: Vec<u32> = run
        .records
        .iter()
        .map(|r| r.decision.status.split().candidate)
        .collect();
    assert_eq!(candidate, [20, 40, 40, 40, 100]);
}

#[test]
fn overrides_end_the_experiment_at_once() {
    let mut exp = started();
    exp.action = Some(UserAction::OverrideSuccess);
    let d = decide(
        &exp,
        &obs(Targets::all_present()),
        t0() + chrono::Duration::seconds(31),
    );
    assert_eq!(message(&d), "ExperimentSucceeded: Aborted");
    assert_eq!(d.status.split(), TrafficSplit::ALL_CANDIDATE);
    exp.action = Some(UserAction::OverrideFailure);
    let d = decide(
        &exp,
        &obs(Targets::all_present()),
        t0() + chrono::Duration::seconds(31),
    );
    assert_eq!(message(&d), "ExperimentFailed: Aborted");
    assert_eq!(d.status.split(), TrafficSplit::ALL_BASELINE);
    assert!(d.actions.contains(&Action::Route(RoutingAction::Finalize {
        winner: Winner::Baseline,
        split: TrafficSplit::ALL_BASELINE
    })));
}

#[test]
fn pause_holds_and_resume_continues() {
    let mut exp = started();
    let split = exp.status.split();
    exp.action = Some(UserAction::Pause);
    let d = decide(
        &exp,
        &obs(Targets::all_present()),
        t0() + chrono::Duration::seconds(90),
    );
    assert_eq!(message(&d), "Pause");
    assert_eq!(d.status.phase, Some(Phase::Pause));
    assert_eq!(d.status.split(), split);
    assert!(d.actions.is_empty());
    assert_eq!(d.requeue_after, None);
    exp.status = d.status;
    exp.action = Some(UserAction::Resume);
    // The interval has long passed: the next iteration starts right away.
    let m = metrics();
    let ctx = Context::new(&m, t0() + chrono::Duration::seconds(120));
    let step = engine::reconcile(&exp, &obs(Targets::all_present()), &ctx);
    assert!(matches!(step, Step::Analyze(_)), "no stall after resume");
}

#[test]
fn a_metrics_error_holds_traffic_and_says_why() {
    let exp = started();
    let m = metrics();
    let ctx = Context::new(&m, t0() + chrono::Duration::seconds(60));
    let Step::Analyze(pending) = engine::reconcile(&exp, &obs(Targets::all_present()), &ctx) else {
        panic!("the iteration is due")
    };
    let d = pending.resume(Err(iter8_core::analytics::AnalyticsError::Metrics(
        iter8_core::MetricError::new(
            iter8_core::MetricErrorKind::Unreachable,
            "prometheus: connection refused",
        ),
    )));
    assert_eq!(
        message(&d),
        "AnalyticsServiceError: metrics backend: prometheus: connection refused"
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
    assert_eq!(d.status.split(), exp.status.split());
    assert_eq!(d.status.current_iteration, exp.status.current_iteration);
    assert!(d.actions.iter().all(|a| !matches!(a, Action::Route(_))));
    assert_eq!(d.requeue_after, Some(engine::RETRY_AFTER));
    let c = d
        .status
        .condition(&ConditionType::AnalyticsServiceNormal)
        .unwrap();
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(d.events[0].type_, EventType::Warning);
}

#[test]
fn an_unreadable_metrics_configuration_pauses() {
    let exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    let m = metrics();
    let mut ctx = Context::new(&m, t0());
    ctx.metrics_error = Some("configmap iter8config-metrics not found".into());
    let Step::Decided(d) = engine::reconcile(&exp, &obs(Targets::all_present()), &ctx) else {
        panic!()
    };
    assert_eq!(
        message(&d),
        "SyncMetricsError: Fail to read metrics: configmap iter8config-metrics not found"
    );
}

#[test]
fn an_invalid_spec_pauses_naming_the_field() {
    let mut exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    exp.spec.traffic_control.traffic_step_size = Some(0.0);
    let d = decide(&exp, &obs(Targets::all_present()), t0());
    assert_eq!(
        message(&d),
        "ValidationError: spec.trafficControl.trafficStepSize: must be more than 0 and at most 100, not 0"
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
}

#[test]
fn foreign_routing_rules_and_claimed_targets_pause() {
    let exp = tutorial("canary_reviews-v3_to_reviews-v4.yaml");
    let o = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: None,
            held_by: Some("reviews-v3-rollout.bookinfo-iter8".into()),
            ..Default::default()
        },
    };
    let d = decide(&exp, &o, t0());
    assert_eq!(
        message(&d),
        "RoutingRulesError: routing rules of reviews are held by experiment reviews-v3-rollout.bookinfo-iter8"
    );
    let o = obs(Targets {
        claimed_by: Some("reviews-v3-rollout.bookinfo-iter8".into()),
        ..Targets::all_present()
    });
    let d = decide(&exp, &o, t0());
    assert_eq!(
        message(&d),
        // The experiment is in namespace `default` here.
        "TargetsNotFound: Service reviews.default is being involved in other experiment"
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
}

#[test]
fn deleting_a_running_experiment_rolls_back_first() {
    let mut exp = started();
    exp.metadata.deletion_timestamp = Some(t0());
    let routed = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(exp.status.split()),
            held_by: None,
            ..Default::default()
        },
    };
    let d = decide(&exp, &routed, t0());
    assert_eq!(
        d.actions,
        [
            Action::Route(RoutingAction::Finalize {
                winner: Winner::Baseline,
                split: TrafficSplit::ALL_BASELINE
            }),
            Action::RemoveFinalizer
        ]
    );
}

#[test]
fn deleting_a_completed_experiment_leaves_routing() {
    let mut w = World::present(good);
    let mut exp = Run::new(tutorial("canary_reviews-v2_to_reviews-v3.yaml"))
        .run(&mut w, &metrics(), 50)
        .exp;
    exp.metadata.deletion_timestamp = Some(t0());
    let d = decide(&exp, &obs(Targets::all_present()), t0());
    assert_eq!(d.actions, [Action::RemoveFinalizer]);
}

#[test]
fn a_target_deleted_mid_run_ends_the_experiment() {
    let exp = started();
    let d = decide(
        &exp,
        &obs(Targets {
            baseline: false,
            ..Targets::all_present()
        }),
        t0(),
    );
    assert_eq!(message(&d), "ExperimentSucceeded: Aborted");
    assert_eq!(
        d.status.split(),
        TrafficSplit::ALL_CANDIDATE,
        "finish on the candidate"
    );
    let d = decide(
        &exp,
        &obs(Targets {
            candidate: false,
            ..Targets::all_present()
        }),
        t0(),
    );
    assert_eq!(message(&d), "ExperimentFailed: Aborted");
    assert_eq!(d.status.split(), TrafficSplit::ALL_BASELINE);
    let c = d.status.condition(&ConditionType::TargetsProvided).unwrap();
    assert_eq!(c.message, "Candidate Deleted");
}

#[test]
fn hand_edited_weights_are_put_back() {
    let exp = started();
    let o = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(TrafficSplit::with_candidate(90)),
            held_by: None,
            ..Default::default()
        },
    };
    let d = decide(
        &exp,
        &o,
        exp.status.last_increment_time.unwrap() + chrono::Duration::seconds(5),
    );
    assert_eq!(
        d.actions,
        [Action::Route(RoutingAction::SetSplit(exp.status.split()))]
    );
}

#[test]
fn completed_routing_is_reasserted_until_observed() {
    let mut w = World::present(slow);
    let exp = Run::new(tutorial("canary_reviews-v3_to_reviews-v4.yaml"))
        .run(&mut w, &metrics(), 50)
        .exp;
    let drifted = Observations {
        targets: Targets::all_present(),
        routing: RoutingObservation {
            split: Some(TrafficSplit::with_candidate(20)),
            held_by: None,
            ..Default::default()
        },
    };
    let d = decide(&exp, &drifted, t0());
    assert_eq!(
        d.actions,
        [Action::Route(RoutingAction::Finalize {
            winner: Winner::Baseline,
            split: TrafficSplit::ALL_BASELINE
        })]
    );
    let settled = Observations {
        routing: RoutingObservation {
            split: Some(TrafficSplit::ALL_BASELINE),
            held_by: None,
            ..Default::default()
        },
        ..drifted.clone()
    };
    assert!(decide(&exp, &settled, t0()).actions.is_empty());
    // Rules now held by a later experiment on the same service are left alone.
    let taken = Observations {
        routing: RoutingObservation {
            split: Some(TrafficSplit::with_candidate(20)),
            held_by: Some("other.ns".into()),
            ..Default::default()
        },
        ..drifted
    };
    assert!(decide(&exp, &taken, t0()).actions.is_empty());
}

#[test]
fn on_success_and_cleanup_choose_the_final_routing() {
    for (on_success, expected, deleted) in [
        ("baseline", TrafficSplit::ALL_BASELINE, Some("svc-v2")),
        (
            "both",
            TrafficSplit {
                baseline: 20,
                candidate: 80,
            },
            None,
        ),
        ("candidate", TrafficSplit::ALL_CANDIDATE, Some("svc-v1")),
    ] {
        let mut exp = with(
            &format!(
                "    interval: 10s\n    trafficStepSize: 40\n    maxIterations: 3\n    maxTrafficPercentage: 80\n    onSuccess: {on_success}"
            ),
            "      - metricName: iter8_latency\n        toleranceType: threshold\n        tolerance: 200\n        sampleSize: 1",
        );
        exp.spec.cleanup = Some(iter8_core::Cleanup::Delete);
        let mut w = World::present(good);
        let run = Run::new(exp).run(&mut w, &metrics(), 50);
        assert_eq!(
            run.message(),
            "ExperimentSucceeded: All Success Criteria Were Met"
        );
        assert_eq!(run.exp.status.split(), expected, "{on_success}");
        let actions = &run.records.last().unwrap().decision.actions;
        assert_eq!(
            actions.iter().find_map(|a| match a {
                Action::DeleteTarget(n) => Some(n.as_str()),
                _ => None,
            }),
            deleted,
            "{on_success}"
        );
    }
}

#[test]
fn condition_transition_times_move_only_on_change() {
    let mut w = World::present(good);
    let run =
        Run::new(tutorial("canary_reviews-v2_to_reviews-v3.yaml")).run(&mut w, &metrics(), 50);
    let first = run.records[0]
        .decision
        .status
        .condition(&ConditionType::TargetsProvided)
        .unwrap()
        .clone();
    let last = run
        .exp
        .status
        .condition(&ConditionType::TargetsProvided)
        .unwrap();
    assert_eq!(first.last_transition_time, last.last_transition_time);
    assert_eq!(last.last_transition_time, Some(t0()));
}

#[test]
fn a_routing_failure_reports_no_split_that_was_not_applied() {
    let exp = started();
    let m = metrics();
    let d = engine::routing_failed(
        &exp,
        "virtualservices is forbidden",
        &Context::new(&m, t0()),
    );
    assert_eq!(
        message(&d),
        "RoutingRulesError: virtualservices is forbidden"
    );
    assert_eq!(d.status.split(), exp.status.split());
    assert_eq!(d.status.current_iteration, exp.status.current_iteration);
    assert_eq!(d.status.phase, Some(Phase::Pause));
}

/// The decision on `recommended` (with `all_met`) at the next boundary of a started experiment.
fn decide_on(
    exp: &Experiment,
    recommended: f64,
    all_met: bool,
) -> (engine::Decision, AnalysisRequest) {
    let m = metrics();
    let now = exp.status.last_increment_time.unwrap() + chrono::Duration::seconds(30);
    let ctx = Context::new(&m, now);
    let Step::Analyze(pending) = engine::reconcile(exp, &obs(Targets::all_present()), &ctx) else {
        panic!("due")
    };
    let request = pending.request().clone();
    let outcome = iter8_core::analytics::AnalysisOutcome {
        candidate_traffic_percentage: recommended,
        assessment: iter8_core::Assessment {
            all_success_criteria_met: all_met,
            ..Default::default()
        },
        state: serde_json::json!({}).into(),
    };
    (pending.resume(Ok(outcome)), request)
}

#[test]
fn every_strategy_moves_traffic_only_when_all_criteria_are_met() {
    for strategy in [
        iter8_core::Strategy::CheckAndIncrement,
        iter8_core::Strategy::EpsilonGreedy,
        iter8_core::Strategy::PosteriorBayesianRouting,
        iter8_core::Strategy::OptimisticBayesianRouting,
    ] {
        let mut exp = started();
        exp.spec.traffic_control.strategy = Some(strategy.clone());
        let held = exp.status.split();
        let (d, _) = decide_on(&exp, 7.9, false);
        assert_eq!(
            d.status.split(),
            held,
            "{strategy}: held while criteria fail"
        );
        assert!(d.actions.iter().all(|a| !matches!(a, Action::Route(_))));
        let (d, _) = decide_on(&exp, 7.9, true);
        assert_eq!(
            d.status.split(),
            TrafficSplit::with_candidate(7),
            "{strategy}: applied (truncated) once all are met"
        );
    }
}

#[test]
fn a_recommendation_above_the_cap_is_ignored_not_clamped() {
    let exp = started();
    let max = exp.spec.traffic_control.max_traffic_percentage.unwrap();
    let held = exp.status.split();
    let (d, _) = decide_on(&exp, max + 0.5, true);
    assert_eq!(d.status.split(), held);
    assert_eq!(d.status.current_iteration, exp.status.current_iteration + 1);
    let (d, _) = decide_on(&exp, max, true);
    assert_eq!(d.status.split(), TrafficSplit::with_candidate(max as u32));
}

#[test]
fn the_draws_are_seeded_per_experiment() {
    let mut exp = started();
    exp.spec.traffic_control.strategy = Some(iter8_core::Strategy::PosteriorBayesianRouting);
    let (_, req) = decide_on(&exp, 0.0, true);
    // FNV-1a of `namespace/name`: what every version of the controller draws with.
    let fnv1a = format!("{}/{}", exp.namespace(), exp.name())
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    assert_eq!(req.seed, fnv1a);
    let mut other = exp.clone();
    other.metadata.name = Some("another".into());
    let (_, req2) = decide_on(&other, 0.0, true);
    assert_ne!(req.seed, req2.seed);
}

#[test]
fn the_reward_metric_is_measured_for_bayesian_strategies_only() {
    let mut exp = tutorial("canary_reviews-v2_to_reviews-v3.yaml");
    exp.spec.analysis.reward = Some(iter8_core::Reward {
        metric_name: "iter8_error_rate".into(),
        min_max: None,
    });
    for (strategy, metrics_measured) in [
        (iter8_core::Strategy::CheckAndIncrement, 1),
        (iter8_core::Strategy::OptimisticBayesianRouting, 2),
    ] {
        exp.spec.traffic_control.strategy = Some(strategy);
        let p = iter8_core::validation::plan(&exp, &metrics()).unwrap();
        let w = iter8_core::measurement::Window {
            start: t0(),
            end: t0(),
        };
        let q = AnalysisRequest::new(&p, w, None).metrics_query();
        assert_eq!(q.metrics.len(), metrics_measured);
    }
}

#[test]
fn increment_without_check_ends_with_the_last_iteration_even_with_criteria() {
    // As v0.2.1: the strategy checks nothing, so its ending says only that the last iteration
    // was completed.
    let exp = with(
        "    strategy: increment_without_check\n    interval: 10s\n    trafficStepSize: 20\n    maxIterations: 3\n    maxTrafficPercentage: 50",
        "      - metricName: iter8_latency\n        toleranceType: threshold\n        tolerance: 200",
    );
    let mut w = World::present(|_, _| panic!("nothing is measured"));
    let run = Run::new(exp).run(&mut w, &metrics(), 50);
    assert_eq!(
        run.message(),
        "ExperimentSucceeded: Last Iteration Was Completed"
    );
    let candidate: Vec<u32> = run
        .records
        .iter()
        .map(|r| r.decision.status.split().candidate)
        .collect();
    assert_eq!(candidate, [20, 40, 40, 100]);
}

#[test]
fn an_interval_past_the_calendar_pauses_and_never_panics() {
    let exp = with(
        "    interval: 99999999999h",
        "      - metricName: iter8_latency\n        toleranceType: threshold\n        tolerance: 200",
    );
    let d = decide(&exp, &obs(Targets::all_present()), t0());
    assert_eq!(
        message(&d),
        "ValidationError: spec.trafficControl.interval: must be from 1s to 24h, not 99999999999h"
    );
    assert_eq!(d.status.phase, Some(Phase::Pause));
    assert!(d.actions.iter().all(|a| !matches!(a, Action::Route(_))));
}

#[test]
fn timestamps_at_the_ends_of_the_calendar_never_panic() {
    // A status written by someone else may hold any time; the engine only subtracts times.
    let mut exp = started();
    let m = metrics();
    for (last, now) in [
        (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC),
        (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
    ] {
        exp.status.last_increment_time = Some(last);
        let ctx = Context::new(&m, now);
        match engine::reconcile(&exp, &obs(Targets::all_present()), &ctx) {
            Step::Decided(d) => assert!(d.requeue_after.is_some()),
            Step::Analyze(pending) => {
                let req = pending.request().clone();
                let _ = pending.resume(iter8_core::analytics::analyze(
                    &req,
                    &good(0, &req).unwrap(),
                    &ChaCha,
                ));
            }
        }
    }
}
