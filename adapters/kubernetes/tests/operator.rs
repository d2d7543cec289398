//! The operator end to end, in process: a `kube::Client` against a real kube-apiserver (one
//! namespace per test), Istio routing through iter8-istio, metrics from a scripted source,
//! experiments with a 1s interval.

mod support;

use std::time::Duration;

use iter8_control_plane::eventually;
use serde_json::json;
use support::*;

const PART1: &str = "reviews-v3-rollout";

/// Tutorial part 1 in the seed's order: the experiment first (Pause, Missing Candidate, 100/0),
/// then the candidate (progresses, 80/20 at iteration 1), then completion (0/100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_part1_in_the_seeds_order() {
    let cluster = cluster("part1").await;
    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;

    cluster.apply(&part1_experiment()).await;
    wait_for(
        &cluster,
        PART1,
        10,
        message_is("TargetsNotFound: Missing Candidate"),
    )
    .await;
    assert_eq!(
        table(&cluster, &[PART1]).await,
        "NAME                 PHASE   STATUS                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Pause   TargetsNotFound: Missing Candidate   reviews-v2   100          reviews-v3   0\n"
    );
    let stored = experiment(&cluster, PART1).await.unwrap();
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["finalizer.iter8-tools"])
    );

    cluster.apply_file("reviews-v3.yaml").await;
    let seen = wait_for(&cluster, PART1, 10, |e| {
        e["status"]["currentIteration"].as_u64() >= Some(1)
    })
    .await;
    let exp = core_experiment(&cluster, PART1).await;
    assert_eq!(
        iter8_core::table::row(&exp)[1..].to_vec(),
        [
            "Progressing",
            "IterationUpdate: Iteration 1 Started",
            "reviews-v2",
            "80",
            "reviews-v3",
            "20"
        ],
        "{seen:#?}"
    );
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 80), ("candidate".to_string(), 20)]
    );

    let seen = wait_for(&cluster, PART1, 30, completed).await;
    assert_eq!(
        table(&cluster, &[PART1]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n",
        "{seen:#?}"
    );
    // Traffic moved 20 points per iteration up to the 80% cap.
    for step in ["60/40", "40/60", "20/80"] {
        assert!(seen.iter().any(|l| l.ends_with(step)), "{step}: {seen:#?}");
    }
    assert!(
        !seen
            .iter()
            .any(|l| l.ends_with("0/100") && l.contains("Progressing")),
        "never all traffic on the candidate while progressing: {seen:#?}"
    );
    assert_eq!(
        served_weights(&cluster).await,
        vec![("candidate".to_string(), 100)]
    );
    let exp = core_experiment(&cluster, PART1).await;
    assert_eq!(exp.status.current_iteration, 8);

    // Event types are the core's: TargetsNotFound is Normal (waiting), failures are Warnings.
    // As v0.2.1, the metrics configuration read comes first.
    let reasons = wait_for_event(&cluster, PART1, "ExperimentSucceeded").await;
    assert_eq!(
        reasons[..2],
        [
            ("Normal".into(), "SyncMetricsSucceeded".into()),
            ("Normal".into(), "TargetsNotFound".into())
        ],
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("Normal".into(), "IterationUpdate".into())),
        "{reasons:?}"
    );
    assert_eq!(
        reasons.last(),
        Some(&("Normal".into(), "ExperimentSucceeded".into())),
        "{reasons:?}"
    );

    let metrics = operator
        .metrics_with("iter8_experiments{phase=\"Completed\"} 1", 5)
        .await;
    assert!(
        metrics.contains(&format!(
            "iter8_candidate_weight_percent{{namespace=\"{}\",experiment=\"reviews-v3-rollout\"}} 100",
            cluster.ns
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("iter8_decisions_total{reason=\"IterationUpdate\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("iter8_reconcile_duration_seconds_count"),
        "{metrics}"
    );
    assert_eq!(operator.get("/healthz").await.0, 200);
    assert_eq!(operator.get("/readyz").await.0, 200);

    operator.stop().await.unwrap();
}

/// Tutorial part 2's shape: a slow candidate fails its criterion; traffic goes back to the
/// baseline at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_is_rolled_back() {
    let (cluster, operator) =
        reviews_v3_cluster("failing-candidate", FakeMetrics::new(120.0, 5000.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["maxIterations"] = json!(3);
    cluster.apply(&exp).await;
    let seen = wait_for(&cluster, PART1, 20, completed).await;
    assert_eq!(
        iter8_core::table::row(&core_experiment(&cluster, PART1).await)[1..].to_vec(),
        [
            "Completed",
            "ExperimentFailed: Not All Success Criteria Met",
            "reviews-v2",
            "100",
            "reviews-v3",
            "0"
        ],
        "{seen:#?}"
    );
    // Iteration 1 always moves traffic; later ones hold while the criterion fails.
    assert!(
        seen.iter()
            .any(|l| l.contains("Iteration 1 Started") && l.ends_with("80/20")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.ends_with("60/40")), "{seen:#?}");
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 100)]
    );
    let reasons = wait_for_event(&cluster, PART1, "ExperimentFailed").await;
    assert_eq!(
        reasons.last(),
        Some(&("Warning".into(), "ExperimentFailed".into())),
        "{reasons:?}"
    );
    operator.stop().await.unwrap();
}

