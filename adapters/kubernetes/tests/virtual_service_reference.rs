//! `spec.routingReference` to a VirtualService the user owns, through the operator on a real
//! kube-apiserver (one namespace per test): iter8 shifts the weights of the route to reviews, creates the DestinationRule,
//! and leaves the user's other routes, matches and hosts alone; a missing object or another
//! kind pauses the experiment with `RoutingRulesError`.

mod support;

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
