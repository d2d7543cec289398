//! Faults during a live experiment (real Envoy, real Prometheus, real traffic): Envoy restarted
//! mid-experiment comes back with the split the engine last set; Prometheus unreachable for a
//! while holds traffic with `AnalyticsServiceError` and the experiment continues once it returns.

use std::time::{Duration, Instant};

use iter8_core::model::{Phase, TrafficSplit};
use iter8_envoy::metrics::envoy_metrics;
use iter8_envoy::stats::served_between;
use iter8_live::driver::{DriverOptions, LiveDriver};
use iter8_live::stack::{LiveStack, StackOptions};
use iter8_live::tutorial::tutorial_experiment;
use iter8_test_support::chance_tolerance;

const PART1: &str = include_str!("../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
const INTERVAL: Duration = Duration::from_secs(3);

/// The candidate weight Envoy serves now.
async fn candidate_weight(stack: &LiveStack) -> Option<u32> {
    let route = stack.router().served_routes().await.ok()??;
    Some(route.weight_of("reviews-v3"))
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_restart_and_a_prometheus_outage_during_an_experiment() {
    let stack = LiveStack::start(StackOptions::default(), "reviews-v2")
        .await
        .expect("start the stack (see scripts/install-test-deps.sh)");
    stack.deploy("reviews-v3").await.unwrap();
    stack.start_load(100.0, Duration::from_secs(150)).unwrap();
    let mut exp = tutorial_experiment(PART1, INTERVAL).unwrap();
    exp.spec.traffic_control.max_iterations = Some(10);
    let name = exp.name().to_string();
    let options = DriverOptions {
        abort_check_every: Some(Duration::from_secs(1)),
        max_sleep: INTERVAL,
        error_retry: Duration::from_millis(500),
    };
    let mut driver = LiveDriver::new(
        &stack,
        envoy_metrics().unwrap(),
        options,
        Box::new(|t: &str| print!("{t}")),
    )
    .unwrap();
    driver.apply(exp);
    let store = driver.store();

    let faults = async {
        // Envoy restarted while the candidate has 40 %.
        wait_for("40 % to the candidate", Duration::from_secs(60), || async {
            candidate_weight(&stack).await == Some(40)
        })
        .await;
        stack.stop_envoy();
        tokio::time::sleep(Duration::from_secs(2)).await;
        stack.start_envoy().await.expect("restart Envoy");
        let after_restart = candidate_weight(&stack).await;
        let status_split = store.get(&name).unwrap().status.split();
        // Serve for a second and compare with what the engine set.
        let before = stack.admin().cluster_counters().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = stack.admin().cluster_counters().await.unwrap();
        let d = served_between(&before, &after);
        let weight_now = candidate_weight(&stack).await;

        // Prometheus down for a while: the status says why, traffic holds.
        stack.stop_prometheus();
        let held = candidate_weight(&stack).await;
        wait_for("AnalyticsServiceError", Duration::from_secs(20), || async {
            let m = store.get(&name).unwrap().status.message.unwrap_or_default();
            m.starts_with("AnalyticsServiceError")
        })
        .await;
        let paused = store.get(&name).unwrap().status.clone();
        tokio::time::sleep(INTERVAL * 2).await;
        let still = candidate_weight(&stack).await;
        let paused_again = store.get(&name).unwrap().status.clone();
        stack.start_prometheus().await.expect("restart Prometheus");
        (
            after_restart,
            status_split,
            d,
            weight_now,
            held,
            still,
            paused,
            paused_again,
        )
    };
    let run = driver.run_to_completion(&name, Duration::from_secs(150));
    let (
        record,
        (after_restart, status_split, served, weight_now, held, still, paused, paused_again),
    ) = tokio::join!(run, faults);
    let record = record.expect("the experiment completes");

    // Envoy came back with the routes the engine last set.
    assert_eq!(
        after_restart,
        Some(status_split.candidate),
        "{status_split:?}"
    );
    if weight_now == after_restart {
        let b = served.get("reviews-v2").map_or(0, |c| c.requests);
        let c = served.get("reviews-v3").map_or(0, |c| c.requests);
        let share = 100.0 * c as f64 / (b + c).max(1) as f64;
        assert!(b + c >= 80, "served {b}+{c} after the restart");
        assert!(
            (share - f64::from(status_split.candidate)).abs()
                <= chance_tolerance(f64::from(status_split.candidate), b + c),
            "after the restart Envoy served {share:.1}% to the candidate, set {status_split:?}"
        );
    }

    // Prometheus down: paused with the reason, traffic held.
    let message = paused.message.clone().unwrap_or_default();
    assert!(message.starts_with("AnalyticsServiceError: "), "{message}");
    assert_eq!(paused.phase, Some(Phase::Pause));
    assert_eq!(held, still, "traffic held during the outage");
    assert_eq!(paused.split(), paused_again.split());
    assert!(
        record
            .messages
            .iter()
            .any(|m| m.starts_with("AnalyticsServiceError")),
        "{:?}",
        record.messages
    );

    // ...and continued once it was back.
    assert_eq!(
        record.experiment.status.message.as_deref(),
        Some("ExperimentSucceeded: All Success Criteria Were Met")
    );
    assert_eq!(
        record.experiment.status.split(),
        TrafficSplit::ALL_CANDIDATE
    );
    assert_eq!(candidate_weight(&stack).await, Some(100));
    stack.stop();
}
