//! iter8 v0.2.1's initializing rules and events, and routing drift repaired, end to end: the
//! operator in process against a real kube-apiserver (one namespace per test), Istio routing
//! through iter8-istio, metrics from a scripted source, a 1 s interval.

mod support;

use std::time::Duration;

use iter8_control_plane::eventually;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;
use support::*;

const PART1: &str = "reviews-v3-rollout";

/// (reason, message) of the core/v1 Events involving the experiment, oldest first, as
/// `kubectl describe experiment` lists them.
async fn events(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let mut found: Vec<Event> = api
        .list(&Default::default())
        .await
        .expect("listing Events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    found.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    });
    found
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Whether `wanted` appears in `seen` in this order (other events may come between).
fn in_order(seen: &[(String, String)], wanted: &[(&str, &str)]) -> bool {
    let mut rest = seen.iter();
    wanted
        .iter()
        .all(|(r, m)| rest.any(|(sr, sm)| sr == r && sm == m))
}

/// `kubectl delete` of one of iter8's Istio rules (`virtualservices` or `destinationrules`).
async fn delete_rule(cluster: &Cluster, plural: &str) {
    let kind = match plural {
        "virtualservices" => "VirtualService",
        _ => "DestinationRule",
    };
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &cluster.ns, &resource);
    let name = rules_name(&cluster.host("reviews"));
    api.delete(&name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting {kind} {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initializing_rules_route_all_traffic_to_the_baseline_until_the_candidate_exists() {
    let cluster = cluster("init-rules").await;
    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["maxIterations"] = json!(2);
    cluster.apply(&exp).await;
    wait_for(
        &cluster,
        PART1,
        10,
        message_is("TargetsNotFound: Missing Candidate"),
    )
    .await;

    // As v0.2.1's detectTargets: rules as soon as the Service and the baseline exist, role
    // `initializing`, the baseline alone in the VirtualService and the DestinationRule.
    let host = cluster.host("reviews");
    let vs = eventually(Duration::from_secs(10), "initializing rules", || {
        let (cluster, host) = (&cluster, &host);
        async move { virtual_service(cluster, host).await }
    })
    .await;
    assert_eq!(role(&vs), "initializing", "{vs:#}");
    assert_eq!(routes(&vs), [("baseline".to_string(), 100)], "{vs:#}");
    let dr = destination_rule(&cluster, &host)
        .await
        .expect("the DestinationRule exists");
    assert_eq!(role(&dr), "initializing", "{dr:#}");
    assert_eq!(
        subsets(&dr),
        [(
            "baseline".to_string(),
            json!({"app": "reviews", "version": "v2"})
        )]
    );
    assert_eq!(
        experiment(&cluster, PART1).await.unwrap()["status"]["startTimestamp"],
        serde_json::Value::Null,
        "not started while the candidate is missing"
    );

    // The candidate comes: the rules add it at 0 and the experiment runs to the end.
    cluster.apply_file("reviews-v3.yaml").await;
    wait_for(&cluster, PART1, 30, completed).await;
    let seen = eventually(
        Duration::from_secs(10),
        "the ExperimentSucceeded event",
        || {
            let cluster = &cluster;
            async move {
                let seen = events(cluster, PART1).await;
                seen.iter()
                    .any(|(r, _)| r == "ExperimentSucceeded")
                    .then_some(seen)
            }
        },
    )
    .await;
    // v0.2.1's reasons and texts (an empty text shows as the reason).
    assert!(
        in_order(
            &seen,
            &[
                ("SyncMetricsSucceeded", "SyncMetricsSucceeded"),
                ("TargetsNotFound", "Missing Candidate"),
                ("TargetsFound", "TargetsFound"),
                ("RoutingRulesReady", "RoutingRulesReady"),
                ("AnalyticsServiceRunning", "AnalyticsServiceRunning"),
                (
                    "IterationSucceeded",
                    "New Traffic, baseline: 80, candidate: 20"
                ),
                ("IterationUpdate", "Iteration 1 Started"),
                ("ExperimentSucceeded", "All Success Criteria Were Met"),
            ]
        ),
        "{seen:#?}"
    );
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_routing_rules_are_put_back_and_counted() {
    let (cluster, operator) = reviews_v3_cluster("drift", FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["maxIterations"] = json!(60);
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 10, iteration_started(1)).await;
    let host = cluster.host("reviews");

    // Without its DestinationRule the whole host answers 503: it comes back, with its subsets.
    delete_rule(&cluster, "destinationrules").await;
    let dr = eventually(Duration::from_secs(10), "the DestinationRule back", || {
        let (cluster, host) = (&cluster, &host);
        async move { destination_rule(cluster, host).await }
    })
    .await;
    assert_eq!(
        subsets(&dr).len(),
        2,
        "baseline and candidate subsets: {dr:#}"
    );
    operator
        .metrics_with("iter8_routing_repairs_total 1", 10)
        .await;

    // The VirtualService too, with the split the status shows.
    delete_rule(&cluster, "virtualservices").await;
    let vs = eventually(Duration::from_secs(10), "the VirtualService back", || {
        let (cluster, host) = (&cluster, &host);
        async move { virtual_service(cluster, host).await }
    })
    .await;
    assert_eq!(role(&vs), "progressing", "{vs:#}");
    operator
        .metrics_with("iter8_routing_repairs_total 2", 10)
        .await;

    let name = rules_name(&host);
    let repairs: Vec<String> = events(&cluster, PART1)
        .await
        .into_iter()
        .filter(|(r, _)| r == "RoutingRulesRepaired")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(repairs.len(), 2, "{repairs:#?}");
    assert!(
        repairs[0].starts_with(&format!(
            "DestinationRule {}/{name} missing: put back with baseline ",
            cluster.ns
        )),
        "{repairs:#?}"
    );
    assert!(
        repairs[1].starts_with(&format!(
            "VirtualService {}/{name} missing: put back with baseline ",
            cluster.ns
        )),
        "{repairs:#?}"
    );
    operator.stop().await.unwrap();
}
