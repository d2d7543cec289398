//! The seed tutorial's parts 2 to 5 through the operator, in the seed's order, with the seed's
//! manifests (examples/bookinfo), a 2 s interval instead of 30 s, and metrics scripted per
//! version as the tutorial describes them. Part 1 runs first as the tutorial requires (its own
//! checks are in operator.rs). At each step: the `kubectl get experiments` table, the status,
//! and the routing objects a real kube-apiserver serves (the operator in process).

mod support;

use iter8_test_support::tutorial_versions;
use std::time::Duration;

use iter8_control_plane::eventually;
use serde_json::{Value, json};
use support::version_metrics::VersionMetrics;
use support::*;

const V3: &str = "reviews-v3-rollout";
const V4: &str = "reviews-v4-rollout";
const V5: &str = "reviews-v5-rollout";
const V6: &str = "reviews-v6-rollout";
const PRODUCTPAGE: &str = "productpage-v2-rollout";

/// Applies an example experiment with the interval shortened; everything else as the seed has
/// it.
async fn apply_experiment(cluster: &Cluster, file: &str) {
    let mut exp = example(file).remove(0);
    assert_eq!(exp["kind"], "Experiment", "{file}");
    exp["spec"]["trafficControl"]["interval"] = json!("2s");
    cluster.apply(&exp).await;
}

/// Waits until the experiment waits for its candidate.
async fn wait_missing_candidate(cluster: &Cluster, name: &str) {
    wait_for(
        cluster,
        name,
        10,
        message_is("TargetsNotFound: Missing Candidate"),
    )
    .await;
}