/// Deleting a running experiment rolls traffic back to the baseline, then lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_experiment_rolls_back_then_removes_the_finalizer() {
    let (cluster, operator) =
        reviews_v3_cluster("delete-running", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["interval"] = json!("1h");
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, iteration_started(1)).await;
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 80), ("candidate".to_string(), 20)]
    );

    delete_experiment(&cluster, PART1).await;
    wait_gone(&cluster, PART1, 10).await;
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 100)]
    );
    let (code, metrics) = operator.get("/metrics").await;
    assert_eq!(code, 200, "{metrics}");
    assert!(
        !metrics.contains("experiment=\"reviews-v3-rollout\""),
        "{metrics}"
    );
    operator.stop().await.unwrap();
}

/// An experiment the core rejects pauses with a message naming the field; so does one with a
/// wrong type that an API server without the CRD's validation let through (a real one with
/// the CRD refuses it: tests/cluster_crd.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_experiments_pause_with_the_field_named() {
    let cluster = cluster_on(control_plane_without_crd_validation(), "invalid").await;
    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;

    let mut unknown_metric = part1_experiment();
    unknown_metric["metadata"]["name"] = json!("unknown-metric");
    unknown_metric["spec"]["analysis"]["successCriteria"][0]["metricName"] =
        json!("iter8_latencyy");
    cluster.apply(&unknown_metric).await;
    let mut wrong_type = part1_experiment();
    wrong_type["metadata"]["name"] = json!("wrong-type");
    wrong_type["spec"]["trafficControl"]["maxIterations"] = json!("eight");
    cluster.apply(&wrong_type).await;

    wait_for(&cluster, "unknown-metric", 10, |e| {
        e["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ValidationError:"))
    })
    .await;
    let exp = core_experiment(&cluster, "unknown-metric").await;
    let message = exp.status.message.unwrap();
    assert!(
        message.contains("spec.analysis.successCriteria[0].metricName"),
        "{message}"
    );
    assert_eq!(exp.status.phase, Some(iter8_core::model::Phase::Pause));

    let seen = wait_for(&cluster, "wrong-type", 10, |e| {
        e["status"]["phase"] == "Pause"
    })
    .await;
    let stored = experiment(&cluster, "wrong-type").await.unwrap();
    let message = stored["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ValidationError: spec.trafficControl.maxIterations: "),
        "{message} {seen:?}"
    );
    let reasons = wait_for_event(&cluster, "wrong-type", "ValidationError").await;
    assert_eq!(
        reasons,
        vec![("Warning".to_string(), "ValidationError".to_string())]
    );

    // Fixing the field lets the experiment go on (here: to wait for its candidate).
    wrong_type["spec"]["trafficControl"]["maxIterations"] = json!(8);
    cluster.apply(&wrong_type).await;
    wait_for(
        &cluster,
        "wrong-type",
        10,
        message_is("TargetsNotFound: Missing Candidate"),
    )
    .await;
    operator.stop().await.unwrap();
}

