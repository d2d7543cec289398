//! The `iter8 operator` binary on a real kube-apiserver, as the install bundle's ServiceAccount:
//! the finalizer (a running experiment deleted is rolled back, then gone), routing applied by
//! server-side apply under the Istio CRDs' schemas without touching what a user set on the same
//! VirtualService, two operator processes on a real Lease (the leader killed with SIGKILL,
//! the standby goes on, no iteration lost or repeated), a leader cut off from the API server
//! stepping down before its Lease runs out, and one process through part 1 while
//! its watches are dropped: its endpoints, its metrics, and a clean stop on SIGTERM.

mod cluster;

use std::time::{Duration, Instant};

use cluster::*;
use iter8_control_plane::FaultProxy;
use serde_json::{Value, json};

const EXPERIMENT: &str = "reviews-v3-rollout";
const HOST: &str = "reviews";

fn routing(cp: &iter8_control_plane::ControlPlane, ns: &str) -> Option<Value> {
    let out = cp.kubectl_ok(
        &[
            "get",
            "virtualservice",
            "-n",
            ns,
            "-l",
            &format!("iter8-tools/host={HOST}.{ns}.svc.cluster.local"),
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    let list: Value = serde_json::from_str(&out).ok()?;
    list["items"].get(0).cloned()
}

/// (subset, weight) of the VirtualService's first http route.
fn weights(vs: &Value) -> Vec<(String, i64)> {
    vs["spec"]["http"][0]["route"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["destination"]["subset"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                r["weight"].as_i64().unwrap_or(100),
            )
        })
        .collect()
}

#[test]
fn a_deleted_running_experiment_is_rolled_back_then_gone_and_user_fields_stay() {
    let ns = "finalizer-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let (prometheus, kubeconfig) = bookinfo_with_reviews_v3(&runtime, ns, None);
    let _guard = runtime.enter();
    let mut operator = Operator::spawn(&kubeconfig, ns, &prometheus.url(), &[]);

    apply_in(cp, ns, &part1_experiment("2s", 8));
    wait_until(Duration::from_secs(60), "traffic shifted past 20%", || {
        operator.assert_running();
        routing(cp, ns)
            .map(|vs| weights(&vs).contains(&("candidate".to_string(), 40)))
            .unwrap_or(false)
    });

    // The status is written through the status subresource, by the operator's manager.
    let exp = object(cp, "experiment", ns, EXPERIMENT).unwrap();
    assert_eq!(exp["metadata"]["finalizers"][0], "finalizer.iter8-tools");

    // A user sets a field of their own on the VirtualService iter8 manages.
    cp.kubectl_ok(
        &[
            "annotate",
            "virtualservice",
            "-n",
            ns,
            "-l",
            &format!("iter8-tools/host={HOST}.{ns}.svc.cluster.local"),
            "team=reviews-owners",
        ],
        None,
    );
    let vs_name = routing(cp, ns).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    cp.kubectl_ok(
        &[
            "patch",
            "virtualservice",
            &vs_name,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"exportTo":["."]}}"#,
        ],
        None,
    );
    // The operator's next applies leave both alone.
    wait_until(Duration::from_secs(30), "another traffic step", || {
        routing(cp, ns)
            .map(|vs| weights(&vs).contains(&("candidate".to_string(), 60)))
            .unwrap_or(false)
    });
    let vs = routing(cp, ns).unwrap();
    assert_eq!(vs["metadata"]["annotations"]["team"], "reviews-owners");
    assert_eq!(vs["spec"]["exportTo"], serde_json::json!(["."]));
    let managers: Vec<(String, String)> = vs["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or("").to_string(),
                m["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        managers
            .iter()
            .any(|(m, op)| m.starts_with("iter8") && op == "Apply"),
        "iter8 applies the rules server-side: {managers:?}"
    );

    // Deleting the running experiment: traffic back to the baseline, then the object is gone.
    cp.kubectl_ok(
        &["delete", "experiment", EXPERIMENT, "-n", ns, "--wait=false"],
        None,
    );
    wait_until(Duration::from_secs(30), "the experiment is gone", || {
        operator.assert_running();
        object(cp, "experiment", ns, EXPERIMENT).is_none()
    });
    let vs = routing(cp, ns).expect("the rules stay");
    let to_candidate: i64 = weights(&vs)
        .iter()
        .filter(|(s, _)| s == "candidate")
        .map(|(_, w)| *w)
        .sum();
    assert_eq!(
        to_candidate, 0,
        "rolled back before the finalizer went: {vs:#}"
    );
}