/// (subset, weight, the DestinationRule labels of that subset) for each route of the rules
/// iter8 manages for `service`.
async fn routes_and_labels(cluster: &Cluster, service: &str) -> Vec<(String, i64, Value)> {
    let host = cluster.host(service);
    let vs = virtual_service(cluster, &host)
        .await
        .expect("the VirtualService exists");
    let dr = destination_rule(cluster, &host)
        .await
        .expect("the DestinationRule exists");
    vs["spec"]["http"][0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let subset = r["destination"]["subset"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let labels = dr["spec"]["subsets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == subset.as_str())
                .map(|s| s["labels"].clone())
                .unwrap_or(Value::Null);
            (subset, r["weight"].as_i64().unwrap_or(0), labels)
        })
        .collect()
}

/// The uids of the VirtualService and DestinationRule for reviews, after checking that their
/// labels are exactly `labels`.
async fn rules_uids_with_labels(cluster: &Cluster, labels: Value) -> (Value, Value) {
    let host = cluster.host("reviews");
    let vs = virtual_service(cluster, &host)
        .await
        .expect("the VirtualService exists");
    let dr = destination_rule(cluster, &host)
        .await
        .expect("the DestinationRule exists");
    assert_eq!(vs["metadata"]["labels"], labels, "VirtualService");
    assert_eq!(dr["metadata"]["labels"], labels, "DestinationRule");
    (vs["metadata"]["uid"].clone(), dr["metadata"]["uid"].clone())
}

fn reviews(version: &str) -> Value {
    json!({"app": "reviews", "version": version})
}

/// Waits until the experiment reports iteration 1, and returns the table at that moment.
async fn table_at_iteration_1(cluster: &Cluster, names: &[&str]) -> String {
    let last = names[names.len() - 1];
    let seen = wait_for(
        cluster,
        last,
        15,
        message_is("IterationUpdate: Iteration 1 Started"),
    )
    .await;
    let table = table(cluster, names).await;
    assert!(
        table.contains("IterationUpdate: Iteration 1 Started"),
        "the 2 s iteration passed before the table was read: {table}\n{seen:#?}"
    );
    table
}

async fn until_completed(cluster: &Cluster, name: &str) -> Vec<String> {
    wait_for(cluster, name, 40, completed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_parts_2_to_5_in_the_seeds_order() {
    // Part 1, step 1: the namespace, the stock metrics, Bookinfo and its gateway.
    let cluster = cluster("tutorial").await;
    cluster.apply_file("bookinfo-gateway.yaml").await;
    let source = VersionMetrics::new(tutorial_versions());
    let queries = source.seen();
    let operator = Running::start(&cluster, source).await;

    // Part 1, the prologue the later parts start from.
    cluster.apply(&part1_experiment()).await;
    cluster.apply_file("reviews-v3.yaml").await;
    until_completed(&cluster, V3).await;
    assert_eq!(
        table(&cluster, &[V3]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n"
    );
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![("candidate".into(), 100, reviews("v3"))]
    );
    // As v0.2.1 leaves them: stable, held by no experiment, no longer marked iter8-created.
    let part1_uids = rules_uids_with_labels(
        &cluster,
        json!({"iter8-tools/host": cluster.host("reviews"), "iter8-tools/role": "stable"}),
    )
    .await;

    // Part 2: reviews-v3 to reviews-v4, the experiment first.
    apply_experiment(&cluster, "canary_reviews-v3_to_reviews-v4.yaml").await;
    wait_missing_candidate(&cluster, V4).await;
    assert_eq!(
        table(&cluster, &[V3, V4]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Pause       TargetsNotFound: Missing Candidate                   reviews-v3   100          reviews-v4   0\n"
    );
    // Waiting for its candidate, the experiment takes part 1's stable rules over as v0.2.1's
    // initializing rules: all traffic still on reviews-v3, now its baseline.
    let initializing: Vec<(String, i64, Value)> = vec![("baseline".into(), 100, reviews("v3"))];
    eventually(Duration::from_secs(10), "initializing rules", || {
        let (cluster, want) = (&cluster, &initializing);
        async move { (routes_and_labels(cluster, "reviews").await == *want).then_some(()) }
    })
    .await;

    cluster.apply_file("reviews-v4.yaml").await;
    assert_eq!(
        table_at_iteration_1(&cluster, &[V3, V4]).await,
        "NAME                 PHASE         STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed     ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Progressing   IterationUpdate: Iteration 1 Started                 reviews-v3   80           reviews-v4   20\n"
    );
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![
            ("baseline".into(), 80, reviews("v3")),
            ("candidate".into(), 20, reviews("v4"))
        ]
    );
    // Part 2 reuses part 1's stable rules (the same objects), now labelled for itself.
    assert_eq!(
        rules_uids_with_labels(
            &cluster,
            json!({"iter8-tools/experiment": format!("reviews-v4-rollout.{}", cluster.ns),
                   "iter8-tools/host": cluster.host("reviews"),
                   "iter8-tools/role": "progressing"}),
        )
        .await,
        part1_uids
    );
    let seen = until_completed(&cluster, V4).await;
    // "traffic will not shift towards the candidate": 80/20 until the end.
    assert!(
        seen.iter()
            .filter(|l| l.starts_with("Progressing"))
            .all(|l| l.ends_with("80/20")),
        "{seen:#?}"
    );
    assert_eq!(
        table(&cluster, &[V4]).await,
        "NAME                 PHASE       STATUS                                           BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v4-rollout   Completed   ExperimentFailed: Not All Success Criteria Met   reviews-v3   100          reviews-v4   0\n"
    );
    let v4 = core_experiment(&cluster, V4).await.status;
    assert_eq!(v4.current_iteration, 6, "all six iterations ran");
    let latency = &v4.assessment.as_ref().unwrap().success_criteria[0];
    assert_eq!(latency.metric_name, "iter8_latency");
    assert!(!latency.success_criterion_met);
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![("baseline".into(), 100, reviews("v3"))]
    );

    // Part 3: reviews-v3 to reviews-v5, the experiment, then the candidate.
    apply_experiment(&cluster, "canary_reviews-v3_to_reviews-v5.yaml").await;
    cluster.apply_file("reviews-v5.yaml").await;
    assert_eq!(
        table_at_iteration_1(&cluster, &[V3, V4, V5]).await,
        "NAME                 PHASE         STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed     ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Completed     ExperimentFailed: Not All Success Criteria Met       reviews-v3   100          reviews-v4   0\n\
         reviews-v5-rollout   Progressing   IterationUpdate: Iteration 1 Started                 reviews-v3   80           reviews-v5   20\n"
    );
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![
            ("baseline".into(), 80, reviews("v3")),
            ("candidate".into(), 20, reviews("v5"))
        ]
    );
    until_completed(&cluster, V5).await;
    assert_eq!(
        table(&cluster, &[V3, V4, V5]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Completed   ExperimentFailed: Not All Success Criteria Met       reviews-v3   100          reviews-v4   0\n\
         reviews-v5-rollout   Completed   ExperimentFailed: Aborted                            reviews-v3   100          reviews-v5   0\n"
    );
    let v5 = core_experiment(&cluster, V5).await.status;
    assert!(
        v5.current_iteration < 6,
        "stopped before the last iteration: {}",
        v5.current_iteration
    );
    let criteria = &v5.assessment.as_ref().unwrap().success_criteria;
    let error_rate = criteria
        .iter()
        .find(|c| c.metric_name == "iter8_error_rate")
        .unwrap();
    assert!(
        error_rate.abort_experiment && !error_rate.success_criterion_met,
        "{criteria:#?}"
    );
    let latency = criteria
        .iter()
        .find(|c| c.metric_name == "iter8_latency")
        .unwrap();
    assert!(
        latency.success_criterion_met && !latency.abort_experiment,
        "reviews-v5 is fast; only its errors abort it: {criteria:#?}"
    );
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![("baseline".into(), 100, reviews("v3"))]
    );

    // Part 4: the custom metric. The extended ConfigMap goes to the operator's metrics
    // namespace first, as in the seed (there `iter8`; here the test's own).
    cluster
        .apply_file("iter8_metrics_extended_telemetry-v2.yaml")
        .await;
    apply_experiment(&cluster, "canary_reviews-v3_to_reviews-v6.yaml").await;
    wait_missing_candidate(&cluster, V6).await;
    assert_eq!(
        table(&cluster, &[V3, V4, V5, V6]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Completed   ExperimentFailed: Not All Success Criteria Met       reviews-v3   100          reviews-v4   0\n\
         reviews-v5-rollout   Completed   ExperimentFailed: Aborted                            reviews-v3   100          reviews-v5   0\n\
         reviews-v6-rollout   Pause       TargetsNotFound: Missing Candidate                   reviews-v3   100          reviews-v6   0\n"
    );
    cluster.apply_file("reviews-v6.yaml").await;
    assert_eq!(
        table_at_iteration_1(&cluster, &[V3, V4, V5, V6]).await,
        "NAME                 PHASE         STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed     ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Completed     ExperimentFailed: Not All Success Criteria Met       reviews-v3   100          reviews-v4   0\n\
         reviews-v5-rollout   Completed     ExperimentFailed: Aborted                            reviews-v3   100          reviews-v5   0\n\
         reviews-v6-rollout   Progressing   IterationUpdate: Iteration 1 Started                 reviews-v3   80           reviews-v6   20\n"
    );
    let seen = until_completed(&cluster, V6).await;
    // "At about every 30s you should see the traffic shift towards reviews-v6 by 20 points."
    for step in ["60/40", "40/60", "20/80"] {
        assert!(seen.iter().any(|l| l.ends_with(step)), "{step}: {seen:#?}");
    }
    assert_eq!(
        table(&cluster, &[V3, V4, V5, V6]).await,
        "NAME                 PHASE       STATUS                                               BASELINE     PERCENTAGE   CANDIDATE    PERCENTAGE\n\
         reviews-v3-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v2   0            reviews-v3   100\n\
         reviews-v4-rollout   Completed   ExperimentFailed: Not All Success Criteria Met       reviews-v3   100          reviews-v4   0\n\
         reviews-v5-rollout   Completed   ExperimentFailed: Aborted                            reviews-v3   100          reviews-v5   0\n\
         reviews-v6-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   reviews-v3   0            reviews-v6   100\n"
    );
    assert_eq!(
        routes_and_labels(&cluster, "reviews").await,
        vec![("candidate".into(), 100, reviews("v6"))]
    );
    // The decision was made on the custom metric, measured with the extension's template.
    let v6 = core_experiment(&cluster, V6).await.status;
    let p90 = &v6.assessment.as_ref().unwrap().success_criteria[0];
    assert_eq!(p90.metric_name, "iter8_90_perc_latency");
    assert!(p90.success_criterion_met);
    let p90_templates: Vec<String> = queries
        .lock()
        .unwrap()
        .iter()
        .filter(|q| q.candidate == "reviews-v6")
        .flat_map(|q| q.templates.clone())
        .map(|(metric, template)| format!("{metric}: {template}"))
        .collect();
    assert!(!p90_templates.is_empty());
    assert!(
        p90_templates.iter().all(|t| t.starts_with(
            "iter8_90_perc_latency: histogram_quantile(0.90, sum(increase(istio_request_duration_milliseconds_bucket"
        )),
        "{p90_templates:#?}"
    );

    // Part 5: productpage-v1 to productpage-v2 through productpage.deployment.com.
    cluster.apply_file("productpage-gateway.yaml").await;
    apply_experiment(&cluster, "canary_productpage-v1_to_productpage-v2.yaml").await;
    wait_missing_candidate(&cluster, PRODUCTPAGE).await;
    cluster.apply_file("productpage-v2.yaml").await;
    assert_eq!(
        table_at_iteration_1(&cluster, &[PRODUCTPAGE]).await,
        "NAME                     PHASE         STATUS                                 BASELINE         PERCENTAGE   CANDIDATE        PERCENTAGE\n\
         productpage-v2-rollout   Progressing   IterationUpdate: Iteration 1 Started   productpage-v1   80           productpage-v2   20\n"
    );
    let productpage_host = cluster.host("productpage");
    let vs = virtual_service(&cluster, &productpage_host).await.unwrap();
    assert_eq!(
        vs["spec"]["hosts"],
        json!([productpage_host, "productpage.deployment.com"])
    );
    assert_eq!(
        vs["spec"]["gateways"],
        json!(["mesh", "productpage-gateway"])
    );
    for route in vs["spec"]["http"][0]["route"].as_array().unwrap() {
        assert_eq!(route["destination"]["port"]["number"], 9080, "{vs:#}");
    }
    let productpage = |v: &str| json!({"app": "productpage", "version": v});
    assert_eq!(
        routes_and_labels(&cluster, "productpage").await,
        vec![
            ("baseline".into(), 80, productpage("v1")),
            ("candidate".into(), 20, productpage("v2"))
        ]
    );
    // The user's own VirtualService for bookinfo.sample.dev is left alone.
    let bookinfo_vs = cluster
        .object(
            "networking.istio.io/v1alpha3",
            "virtualservices",
            "bookinfo",
        )
        .await
        .unwrap();
    assert_eq!(bookinfo_vs["spec"]["gateways"], json!(["bookinfo-gateway"]));
    assert_eq!(bookinfo_vs["metadata"]["generation"], 1);

    until_completed(&cluster, PRODUCTPAGE).await;
    assert_eq!(
        table(&cluster, &[PRODUCTPAGE]).await,
        "NAME                     PHASE       STATUS                                               BASELINE         PERCENTAGE   CANDIDATE        PERCENTAGE\n\
         productpage-v2-rollout   Completed   ExperimentSucceeded: All Success Criteria Were Met   productpage-v1   0            productpage-v2   100\n"
    );
    assert_eq!(
        routes_and_labels(&cluster, "productpage").await,
        vec![("candidate".into(), 100, productpage("v2"))]
    );
    let vs = virtual_service(&cluster, &productpage_host).await.unwrap();
    assert_eq!(
        vs["spec"]["gateways"],
        json!(["mesh", "productpage-gateway"]),
        "the gateway binding stays after the rollout"
    );

    operator.stop().await.unwrap();
}
