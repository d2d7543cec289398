//! The driver: one reconcile step over the ports — observe, decide, act. Generic async code
//! with no I/O of its own; adapters bring the I/O, an executor (tokio, ...) runs it.

use async_trait::async_trait;

use crate::action::{Action, Event, EventType};
use crate::analytics::{self, AnalysisOutcome, AnalysisRequest, AnalyticsError};
use crate::engine::{self, Context, Decision, Step};
use crate::model::Experiment;
use crate::observation::Observations;
use crate::ports::{
    Analytics, EventRecorder, ExperimentStore, MetricSource, PortError, Randomness, TargetLocator,
    TrafficRouter,
};

/// The adapters one reconcile runs over.
pub struct Ports<'a> {
    /// Finds targets.
    pub targets: &'a dyn TargetLocator,
    /// Routes traffic.
    pub router: &'a dyn TrafficRouter,
    /// Analyses.
    pub analytics: &'a dyn Analytics,
    /// Persists status and finalizers.
    pub store: &'a dyn ExperimentStore,
    /// Records events.
    pub events: &'a dyn EventRecorder,
}

/// Why a reconcile could not complete; the caller retries with backoff.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DriverError {
    /// Targets could not be looked up.
    #[error("looking up targets: {0}")]
    Targets(PortError),
    /// Routing could not be observed.
    #[error("observing routing: {0}")]
    Routing(PortError),
    /// The status or finalizer could not be written.
    #[error("writing the experiment: {0}")]
    Store(PortError),
}

/// The built-in analytics: measures with a [`MetricSource`], decides with the core's strategies
/// (the Bayesian ones drawing from a [`Randomness`]).
pub struct BuiltinAnalytics<M> {
    source: M,
    randomness: Box<dyn Randomness>,
}

impl<M> BuiltinAnalytics<M> {
    /// Analytics over a metric source.
    pub fn new(source: M, randomness: impl Randomness + 'static) -> Self {
        BuiltinAnalytics {
            source,
            randomness: Box::new(randomness),
        }
    }
}

#[async_trait]
impl<M: MetricSource> Analytics for BuiltinAnalytics<M> {
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisOutcome, AnalyticsError> {
        let readings = self.source.measure(&request.metrics_query()).await?;
        analytics::analyze(request, &readings, &*self.randomness)
    }
}