#[test]
fn a_killed_leader_is_replaced_on_a_real_lease_without_losing_an_iteration() {
    const LEASE: f64 = 3.0;
    const INTERVAL: f64 = 2.0;
    const ITERATIONS: u64 = 4;
    // Room for process scheduling and the new leader's first list on a loaded machine.
    const SLACK: f64 = 4.0;
    let ns = "leader-check";
    let lease = "iter8-leader-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let (prometheus, kubeconfig) = bookinfo_with_reviews_v3(&runtime, ns, None);
    let _guard = runtime.enter();
    let lease_holder = || {
        object(cp, "lease", "iter8", lease)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };

    let names = ["iter8-a", "iter8-b"];
    let mut operators: Vec<Operator> = names
        .iter()
        .map(|name| {
            Operator::spawn(
                &kubeconfig,
                ns,
                &prometheus.url(),
                &[
                    "--leader-elect",
                    "--identity",
                    name,
                    "--lease-name",
                    lease,
                    "--lease-namespace",
                    "iter8",
                    "--lease-duration",
                    "3s",
                ],
            )
        })
        .collect();
    let mut holder = None;
    wait_until(Duration::from_secs(30), "somebody leads", || {
        holder = lease_holder().filter(|h| !h.is_empty());
        holder.is_some()
    });
    let holder = holder.unwrap();
    let leader = names
        .iter()
        .position(|n| *n == holder)
        .unwrap_or_else(|| panic!("the Lease is held by {holder}"));
    let standby = 1 - leader;

    let recorder = Recorder::start(cp, "experiments", ns, EXPERIMENT);
    std::thread::sleep(Duration::from_millis(500));
    apply_in(cp, ns, &part1_experiment("2s", ITERATIONS as u32));

    // Kill between reconciles, during iteration 2 (or later on a slow machine): a reconcile is
    // over once its Event is recorded.
    wait_until(Duration::from_secs(30), "iteration 2 started", || {
        operators[leader].assert_running();
        iteration_events(cp, ns, EXPERIMENT)
            .iter()
            .any(|(m, _)| m == "Iteration 2 Started")
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, standby_metrics) = http_get(operators[standby].port, "/metrics");
    assert_eq!(code, 200, "the standby serves its endpoints");
    assert!(
        !standby_metrics.contains("experiment=\"reviews-v3-rollout\""),
        "the standby does not reconcile: {standby_metrics}"
    );
    let at_kill = object(cp, "experiment", ns, EXPERIMENT).unwrap()["status"]["currentIteration"]
        .as_u64()
        .unwrap();
    assert!((2..ITERATIONS).contains(&at_kill), "{at_kill}");

    // SIGKILL: no chance to release the Lease.
    operators[leader].signal("KILL");
    let killed = Instant::now();
    let status = operators[leader].child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    assert_eq!(
        lease_holder().as_deref(),
        Some(names[leader]),
        "the killed leader still holds the Lease until it expires"
    );
    wait_until(Duration::from_secs(30), "the standby takes over", || {
        operators[standby].assert_running();
        lease_holder().as_deref() == Some(names[standby])
    });
    wait_until(Duration::from_secs(30), "the next iteration", || {
        operators[standby].assert_running();
        object(cp, "experiment", ns, EXPERIMENT).unwrap()["status"]["currentIteration"].as_u64()
            > Some(at_kill)
    });
    let next_iteration = killed.elapsed().as_secs_f64();
    assert!(
        next_iteration <= LEASE + INTERVAL + SLACK,
        "no stall: the next iteration came {next_iteration:.1} s after the kill"
    );
    wait_until(Duration::from_secs(60), "the experiment completes", || {
        operators[standby].assert_running();
        object(cp, "experiment", ns, EXPERIMENT)
            .is_some_and(|e| e["status"]["phase"] == "Completed")
    });
    let exp = object(cp, "experiment", ns, EXPERIMENT).unwrap();
    assert_eq!(
        exp["status"]["message"],
        "ExperimentSucceeded: All Success Criteria Were Met"
    );
    assert_eq!(
        exp["status"]["trafficSplitPercentage"],
        json!({"baseline": 0, "candidate": 100})
    );
    eprintln!(
        "killed in iteration {at_kill}; completed {:.1} s later",
        killed.elapsed().as_secs_f64()
    );

    // Every iteration once, in order, an interval or more apart; the one across the kill
    // within the Lease's expiry.
    let runs = iterations(&recorder.history());
    assert_iterations_once(&runs, ITERATIONS, INTERVAL);
    let k = at_kill as usize;
    let across_kill = seconds_between(&runs[k - 1].1, &runs[k].1);
    assert!(
        across_kill <= LEASE + INTERVAL + SLACK + 1.0,
        "iteration {at_kill} -> {} took {across_kill}s: {runs:#?}",
        at_kill + 1
    );
    let expected: Vec<(String, i64)> = (1..=ITERATIONS)
        .map(|i| (format!("Iteration {i} Started"), 1))
        .collect();
    assert_eq!(iteration_events(cp, ns, EXPERIMENT), expected);

    // A clean stop releases the Lease.
    operators[standby].signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = operators[standby].child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(lease_holder().unwrap_or_default(), "");
}

/// A leader cut off from the API server (every request it sends fails, its watches end) cannot
/// renew its Lease; a standby would take the Lease once it expires. The leader steps down
/// before that moment, so two instances never act as leaders together: it cancels its
/// reconciles and exits with `lost the leadership Lease`, and the moment it logged is before
/// the last renewal the API server holds runs out.
#[test]
fn a_leader_cut_off_from_the_api_server_steps_down_before_its_lease_runs_out() {
    let ns = "partition-check";
    let lease = "iter8-partition-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let proxy = runtime.block_on(FaultProxy::start(&cp.server(), &cp.ca_pem()));
    let (prometheus, kubeconfig) = bookinfo_with_reviews_v3(&runtime, ns, Some(proxy.url()));
    let _guard = runtime.enter();
    let mut operator = Operator::spawn(
        &kubeconfig,
        ns,
        &prometheus.url(),
        &[
            "--leader-elect",
            "--identity",
            "cut-off",
            "--lease-name",
            lease,
            "--lease-namespace",
            "iter8",
            "--lease-duration",
            "6s",
        ],
    );
    // Read past the proxy, as a standby would.
    let read_lease = || object(cp, "lease", "iter8", lease).map(|l| l["spec"].clone());
    wait_until(Duration::from_secs(30), "it leads", || {
        operator.assert_running();
        read_lease().is_some_and(|s| s["holderIdentity"] == "cut-off")
    });
    // Leading for a while: renewals go through.
    std::thread::sleep(Duration::from_secs(7));
    operator.assert_running();

    proxy.fail_next(u32::MAX, 503, None);
    proxy.drop_watches();
    let cut = chrono::Utc::now();
    let mut status = None;
    wait_until(Duration::from_secs(30), "the cut-off leader exits", || {
        status = operator.child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    let log = operator.log();
    assert!(!status.success(), "{status:?}");
    assert!(
        log.contains("lost the leadership Lease") && log.contains("not renewed in time"),
        "{log}"
    );
    // When it stopped acting: the line that says its reconciles were cancelled.
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("lost the Lease"))
        })
        .unwrap_or_else(|| panic!("no step-down line: {log}"));
    let stepped_down: chrono::DateTime<chrono::Utc> =
        line["timestamp"].as_str().unwrap().parse().unwrap();
    let spec = read_lease().expect("the Lease stays (the leader could not release it)");
    assert_eq!(spec["holderIdentity"], "cut-off", "{spec:#}");
    let renewed: chrono::DateTime<chrono::Utc> =
        spec["renewTime"].as_str().unwrap().parse().unwrap();
    let runs_out =
        renewed + chrono::Duration::seconds(spec["leaseDurationSeconds"].as_i64().unwrap());
    assert!(
        cut <= stepped_down && stepped_down < runs_out,
        "cut at {cut}, stepped down at {stepped_down}, the Lease ran out at {runs_out}"
    );
    eprintln!(
        "stepped down {:.1} s after the cut, {:.1} s before the Lease ran out",
        (stepped_down - cut).as_seconds_f64(),
        (runs_out - stepped_down).as_seconds_f64()
    );
}