/// A restarted operator continues where the status says, on time: every iteration runs
/// exactly once, in order, and the experiment does not stall waiting for an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_continues_from_the_status() {
    let (cluster, history, operator) = at_iteration_2_of_4("restarted").await;
    operator.stop().await.unwrap();
    let before = core_experiment(&cluster, PART1).await.status;

    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    // No stall: 4 iterations 2s apart and the completion one interval after the last take 8s;
    // a restart may cost a little, never a wait for some unrelated event.
    succeeds_with_each_iteration_once(&cluster, &history, 20, 4, 2.0).await;
    let after = core_experiment(&cluster, PART1).await.status;
    assert_eq!(after.start_timestamp, before.start_timestamp);
    operator.stop().await.unwrap();
}

/// An operator killed between two iterations (its task aborted, no graceful shutdown) and
/// replaced by a new one: the experiment goes on from the status, each iteration once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_operator_is_replaced_without_losing_an_iteration() {
    let (cluster, history, operator) = at_iteration_2_of_4("killed").await;
    // Kill it mid-interval, once iteration 2's reconcile has recorded its event.
    eventually(
        Duration::from_secs(10),
        "an event for iteration 2",
        || async { (iteration_events(&cluster, PART1).await.len() >= 2).then_some(()) },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(operator);

    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    succeeds_with_each_iteration_once(&cluster, &history, 20, 4, 2.0).await;
    operator.stop().await.unwrap();
}

/// Part 1's experiment with 4 iterations 2 s apart, over [`reviews_v3_cluster`] in namespace
/// `ns`, once its iteration 2 has started; with the experiment's history from before it was
/// created.
async fn at_iteration_2_of_4(ns: &str) -> (Cluster, History, Running) {
    let (cluster, operator) = reviews_v3_cluster(ns, FakeMetrics::new(120.0, 100.0)).await;
    let history = cluster.record(PART1).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    exp["spec"]["trafficControl"]["maxIterations"] = json!(4);
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, iteration_started(2)).await;
    (cluster, history, operator)
}

/// Waits (at most `secs`) until part 1's experiment completes, and fails unless it succeeded,
/// ran each of its `n` iterations once ([`assert_each_iteration_ran_once`]), and took no longer
/// than its iterations and the completion one interval after the last, plus one interval.
async fn succeeds_with_each_iteration_once(
    cluster: &Cluster,
    history: &History,
    secs: u64,
    n: u64,
    interval: f64,
) {
    let seen = wait_for(cluster, PART1, secs, completed).await;
    let stored = experiment(cluster, PART1).await.unwrap();
    assert_eq!(
        stored["status"]["message"], "ExperimentSucceeded: All Success Criteria Were Met",
        "{seen:#?}"
    );
    assert_each_iteration_ran_once(cluster, history, PART1, n, interval).await;
    let took = seconds_between(
        stored["status"]["startTimestamp"].as_str().unwrap(),
        stored["status"]["endTimestamp"].as_str().unwrap(),
    );
    assert!(
        took <= interval * (n as f64 + 2.0),
        "took {took}s: {seen:#?}"
    );
}

