//! `spec.routingReference` to a VirtualService the user owns (pure, no API server): iter8
//! changes only the target route's destinations and adds its labels; the user's other routes,
//! matches, hosts and gateways stay; each refusal has v0.2's wording.

mod common;

use common::{assert_valid, experiment};
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{RoutingReference, TrafficSplit};
use iter8_istio::build::{RoutingTarget, Stage, route_split};
use iter8_istio::labels::bookinfo_labels;
use iter8_istio::reference::{self, apply_body, at_stage, target_route};
use iter8_istio::{IstioError, VirtualService};
use serde_json::{Value, json};

/// The user's VirtualService for reviews: a route for ratings first, then a route for jason
/// (with a match, a timeout and retries) and a default route, both to reviews.
fn user_vs() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "reviews-routes", "namespace": "bookinfo-iter8", "labels": {"team": "books"}},
        "spec": {
            "hosts": ["reviews", "ratings"],
            "gateways": ["mesh"],
            "http": [
                {"match": [{"uri": {"prefix": "/ratings"}}], "route": [{"destination": {"host": "ratings"}}]},
                {
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                    "timeout": "5s",
                    "retries": {"attempts": 3, "perTryTimeout": "2s"}
                },
                {"route": [{"destination": {"host": "reviews.bookinfo-iter8.svc.cluster.local"}}]}
            ],
            "exportTo": ["."]
        }
    })
}

fn target() -> RoutingTarget {
    let mut exp = experiment("canary_reviews-v2_to_reviews-v3.yaml");
    exp.spec.routing_reference = Some(RoutingReference {
        api_version: Some("networking.istio.io/v1alpha3".into()),
        kind: Some("VirtualService".into()),
        name: Some("reviews-routes".into()),
        namespace: None,
    });
    RoutingTarget::from_experiment(&exp).unwrap().with_labels(
        Some(bookinfo_labels("reviews", "reviews-v2")),
        Some(bookinfo_labels("reviews", "reviews-v3")),
    )
}

fn vs(doc: Value) -> VirtualService {
    serde_json::from_value(doc).unwrap()
}

fn stages() -> Vec<Stage> {
    vec![
        Stage::for_action(&RoutingAction::Initialize, true),
        Stage::for_action(
            &RoutingAction::SetSplit(TrafficSplit {
                baseline: 60,
                candidate: 40,
            }),
            true,
        ),
        Stage::for_action(
            &RoutingAction::Finalize {
                winner: Winner::Candidate,
                split: TrafficSplit::ALL_CANDIDATE,
            },
            true,
        ),
    ]
}

#[test]
fn only_the_first_route_to_the_service_changes() {
    let original = user_vs();
    let t = target();
    for stage in stages() {
        let changed = at_stage(&vs(original.clone()), &t, &stage, false).unwrap();
        let json = serde_json::to_value(&changed).unwrap();
        assert_valid(&json);
        assert_eq!(route_split(&t, &changed.spec.http[1]), Some(stage.split()));
        // Put the target route's destinations back: the rest is the user's.
        let mut rest = json.clone();
        rest["spec"]["http"][1]["route"] = original["spec"]["http"][1]["route"].clone();
        let labels = rest["metadata"]["labels"].as_object_mut().unwrap();
        // Stable rules carry no experiment label (as v0.2.1 leaves them); the others do.
        let stable = labels.get("iter8-tools/role") == Some(&serde_json::json!("stable"));
        assert_eq!(
            labels.remove("iter8-tools/experiment").is_some(),
            !stable,
            "experiment label: {json:#}"
        );
        for key in [
            "iter8-tools/role",
            "iter8-tools/host",
            "iter8-tools/external",
        ] {
            assert!(labels.remove(key).is_some(), "{key} missing: {json:#}");
        }
        assert_eq!(rest, original);
        assert_eq!(json["metadata"]["labels"]["iter8-tools/external"], "True");
        assert!(json["metadata"]["labels"].get("iter8-tools/init").is_none());
    }
}

#[test]
fn the_applied_object_carries_only_the_routes_and_iter8s_labels() {
    let mut doc = user_vs();
    doc["metadata"]["resourceVersion"] = json!("7");
    let t = target();
    let stage = stages()[1];
    let changed = at_stage(&vs(doc), &t, &stage, false).unwrap();
    let body = serde_json::to_value(apply_body(&changed, &t, &stage)).unwrap();
    assert_valid(&body);
    let spec_keys: Vec<&String> = body["spec"].as_object().unwrap().keys().collect();
    assert_eq!(spec_keys, ["http"]);
    assert_eq!(body["metadata"]["resourceVersion"], "7");
    assert!(body["metadata"]["labels"].get("team").is_none());
    assert_eq!(body["spec"]["http"][0], user_vs()["spec"]["http"][0]);
}

#[test]
fn once_held_the_route_with_both_versions_is_found_again() {
    let t = target();
    let changed = at_stage(&vs(user_vs()), &t, &stages()[1], false).unwrap();
    assert_eq!(target_route(&changed, &t, true).unwrap(), 1);
}

#[test]
fn each_refusal_has_its_message() {
    let t = target();
    let stage = stages()[0];
    let mut empty = user_vs();
    empty["spec"]["http"] = json!([]);
    assert_eq!(
        at_stage(&vs(empty), &t, &stage, false)
            .unwrap_err()
            .to_string(),
        "Empty HttpRoute: VirtualService bookinfo-iter8/reviews-routes has no http routes"
    );
    let mut twice = user_vs();
    twice["spec"]["http"][1]["route"] = json!([
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 50}
    ]);
    let err = at_stage(&vs(twice), &t, &stage, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Multiple host-matching routes found: http[1]"),
        "{err}"
    );
    let mut elsewhere = user_vs();
    elsewhere["spec"]["http"] = json!([{"route": [{"destination": {"host": "ratings"}}]}]);
    assert!(matches!(
        at_stage(&vs(elsewhere), &t, &stage, false),
        Err(IstioError::NoHostMatchingRoute { .. })
    ));
    let other_kind = RoutingReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some("reviews".into()),
        namespace: None,
    };
    let err = reference::referenced(&other_kind, "bookinfo-iter8")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Referenced rule not supported: v1 Service"),
        "{err}"
    );
    let missing = IstioError::ReferenceNotFound {
        kind: "VirtualService",
        namespace: "bookinfo-iter8".into(),
        name: "reviews-routes".into(),
    };
    assert_eq!(
        missing.to_string(),
        "Referenced rule does not exist: VirtualService bookinfo-iter8/reviews-routes"
    );
}