/// `iter8 operator`, the binary, through part 1 (1 s interval, 3 iterations) after its watches
/// were dropped (as a connection reset would) and started again: its endpoints answer, traffic
/// moves 20 points per iteration on what Prometheus answered, the metrics follow the status,
/// and SIGTERM stops the process cleanly, every log line JSON.
#[test]
fn the_operator_binary_runs_part_1_through_dropped_watches_and_stops_on_sigterm() {
    let ns = "binary-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let proxy = runtime.block_on(FaultProxy::start(&cp.server(), &cp.ca_pem()));
    let (prometheus, kubeconfig) = bookinfo_with_reviews_v3(&runtime, ns, Some(proxy.url()));
    let _guard = runtime.enter();
    let mut operator = Operator::spawn(&kubeconfig, ns, &prometheus.url(), &[]);

    // Ready once it has reached the API server.
    wait_until(Duration::from_secs(30), "/readyz answers 200", || {
        operator.assert_running();
        http_get(operator.port, "/readyz").0 == 200
    });
    assert_eq!(
        http_get(operator.port, "/healthz"),
        (200, "ok\n".to_string())
    );

    // Every watch that ends is started again (a real API server answers the next one from the
    // resourceVersion the operator last saw).
    std::thread::sleep(Duration::from_secs(1));
    let watches = || proxy.seen().get("WATCH").copied().unwrap_or(0);
    let open = watches();
    assert!(open > 0, "the operator watches: {:?}", proxy.seen());
    let dropped = Instant::now();
    proxy.drop_watches();
    wait_until(
        Duration::from_secs(30),
        "each dropped watch started again",
        || {
            operator.assert_running();
            watches() >= 2 * open
        },
    );
    eprintln!(
        "{open} watches started again {:?} after they were dropped",
        dropped.elapsed()
    );

    let recorder = Recorder::start(cp, "experiments", ns, EXPERIMENT);
    std::thread::sleep(Duration::from_millis(500));
    apply_in(cp, ns, &part1_experiment("1s", 3));
    wait_until(Duration::from_secs(60), "the experiment completes", || {
        operator.assert_running();
        object(cp, "experiment", ns, EXPERIMENT)
            .is_some_and(|e| e["status"]["phase"] == "Completed")
    });
    let exp = object(cp, "experiment", ns, EXPERIMENT).unwrap();
    assert_eq!(
        exp["status"]["message"], "ExperimentSucceeded: All Success Criteria Were Met",
        "{exp:#}"
    );
    assert_eq!(exp["status"]["currentIteration"], 3, "{exp:#}");
    assert_eq!(
        exp["status"]["trafficSplitPercentage"],
        json!({"baseline": 0, "candidate": 100})
    );
    let vs = routing(cp, ns).expect("the operator's VirtualService");
    assert_eq!(weights(&vs), [("candidate".to_string(), 100)], "{vs:#}");
    // The decisions were made on what Prometheus answered to the stock templates.
    let asked = prometheus.queries();
    assert!(
        asked
            .iter()
            .any(|q| q.contains("istio_request_duration_milliseconds_sum")),
        "{asked:#?}"
    );
    // Traffic moved 20 points per iteration while the criterion held.
    let trail: Vec<String> = recorder
        .history()
        .iter()
        .map(|e| {
            let s = &e["status"];
            format!(
                "{} {}/{}",
                s["message"].as_str().unwrap_or("-"),
                s["trafficSplitPercentage"]["baseline"],
                s["trafficSplitPercentage"]["candidate"]
            )
        })
        .collect();
    for step in [
        "Iteration 1 Started 80/20",
        "Iteration 2 Started 60/40",
        "Iteration 3 Started 40/60",
    ] {
        assert!(
            trail.iter().any(|t| t.ends_with(step)),
            "{step}: {trail:#?}"
        );
    }

    // The metrics follow the status write within the same reconcile (after its events).
    let mut metrics = String::new();
    wait_until(
        Duration::from_secs(5),
        "the metrics count the completion",
        || {
            let (code, body) = http_get(operator.port, "/metrics");
            assert_eq!(code, 200);
            metrics = body;
            metrics.contains("iter8_experiments{phase=\"Completed\"} 1")
        },
    );
    assert!(
        metrics.contains(&format!(
            "iter8_candidate_weight_percent{{namespace=\"{ns}\",experiment=\"{EXPERIMENT}\"}} 100"
        )),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "OpenMetrics text: {metrics}");
    // The load it put on the API server, counted by its client: it watched, and wrote the
    // status it decided; the queue of reconciles waiting for a turn is empty.
    let api_requests = |verb: &str, resource: &str| {
        let prefix = format!(
            "iter8_kubernetes_api_requests_total{{verb=\"{verb}\",resource=\"{resource}\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(api_requests("watch", "experiments") >= 1, "{metrics}");
    assert!(api_requests("patch", "experiments") >= 4, "{metrics}");
    assert!(
        metrics.contains("iter8_reconcile_queue_depth 0"),
        "{metrics}"
    );

    operator.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = operator.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = operator.log();
    assert!(status.success(), "exit on SIGTERM: {status:?}; log:\n{log}");
    assert!(log.contains("operator stopped"), "{log}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "--log-format json: every line is JSON:\n{log}"
    );
    assert_eq!(
        http_get(operator.port, "/healthz").0,
        0,
        "the endpoints are closed"
    );
}
