//! API faults a healthy kube-apiserver does not make on its own, injected by a proxy between
//! the `iter8 operator` binary and the real API server: 500s, 429s with Retry-After, 403s, slow
//! answers and dropped watches, while an experiment runs. The run ends with the operator
//! recovered and nothing lost: every iteration once, in order, and the experiment succeeds.

mod cluster;

use std::time::Duration;

use cluster::*;
use iter8_control_plane::FaultProxy;
use iter8_test_support::FakePrometheus;

const EXPERIMENT: &str = "reviews-v3-rollout";
const ITERATIONS: u64 = 6;

#[test]
fn api_faults_end_with_the_operator_recovered_and_nothing_lost() {
    let ns = "fault-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let prometheus = runtime.block_on(FakePrometheus::per_version(ns));
    let proxy = runtime.block_on(FaultProxy::start(&cp.server(), &cp.ca_pem()));
    let _guard = runtime.enter();
    bookinfo_with_reviews_v3(cp, ns, &prometheus);
    let kubeconfig = cp.service_account_kubeconfig_via("iter8", "iter8-controller", proxy.url());
    let mut operator = Operator::spawn(&kubeconfig, ns, &prometheus.url(), &[]);

    let recorder = Recorder::start(cp, "experiments", ns, EXPERIMENT);
    std::thread::sleep(Duration::from_millis(500));
    apply_in(cp, ns, &part1_experiment("2s", ITERATIONS as u32));
    wait_until(Duration::from_secs(30), "iteration 1 started", || {
        operator.assert_running();
        iteration_events(cp, ns, EXPERIMENT)
            .iter()
            .any(|(m, _)| m == "Iteration 1 Started")
    });

    let faults: [(u32, u16, Option<u64>); 3] = [(4, 500, None), (3, 429, Some(1)), (2, 403, None)];
    for (n, status, retry_after) in faults {
        proxy.fail_next(n, status, retry_after);
        wait_until(
            Duration::from_secs(30),
            &format!("{n} requests answered {status}"),
            || {
                operator.assert_running();
                !proxy.failing()
            },
        );
        proxy.drop_watches();
    }
    // Slow answers, longer than a reconcile usually takes.
    proxy.slow(Duration::from_millis(1500));
    std::thread::sleep(Duration::from_secs(4));
    proxy.slow(Duration::ZERO);
    proxy.drop_watches();

    wait_until(Duration::from_secs(90), "the experiment completes", || {
        operator.assert_running();
        object(cp, "experiment", ns, EXPERIMENT)
            .is_some_and(|e| e["status"]["phase"] == "Completed")
    });
    let exp = object(cp, "experiment", ns, EXPERIMENT).unwrap();
    assert_eq!(
        exp["status"]["message"], "ExperimentSucceeded: All Success Criteria Were Met",
        "{exp:#}"
    );
    let runs = iterations(&recorder.history());
    assert_iterations_once(&runs, ITERATIONS, 2.0);
    let expected: Vec<(String, i64)> = (1..=ITERATIONS)
        .map(|i| (format!("Iteration {i} Started"), 1))
        .collect();
    assert_eq!(iteration_events(cp, ns, EXPERIMENT), expected);

    let injected = proxy.injected();
    assert_eq!(
        (injected.get(&500), injected.get(&429), injected.get(&403)),
        (Some(&4), Some(&3), Some(&2)),
        "{injected:?}"
    );
    let seen = proxy.seen();
    eprintln!("requests through the proxy: {seen:?}; injected: {injected:?}");
    assert!(
        seen.get("WATCH").copied().unwrap_or(0) >= 4,
        "watches restarted: {seen:?}"
    );
    // The operator is still up and serving.
    operator.assert_running();
    assert_eq!(http_get(operator.port, "/healthz").0, 200);
}