/// Every iteration 1..=`n` of an experiment ran exactly once, in order and `interval` seconds
/// or more apart, judged from everything the API server stored: the status' history as
/// recorded by a watch from before the experiment was created (each iteration number with one
/// increment time, no gap, no repeat), the `IterationUpdate` messages, and the Events of every
/// operator instance.
async fn assert_each_iteration_ran_once(
    cluster: &Cluster,
    history: &History,
    name: &str,
    n: u64,
    interval: f64,
) {
    let history = history.objects();
    assert_iterations_once(&iterations(&history), n, interval);
    let updates: Vec<String> = messages(&history)
        .into_iter()
        .filter(|m| m.starts_with("IterationUpdate"))
        .collect();
    let expected: Vec<String> = (1..=n)
        .map(|i| format!("IterationUpdate: Iteration {i} Started"))
        .collect();
    assert_eq!(updates, expected);
    let expected: Vec<(String, i64)> = (1..=n)
        .map(|i| (format!("Iteration {i} Started"), 1))
        .collect();
    assert_eq!(iteration_events(cluster, name).await, expected);
    let last = history.last().expect("a history");
    assert_eq!(last["status"]["currentIteration"], n, "{last:#}");
}

/// The top-level `action`: pause holds traffic, resume continues, override_failure rolls back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_actions_pause_resume_and_override() {
    let (cluster, operator) = reviews_v3_cluster("actions", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, iteration_started(1)).await;

    exp["action"] = json!("pause");
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, message_is("Pause")).await;
    let paused_at = core_experiment(&cluster, PART1)
        .await
        .status
        .current_iteration;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        core_experiment(&cluster, PART1)
            .await
            .status
            .current_iteration,
        paused_at
    );

    exp["action"] = json!("resume");
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, |e| {
        e["status"]["currentIteration"].as_u64() > Some(u64::from(paused_at))
    })
    .await;

    exp["action"] = json!("override_failure");
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, message_is("ExperimentFailed: Aborted")).await;
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 100)]
    );
    operator.stop().await.unwrap();
}

/// Two experiments on the same service: the second waits while the first runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_running_experiment_per_target() {
    let (cluster, operator) =
        reviews_v3_cluster("one-per-target", FakeMetrics::new(120.0, 100.0)).await;
    let mut first = part1_experiment();
    first["spec"]["trafficControl"]["interval"] = json!("1h");
    cluster.apply(&first).await;
    wait_for(&cluster, PART1, 10, iteration_started(1)).await;
    apply_second(&cluster, first).await;
    assert_eq!(
        served_weights(&cluster).await,
        vec![("baseline".to_string(), 80), ("candidate".to_string(), 20)]
    );
    operator.stop().await.unwrap();
}

/// Two replicas with leader election: one reconciles; when it stops, the other takes over
/// without losing or repeating an iteration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_leader_stops() {
    let cluster = cluster("standby").await;
    cluster.apply_file("reviews-v3.yaml").await;
    let election = |identity: &str| iter8_kubernetes::operator::LeaderElection {
        namespace: cluster.ns.clone(),
        lease_name: "iter8-controller".to_string(),
        identity: identity.to_string(),
        duration: Duration::from_secs(3),
    };
    let lease_holder = async || {
        cluster
            .object("coordination.k8s.io/v1", "leases", "iter8-controller")
            .await
            .map(|l| l["spec"]["holderIdentity"].clone())
    };
    let first = Running::start_with(
        &cluster,
        FakeMetrics::new(120.0, 100.0),
        Some(election("first")),
    )
    .await;
    eventually(Duration::from_secs(10), "first leads", async || {
        (lease_holder().await == Some(json!("first"))).then_some(())
    })
    .await;
    let second = Running::start_with(
        &cluster,
        FakeMetrics::new(120.0, 100.0),
        Some(election("second")),
    )
    .await;
    let history = cluster.record(PART1).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    exp["spec"]["trafficControl"]["maxIterations"] = json!(3);
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, iteration_started(1)).await;
    assert_eq!(second.get("/readyz").await.0, 200, "a standby is ready");
    let (_, standby_metrics) = second.get("/metrics").await;
    assert!(
        !standby_metrics.contains("experiment=\"reviews-v3-rollout\""),
        "the standby does not reconcile: {standby_metrics}"
    );

    first.stop().await.unwrap();
    // The handover lost and repeated nothing; the stopping leader releases the Lease, so the
    // standby picks up without a stall.
    succeeds_with_each_iteration_once(&cluster, &history, 30, 3, 2.0).await;
    assert_eq!(lease_holder().await, Some(json!("second")));
    // The metrics follow the status write within the same reconcile.
    second
        .metrics_with("iter8_experiments{phase=\"Completed\"} 1", 5)
        .await;
    second.stop().await.unwrap();
}

