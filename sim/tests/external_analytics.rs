//! The simulation with an analytics port of the caller's (`Sim::set_analytics`): the port is
//! called instead of the built-in analytics, its futures run on the given `block_on`, and
//! `SharedMetrics` over the shared world measures what the built-in analytics measures.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use iter8_core::analytics::{AnalysisOutcome, AnalysisRequest, AnalyticsError};
use iter8_core::driver::BuiltinAnalytics;
use iter8_core::ports::Analytics;
use iter8_core::{ConditionStatus, ConditionType, ExperimentStatus, Phase};
use iter8_rand::ChaCha;
use iter8_sim::analytics::{ExternalAnalytics, ReconcileFuture, SharedMetrics};
use iter8_sim::tutorial::{NAMESPACE, PROFILES, manifests};
use iter8_sim::{Profile, Sim, Target};

/// Polls a future that never waits (every port here answers at once).
fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a port waited"),
    }
}

/// Built-in analytics over the shared world, counting its calls; or failing, when `fail`.
struct Counting {
    inner: BuiltinAnalytics<SharedMetrics>,
    calls: Arc<AtomicUsize>,
    fail: bool,
}

#[async_trait]
impl Analytics for Counting {
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisOutcome, AnalyticsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail {
            return Err(AnalyticsError::Service("down for the test".into()));
        }
        self.inner.analyze(request).await
    }
}

/// Bookinfo with load, then the tutorial's part 1 canary and its candidate.
fn part_1(setup: impl FnOnce(&mut Sim)) -> (Sim, Vec<ExperimentStatus>) {
    let mut sim = Sim::new(3);
    setup(&mut sim);
    let mut profile = Profile::default();
    for (file, text) in PROFILES {
        profile.merge(Profile::from_yaml(text, file).unwrap());
    }
    sim.add_profiles(&profile);
    for (file, text) in [manifests::BOOKINFO, manifests::BOOKINFO_GATEWAY] {
        sim.apply_yaml(text, NAMESPACE, file).unwrap();
    }
    let reviews = Target::Service {
        namespace: NAMESPACE.into(),
        name: "reviews".into(),
    };
    sim.add_source(reviews, profile.rate());
    sim.run_for(Duration::from_secs(60), &mut |_| {});
    for (file, text) in [manifests::CANARY_V2_V3, manifests::REVIEWS_V3] {
        sim.apply_yaml(text, NAMESPACE, file).unwrap();
    }
    let mut statuses = Vec::new();
    sim.run_for(Duration::from_secs(300), &mut |r| {
        statuses.push(r.decision.status.clone())
    });
    (sim, statuses)
}

#[test]
fn a_port_of_the_callers_is_used_and_decides_as_built_in() {
    let calls = Arc::new(AtomicUsize::new(0));
    let blocked_on = Arc::new(AtomicUsize::new(0));
    let (c, b) = (calls.clone(), blocked_on.clone());
    let (_, external) = part_1(move |sim| {
        let analytics = Counting {
            inner: BuiltinAnalytics::new(SharedMetrics(sim.shared_world()), ChaCha),
            calls: c,
            fail: false,
        };
        sim.set_analytics(ExternalAnalytics::new(
            analytics,
            move |f: ReconcileFuture<'_>| {
                b.fetch_add(1, Ordering::SeqCst);
                poll_ready(f)
            },
        ));
    });
    let (_, builtin) = part_1(|_| {});

    let last = external.last().unwrap();
    assert_eq!(
        last.message.as_deref(),
        Some("ExperimentSucceeded: All Success Criteria Were Met")
    );
    assert_eq!(external, builtin);
    // One analysis per iteration (8) and one to conclude; every reconcile through the caller's
    // block_on.
    assert_eq!(calls.load(Ordering::SeqCst), 9);
    assert_eq!(blocked_on.load(Ordering::SeqCst), external.len());
}

#[test]
fn a_failing_port_holds_traffic_then_the_failure_budget_rolls_back() {
    let (sim, statuses) = part_1(|sim| {
        let analytics = Counting {
            inner: BuiltinAnalytics::new(SharedMetrics(sim.shared_world()), ChaCha),
            calls: Arc::default(),
            fail: true,
        };
        sim.set_analytics(ExternalAnalytics::new(
            analytics,
            |f: ReconcileFuture<'_>| poll_ready(f),
        ));
    });
    // Below the failure budget, traffic holds and the condition says why.
    let held = statuses
        .iter()
        .find(|s| s.phase == Some(Phase::Pause))
        .expect("the experiment holds while the analytics fail");
    assert_eq!(
        held.message.as_deref(),
        Some("AnalyticsServiceError: analytics service: down for the test")
    );
    let c = held
        .condition(&ConditionType::AnalyticsServiceNormal)
        .unwrap();
    assert_eq!(c.status, ConditionStatus::False);
    assert_eq!(held.current_iteration, 0);
    // At the budget (4 failed attempts in a row) it rolls back and ends.
    let last = statuses.last().unwrap();
    assert_eq!(last.phase, Some(Phase::Completed));
    let message = last.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("ExperimentFailed: 4 consecutive failed attempts"),
        "{message}"
    );
    // Never analysed, so never moved off the baseline.
    let exp = sim.experiment(NAMESPACE, "reviews-v3-rollout").unwrap();
    let routed = sim.world().lock().router.observe(&exp).split;
    assert!(routed.is_none_or(|s| s.candidate == 0), "{routed:?}");
}

#[test]
fn shared_metrics_tell_virtual_time() {
    let mut sim = Sim::new(1);
    let metrics = SharedMetrics(sim.shared_world());
    assert_eq!(metrics.now(), iter8_sim::clock::epoch());
    sim.run_for(Duration::from_secs(90), &mut |_| {});
    assert_eq!(
        metrics.now(),
        iter8_sim::clock::epoch() + chrono::Duration::seconds(90)
    );
}