/// Runs one reconcile of `experiment`: observes, decides, acts, writes the status and records
/// events. Returns the decision as written (after a routing failure: the failure's status).
pub async fn reconcile_once(
    experiment: &Experiment,
    ports: &Ports<'_>,
    ctx: &Context<'_>,
) -> Result<Decision, DriverError> {
    let targets = ports
        .targets
        .locate(experiment)
        .await
        .map_err(DriverError::Targets)?;
    let routing = ports
        .router
        .observe(experiment)
        .await
        .map_err(DriverError::Routing)?;
    let obs = Observations { targets, routing };
    let mut decision = match engine::reconcile(experiment, &obs, ctx) {
        Step::Decided(d) => d,
        Step::Analyze(pending) => {
            let outcome = ports.analytics.analyze(pending.request()).await;
            pending.resume(outcome)
        }
    };

    let mut remove_finalizer = false;
    let mut extra_events = Vec::new();
    for action in &decision.actions {
        match action {
            Action::AddFinalizer => ports
                .store
                .add_finalizer(experiment)
                .await
                .map_err(DriverError::Store)?,
            Action::Route(route) => {
                if let Err(e) = ports.router.apply(experiment, route).await {
                    // Report nothing of a decision whose routing did not happen.
                    decision = engine::routing_failed(experiment, &e.message, ctx);
                    break;
                }
            }
            Action::DeleteTarget(name) => {
                // A failed cleanup does not undo the experiment's outcome; it is reported.
                if let Err(e) = ports.targets.delete_target(experiment, name).await {
                    extra_events.push(Event {
                        type_: EventType::Warning,
                        reason: "CleanupFailed".to_string(),
                        message: format!("could not delete {name}: {e}"),
                    });
                }
            }
            Action::RemoveFinalizer => remove_finalizer = true,
        }
    }
    if decision.status != experiment.status {
        ports
            .store
            .write_status(experiment, &decision.status)
            .await
            .map_err(DriverError::Store)?;
    }
    // Recorders see the experiment as the decision left it (as v0.2.1 notified with the status
    // it had just set): a notifier's traffic, progress and assessment are the new ones.
    if !(decision.events.is_empty() && extra_events.is_empty()) {
        // The new status moves into the copy the recorders see, and back into the decision.
        let decided = experiment.with_status(std::mem::take(&mut decision.status));
        for event in decision.events.iter().chain(&extra_events) {
            // Events are best effort: losing one never fails a reconcile.
            let _ = ports.events.record(&decided, event).await;
        }
        decision.status = decided.status;
    }
    if remove_finalizer {
        ports
            .store
            .remove_finalizer(experiment)
            .await
            .map_err(DriverError::Store)?;
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::RoutingAction;
    use crate::engine::Context;
    use crate::measurement::{MetricError, MetricErrorKind};
    use crate::metrics_config::{EXTENDED_TELEMETRY_V2, MetricsConfig};
    use crate::model::{ConditionStatus, ConditionType, Phase, TrafficSplit};
    use crate::observation::{RoutingObservation, Targets};
    use crate::ports::{
        MockAnalytics, MockEventRecorder, MockExperimentStore, MockMetricSource, MockRandomness,
        MockTargetLocator, MockTrafficRouter,
    };
    use chrono::TimeZone;
    use mockall::predicate::*;

    fn experiment() -> Experiment {
        let text = include_str!("../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
        crate::manifest::parse_experiments(text).unwrap()[0]
            .clone()
            .unwrap()
            .experiment
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 10, 0, 0)
            .unwrap()
    }

    fn targets() -> MockTargetLocator {
        let mut t = MockTargetLocator::new();
        t.expect_locate().returning(|_| Ok(Targets::all_present()));
        t
    }

    fn events() -> MockEventRecorder {
        let mut e = MockEventRecorder::new();
        e.expect_record().returning(|_, _| Ok(()));
        e
    }

    fn first_outcome() -> Result<AnalysisOutcome, AnalyticsError> {
        Ok(AnalysisOutcome {
            candidate_traffic_percentage: 20.0,
            assessment: Default::default(),
            state: serde_json::json!({"candidate": {"traffic_percentage": 20.0}}).into(),
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// One reconcile of `exp` over these ports, its targets found, with Istio's telemetry v2
    /// metrics.
    fn reconcile_over(
        exp: &Experiment,
        router: &dyn TrafficRouter,
        analytics: &dyn Analytics,
        store: &dyn ExperimentStore,
        events: &dyn EventRecorder,
    ) -> Decision {
        let t = targets();
        let m = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
        let ports = Ports {
            targets: &t,
            router,
            analytics,
            store,
            events,
        };
        block_on(reconcile_once(exp, &ports, &Context::new(&m, now()))).unwrap()
    }

    #[test]
    fn a_routing_failure_does_not_report_a_split_that_was_not_applied() {
        let exp = experiment();
        let mut router = MockTrafficRouter::new();
        router
            .expect_observe()
            .returning(|_| Ok(RoutingObservation::default()));
        router
            .expect_apply()
            .with(always(), eq(RoutingAction::Initialize))
            .times(1)
            .returning(|_, _| Ok(()));
        router
            .expect_apply()
            .with(
                always(),
                eq(RoutingAction::SetSplit(TrafficSplit::with_candidate(20))),
            )
            .times(1)
            .returning(|_, _| {
                Err(PortError::new(
                    "virtualservices.networking.istio.io is forbidden",
                ))
            });
        let mut analytics = MockAnalytics::new();
        analytics
            .expect_analyze()
            .times(1)
            .returning(|_| first_outcome());
        let mut store = MockExperimentStore::new();
        store.expect_add_finalizer().times(1).returning(|_| Ok(()));
        store
            .expect_write_status()
            .times(1)
            .withf(|_, s| {
                s.message.as_deref()
                    == Some("RoutingRulesError: virtualservices.networking.istio.io is forbidden")
                    && s.traffic_split_percentage.is_none()
                    && s.current_iteration == 0
            })
            .returning(|_, _| Ok(()));
        let mut ev = MockEventRecorder::new();
        ev.expect_record()
            .withf(|_, e| e.type_ == EventType::Warning && e.reason == "RoutingRulesError")
            .times(1)
            .returning(|_, _| Ok(()));
        let d = reconcile_over(&exp, &router, &analytics, &store, &ev);
        assert_eq!(d.status.phase, Some(Phase::Pause));
        assert_eq!(d.requeue_after, Some(engine::RETRY_AFTER));
    }

    /// Ports that accept every write, observing default routing, analysing with `analytics`.
    fn decide_with_driver(exp: &Experiment, analytics: &dyn Analytics) -> Decision {
        let mut router = MockTrafficRouter::new();
        router
            .expect_observe()
            .returning(|_| Ok(RoutingObservation::default()));
        router.expect_apply().returning(|_, _| Ok(()));
        let mut store = MockExperimentStore::new();
        store.expect_add_finalizer().returning(|_| Ok(()));
        store.expect_write_status().returning(|_, _| Ok(()));
        reconcile_over(exp, &router, analytics, &store, &events())
    }

    #[test]
    fn the_driver_decides_as_the_engine_resumed_with_the_outcome() {
        let exp = experiment();
        let m = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
        let mut analytics = MockAnalytics::new();
        analytics
            .expect_analyze()
            .times(1)
            .returning(|_| first_outcome());
        let by_driver = decide_with_driver(&exp, &analytics);
        let ctx = Context::new(&m, now());
        let obs = Observations {
            targets: Targets::all_present(),
            routing: RoutingObservation::default(),
        };
        let Step::Analyze(pending) = engine::reconcile(&exp, &obs, &ctx) else {
            panic!("iteration 1 needs an analysis");
        };
        let by_hand = pending.resume(first_outcome());
        assert_eq!(by_driver, by_hand);
        assert_eq!(by_driver.status.current_iteration, 1);
    }

    #[test]
    fn recorders_see_the_experiment_as_the_decision_left_it() {
        // v0.2.1 notified with the status it had just set: the new traffic and iteration.
        let exp = experiment();
        let mut router = MockTrafficRouter::new();
        router
            .expect_observe()
            .returning(|_| Ok(RoutingObservation::default()));
        router.expect_apply().returning(|_, _| Ok(()));
        let mut analytics = MockAnalytics::new();
        analytics.expect_analyze().returning(|_| first_outcome());
        let mut store = MockExperimentStore::new();
        store.expect_add_finalizer().returning(|_| Ok(()));
        store.expect_write_status().returning(|_, _| Ok(()));
        let mut ev = MockEventRecorder::new();
        ev.expect_record()
            .withf(|e, _| {
                e.status.current_iteration == 1
                    && e.status.traffic_split_percentage == Some(TrafficSplit::with_candidate(20))
                    && e.status.start_timestamp == Some(now())
            })
            .times(6)
            .returning(|_, _| Ok(()));
        let d = reconcile_over(&exp, &router, &analytics, &store, &ev);
        assert_eq!(d.events.len(), 6, "{:?}", d.events);
    }

    #[test]
    fn an_invalid_experiment_is_paused_without_an_analysis() {
        let mut exp = experiment();
        exp.spec.traffic_control.interval = Some(crate::GoDuration::new("soon"));
        let mut analytics = MockAnalytics::new();
        analytics.expect_analyze().times(0);
        let d = decide_with_driver(&exp, &analytics);
        assert!(
            d.status
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("ValidationError: spec.trafficControl.interval")),
            "{:?}",
            d.status.message
        );
    }

    #[test]
    fn a_metrics_error_holds_traffic_and_sets_a_condition() {
        let exp = experiment();
        let mut router = MockTrafficRouter::new();
        router
            .expect_observe()
            .returning(|_| Ok(RoutingObservation::default()));
        // Initialising routing (baseline 100) is allowed; no split may be set.
        router
            .expect_apply()
            .withf(|_, a| !matches!(a, RoutingAction::SetSplit(_)))
            .returning(|_, _| Ok(()));
        let mut source = MockMetricSource::new();
        source.expect_measure().times(1).returning(|_| {
            Err(MetricError::new(
                MetricErrorKind::Unreachable,
                "GET http://127.0.0.1:9090/api/v1/query: connection refused",
            ))
        });
        // The measurement fails before any strategy runs, so nothing is drawn.
        let analytics = BuiltinAnalytics::new(source, MockRandomness::new());
        let mut store = MockExperimentStore::new();
        store.expect_add_finalizer().returning(|_| Ok(()));
        store
            .expect_write_status()
            .times(1)
            .withf(|_, s| {
                let c = s.condition(&ConditionType::AnalyticsServiceNormal);
                s.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("AnalyticsServiceError: metrics backend: GET"))
                    && c.is_some_and(|c| c.status == ConditionStatus::False)
                    && s.current_iteration == 0
                    && s.traffic_split_percentage == Some(TrafficSplit::ALL_BASELINE)
            })
            .returning(|_, _| Ok(()));
        reconcile_over(&exp, &router, &analytics, &store, &events());
    }

    #[test]
    fn the_finalizer_stays_until_the_rollback_is_applied() {
        let mut exp = experiment();
        exp.metadata.finalizers.push(crate::model::FINALIZER.into());
        exp.metadata.deletion_timestamp = Some(now());
        exp.status.start_timestamp = Some(now());
        exp.status.phase = Some(Phase::Progressing);
        exp.status.traffic_split_percentage = Some(TrafficSplit::with_candidate(40));
        for rollback_works in [false, true] {
            let mut router = MockTrafficRouter::new();
            router.expect_observe().returning(|_| {
                Ok(RoutingObservation {
                    split: Some(TrafficSplit::with_candidate(40)),
                    held_by: None,
                    ..Default::default()
                })
            });
            router.expect_apply().times(1).returning(move |_, a| {
                assert!(matches!(a, RoutingAction::Finalize { split, .. } if *split == TrafficSplit::ALL_BASELINE));
                if rollback_works { Ok(()) } else { Err(PortError::new("apiserver unavailable")) }
            });
            let analytics = MockAnalytics::new();
            let mut store = MockExperimentStore::new();
            store.expect_write_status().returning(|_, _| Ok(()));
            store
                .expect_remove_finalizer()
                .times(usize::from(rollback_works))
                .returning(|_| Ok(()));
            reconcile_over(&exp, &router, &analytics, &store, &events());
        }
    }

    #[test]
    fn a_failing_lookup_is_an_error_to_retry() {
        let exp = experiment();
        let mut t = MockTargetLocator::new();
        t.expect_locate()
            .returning(|_| Err(PortError::new("deployments.apps is forbidden")));
        let (router, analytics, store, e) = (
            MockTrafficRouter::new(),
            MockAnalytics::new(),
            MockExperimentStore::new(),
            MockEventRecorder::new(),
        );
        let m = MetricsConfig::default();
        let ports = Ports {
            targets: &t,
            router: &router,
            analytics: &analytics,
            store: &store,
            events: &e,
        };
        let err = block_on(reconcile_once(&exp, &ports, &Context::new(&m, now()))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "looking up targets: deployments.apps is forbidden"
        );
    }
}
