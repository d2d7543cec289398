//! `spec.routingReference` to a VirtualService the user owns, through the operator on a real
//! kube-apiserver (one namespace per test): iter8 shifts the weights of the route to reviews, creates the DestinationRule,
//! and leaves the user's other routes, matches and hosts alone; a missing object or another
//! kind pauses the experiment with `RoutingRulesError`.

mod support;

use std::time::Duration;

use iter8_control_plane::eventually;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use support::*;

const EXP: &str = "reviews-v3-rollout";
const SUCCEEDED: &str = "ExperimentSucceeded: All Success Criteria Were Met";

/// The user's VirtualService: ratings first, then reviews for jason (with a match and a
/// timeout), then reviews for everyone else.
fn user_vs() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "reviews-routes"},
        "spec": {
            "hosts": ["reviews", "ratings"],
            "http": [
                {"match": [{"uri": {"prefix": "/ratings"}}], "route": [{"destination": {"host": "ratings"}}]},
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews"}}],
                    "timeout": "5s"
                },
                {"route": [{"destination": {"host": "reviews"}}]}
            ]
        }
    })
}

fn referencing(kind: &str, api_version: &str, name: &str) -> Value {
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["maxIterations"] = json!(2);
    exp["spec"]["routingReference"] =
        json!({"apiVersion": api_version, "kind": kind, "name": name});
    exp
}

async fn stored_vs(cluster: &Cluster) -> Value {
    cluster
        .object(
            "networking.istio.io/v1alpha3",
            "virtualservices",
            "reviews-routes",
        )
        .await
        .expect("the user's VirtualService")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_virtual_service_rolls_forward_and_keeps_its_other_routes() {
    let (cluster, operator) =
        reviews_v3_cluster("users-vs-forward", FakeMetrics::new(120.0, 100.0)).await;
    cluster.apply(&user_vs()).await;
    cluster
        .apply(&referencing(
            "VirtualService",
            "networking.istio.io/v1alpha3",
            "reviews-routes",
        ))
        .await;
    completes_with(&cluster, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;

    let vs = stored_vs(&cluster).await;
    let original = user_vs();
    let host = cluster.host("reviews");
    assert_eq!(
        vs["spec"]["http"][1]["route"],
        json!([{"destination": {"host": host, "subset": "candidate"}, "weight": 100}])
    );
    assert_eq!(vs["spec"]["hosts"], original["spec"]["hosts"]);
    assert_eq!(vs["spec"]["http"][0], original["spec"]["http"][0]);
    assert_eq!(vs["spec"]["http"][2], original["spec"]["http"][2]);
    assert_eq!(
        vs["spec"]["http"][1]["match"],
        original["spec"]["http"][1]["match"]
    );
    assert_eq!(vs["spec"]["http"][1]["timeout"], "5s");
    let labels = &vs["metadata"]["labels"];
    assert_eq!(labels["iter8-tools/external"], "True");
    assert_eq!(labels["iter8-tools/role"], "stable");
    // Stable rules belong to no experiment (as v0.2.1 leaves them): the next one may take them.
    assert_eq!(labels["iter8-tools/experiment"], Value::Null);
    // iter8's own VirtualService is not created; its DestinationRule is.
    assert!(virtual_service(&cluster, &host).await.is_none());
    let dr = destination_rule(&cluster, &host)
        .await
        .expect("the DestinationRule");
    assert_eq!(dr["spec"]["subsets"][0]["name"], "candidate");
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_destination_rule_beside_the_users_virtual_service_is_put_back() {
    let (cluster, operator) =
        reviews_v3_cluster("users-vs-drift", FakeMetrics::new(120.0, 100.0)).await;
    cluster.apply(&user_vs()).await;
    let mut exp = referencing(
        "VirtualService",
        "networking.istio.io/v1alpha3",
        "reviews-routes",
    );
    exp["spec"]["trafficControl"]["maxIterations"] = json!(60);
    cluster.apply(&exp).await;
    wait_for(&cluster, EXP, 10, iteration_started(1)).await;
    let host = cluster.host("reviews");
    let name = rules_name(&host);
    assert!(destination_rule(&cluster, &host).await.is_some());

    // The user's VirtualService routes to subsets: without iter8's DestinationRule the host
    // answers 503, so it comes back with both subsets and the repair is counted.
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "DestinationRule");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "destinationrules");
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client.clone(), &cluster.ns, &resource);
    api.delete(&name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting DestinationRule {name}: {e}"));
    let dr = eventually(Duration::from_secs(10), "the DestinationRule back", || {
        let (cluster, host) = (&cluster, &host);
        async move { destination_rule(cluster, host).await }
    })
    .await;
    assert_eq!(subsets(&dr).len(), 2, "baseline and candidate: {dr:#}");
    operator
        .metrics_with("iter8_routing_repairs_total 1", 10)
        .await;
    // The user's VirtualService is still the one routing.
    assert_eq!(
        stored_vs(&cluster).await["spec"]["http"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    operator.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unsupported_reference_pauses_the_experiment() {
    let (cluster, operator) =
        reviews_v3_cluster("users-vs-missing", FakeMetrics::new(120.0, 100.0)).await;
    cluster
        .apply(&referencing(
            "VirtualService",
            "networking.istio.io/v1alpha3",
            "nowhere",
        ))
        .await;
    wait_for(
        &cluster,
        EXP,
        10,
        message_is(format!(
            "RoutingRulesError: Referenced rule does not exist: VirtualService {}/nowhere",
            cluster.ns
        )),
    )
    .await;
    assert_eq!(
        experiment(&cluster, EXP).await.unwrap()["status"]["phase"],
        "Pause"
    );

    cluster
        .apply(&referencing("Service", "v1", "reviews"))
        .await;
    wait_for(&cluster, EXP, 10, |e| {
        e["status"]["message"].as_str().is_some_and(|m| {
            m.starts_with("RoutingRulesError: Referenced rule not supported: v1 Service")
        })
    })
    .await;
    operator.stop().await.unwrap();
}
