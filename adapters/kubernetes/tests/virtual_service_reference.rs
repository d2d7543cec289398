//! `spec.routingReference` to a VirtualService the user owns, through the operator on the fake
//! API server: iter8 shifts the weights of the route to reviews, creates the DestinationRule,
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

fn stored_vs(server: &iter8_fake_apiserver::FakeApiServer) -> Value {
    server
        .object(
            "networking.istio.io",
            "virtualservices",
            NS,
            "reviews-routes",
        )
        .expect("the user's VirtualService")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_virtual_service_rolls_forward_and_keeps_its_other_routes() {
    let (server, client, operator) = reviews_v3_cluster(FakeMetrics::new(120.0, 100.0)).await;
    apply(&client, NS, &user_vs()).await;
    apply(
        &client,
        NS,
        &referencing(
            "VirtualService",
            "networking.istio.io/v1alpha3",
            "reviews-routes",
        ),
    )
    .await;
    completes_with(&server, EXP, 30, ("Completed", SUCCEEDED, 0, 100)).await;

    let vs = stored_vs(&server);
    let original = user_vs();
    assert_eq!(
        vs["spec"]["http"][1]["route"],
        json!([{"destination": {"host": "reviews.bookinfo-iter8.svc.cluster.local", "subset": "candidate"}, "weight": 100}])
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
    assert_eq!(
        labels["iter8-tools/experiment"],
        "reviews-v3-rollout.bookinfo-iter8"
    );
    // iter8's own VirtualService is not created; its DestinationRule is.
    assert!(virtual_service(&server, "reviews.bookinfo-iter8.svc.cluster.local").is_none());
    let dr = destination_rule(&server, "reviews.bookinfo-iter8.svc.cluster.local")
        .expect("the DestinationRule");
    assert_eq!(dr["spec"]["subsets"][0]["name"], "candidate");
    stop_both(operator, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unsupported_reference_pauses_the_experiment() {
    let (server, client, operator) = reviews_v3_cluster(FakeMetrics::new(120.0, 100.0)).await;
    apply(
        &client,
        NS,
        &referencing("VirtualService", "networking.istio.io/v1alpha3", "nowhere"),
    )
    .await;
    wait_for(
        &server,
        EXP,
        10,
        message_is("RoutingRulesError: Referenced rule does not exist: VirtualService bookinfo-iter8/nowhere"),
    )
    .await;
    assert_eq!(
        experiment(&server, EXP).unwrap()["status"]["phase"],
        "Pause"
    );

    apply(&client, NS, &referencing("Service", "v1", "reviews")).await;
    wait_for(&server, EXP, 10, |e| {
        e["status"]["message"].as_str().is_some_and(|m| {
            m.starts_with("RoutingRulesError: Referenced rule not supported: v1 Service")
        })
    })
    .await;
    stop_both(operator, server).await;
}