/// The iteration count the restart and handover tests rely on sees a repeated iteration (same
/// number, new increment time) and a lost one (a gap).
#[test]
fn iteration_history_shows_repeats_and_gaps() {
    let at = |n: u64, t: &str| json!({"status": {"currentIteration": n, "lastIncrementTime": t}});
    let clean = [
        json!({"status": {}}),
        at(1, "10:00:00Z"),
        at(1, "10:00:00Z"),
        at(2, "10:00:02Z"),
    ];
    assert_eq!(
        iterations(&clean),
        [(1, "10:00:00Z".to_string()), (2, "10:00:02Z".to_string())]
    );
    let repeated = [at(1, "10:00:00Z"), at(2, "10:00:02Z"), at(2, "10:00:03Z")];
    assert_eq!(
        iterations(&repeated)
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        [1, 2, 2]
    );
    let lost = [at(1, "10:00:00Z"), at(3, "10:00:04Z")];
    assert_eq!(
        iterations(&lost)
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        [1, 3]
    );
}

/// Upgrading in place: an experiment iter8 v0.2.1 left at iteration 2 of 4 (its status with
/// int64 nanosecond timestamps and `analysisState: {}`, its progressing routing rules) is
/// continued from that status by this operator and completes; it is neither restarted nor
/// stuck on an unreadable status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_left_by_v0_2_1_is_continued_to_completion() {
    // The namespace v0.2.1 ran in: the stored objects name it (hosts, labels).
    let cluster = cluster("bookinfo-iter8").await;
    cluster.apply_file("reviews-v3.yaml").await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/written-by-v0.2.1.yaml"
    ))
    .unwrap();
    let mut docs = documents(&text);
    let mut exp = docs.remove(0);
    // The status goes in through its subresource, as v0.2.1 wrote it: an apply ignores it.
    let status = exp.as_object_mut().unwrap().remove("status").unwrap();
    for rule in &docs {
        cluster.apply(rule).await;
    }
    cluster.apply(&exp).await;
    let api: kube::Api<iter8_kubernetes::ExperimentResource> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.ns);
    api.patch_status(
        PART1,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
    assert_eq!(
        experiment(&cluster, PART1).await.unwrap()["status"]["startTimestamp"],
        json!(1605866401000000000_i64)
    );

    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    let seen = completes_with(
        &cluster,
        PART1,
        20,
        (
            "Completed",
            "ExperimentSucceeded: All Success Criteria Were Met",
            0,
            100,
        ),
    )
    .await;
    assert!(
        !seen.iter().any(|m| m.contains("Iteration 1 Started")),
        "restarted instead of continued: {seen:#?}"
    );
    let iterations: Vec<String> = iteration_events(&cluster, PART1)
        .await
        .into_iter()
        .map(|(message, _)| message)
        .collect();
    assert_eq!(
        iterations,
        ["Iteration 3 Started", "Iteration 4 Started"],
        "continued from iteration 2"
    );
    let status = &experiment(&cluster, PART1).await.unwrap()["status"];
    // The same instant: the status patch leaves it as v0.2.1 wrote it.
    assert_eq!(status["startTimestamp"], json!(1605866401000000000_i64));
    assert_eq!(status["currentIteration"], 4);
    let vs = virtual_service(&cluster, &cluster.host("reviews"))
        .await
        .unwrap();
    assert_eq!(routes(&vs), vec![("candidate".to_string(), 100)]);
    operator.stop().await.unwrap();
}
