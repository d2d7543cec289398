//! The routes iter8 computes for a user's HTTPRoute at each stage (pure, no API server): valid
//! against the v1.6.1 standard-channel CRD, the target rule's weights as asked, everything else
//! the user wrote unchanged, and each refusal's message.

mod common;

use common::*;
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::{TargetKind, TrafficSplit};
use iter8_gateway_api::route::{self, Role, RouteTarget, Stage};
use iter8_gateway_api::{GatewayError, HTTPRoute};
use serde_json::{Value, json};

fn target() -> RouteTarget {
    RouteTarget::from_experiment(&experiment()).expect("the example experiment has a target")
}

fn user_route(file: &str) -> HTTPRoute {
    serde_json::from_value(example_object(file, "HTTPRoute")).expect("the example route parses")
}

/// Every stage an experiment goes through.
fn stages() -> Vec<(&'static str, RoutingAction)> {
    vec![
        ("initialize", RoutingAction::Initialize),
        (
            "60/40",
            RoutingAction::SetSplit(TrafficSplit {
                baseline: 60,
                candidate: 40,
            }),
        ),
        (
            "roll forward",
            RoutingAction::Finalize {
                winner: Winner::Candidate,
                split: TrafficSplit::ALL_CANDIDATE,
            },
        ),
        (
            "roll back",
            RoutingAction::Finalize {
                winner: Winner::Baseline,
                split: TrafficSplit::ALL_BASELINE,
            },
        ),
        (
            "both stay",
            RoutingAction::Finalize {
                winner: Winner::Both,
                split: TrafficSplit {
                    baseline: 30,
                    candidate: 70,
                },
            },
        ),
    ]
}

/// `(name, weight)` of a rule's backendRefs.
fn backends(route: &Value, rule: usize) -> Vec<(String, i64)> {
    route["spec"]["rules"][rule]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

fn at(route: &HTTPRoute, action: &RoutingAction) -> Value {
    let changed = route::at_stage(route, &target(), &Stage::for_action(action)).unwrap();
    serde_json::to_value(changed).unwrap()
}

#[test]
fn the_example_routes_are_valid_at_every_stage() {
    for file in ["gateway.yaml", "mesh-route.yaml"] {
        let route = user_route(file);
        assert_valid(&serde_json::to_value(&route).unwrap());
        for (name, action) in stages() {
            let changed = at(&route, &action);
            assert_valid(&changed);
            let stage = Stage::for_action(&action);
            let body = route::apply_body(
                &serde_json::from_value(changed).unwrap(),
                &target(),
                stage.role,
            );
            let body = serde_json::to_value(body).unwrap();
            assert_valid(&body);
            eprintln!("{file} {name}: valid");
        }
    }
}

#[test]
fn each_stage_sets_the_weights_of_the_rule_that_routes_to_the_baseline() {
    let route = user_route("gateway.yaml");
    // Rule 1 (/status) routes to web-v1 too, but rule 0 comes first: it is the one changed.
    let expect = [
        ("initialize", vec![("web-v1", 100), ("web-v2", 0)]),
        ("60/40", vec![("web-v1", 60), ("web-v2", 40)]),
        ("roll forward", vec![("web-v2", 100)]),
        ("roll back", vec![("web-v1", 100)]),
        ("both stay", vec![("web-v1", 30), ("web-v2", 70)]),
    ];
    for ((name, action), (expected_name, weights)) in stages().iter().zip(expect) {
        assert_eq!(*name, expected_name);
        let changed = at(&route, action);
        let weights: Vec<(String, i64)> =
            weights.iter().map(|(n, w)| (n.to_string(), *w)).collect();
        assert_eq!(backends(&changed, 0), weights, "{name}");
        assert_eq!(backends(&changed, 1), [("web-v1".to_string(), 1)], "{name}");
        let role = if name.starts_with("roll") || *name == "both stay" {
            "stable"
        } else {
            "progressing"
        };
        let labels = &changed["metadata"]["labels"];
        assert_eq!(labels["iter8-tools/role"], role, "{name}");
        assert_eq!(labels["iter8-tools/experiment"], "web-v2-rollout.demo");
        assert_eq!(labels["iter8-tools/external"], "True");
    }
}

#[test]
fn the_candidate_is_reached_as_the_baseline_is() {
    let changed = at(&user_route("gateway.yaml"), &RoutingAction::Initialize);
    let refs = changed["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap();
    assert_eq!(refs[1], json!({"name": "web-v2", "port": 80, "weight": 0}));
}

#[test]
fn everything_else_the_user_wrote_stays_as_it_is() {
    let mut original = example_object("gateway.yaml", "HTTPRoute");
    // Fields iter8 does not model: a rule name, timeouts, a backendRef filter, a label.
    original["metadata"]["labels"] = json!({"team": "web"});
    original["spec"]["rules"][0]["name"] = json!("main");
    original["spec"]["rules"][0]["timeouts"] = json!({"request": "5s"});
    original["spec"]["rules"][0]["backendRefs"][0]["filters"] = json!([
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-v", "value": "1"}]}}
    ]);
    original["spec"]["rules"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "matches": [{"headers": [{"name": "x-canary", "value": "never"}]}],
            "backendRefs": [{"name": "other", "port": 8080, "weight": 3}]
        }));
    let route: HTTPRoute = serde_json::from_value(original.clone()).unwrap();
    for (name, action) in stages() {
        let changed = at(&route, &action);
        assert_valid(&changed);
        // Take iter8's changes out again: the rest must be the original.
        let mut rest = changed.clone();
        for key in [
            "iter8-tools/experiment",
            "iter8-tools/role",
            "iter8-tools/external",
        ] {
            rest["metadata"]["labels"]
                .as_object_mut()
                .unwrap()
                .remove(key);
        }
        rest["spec"]["rules"][0]["backendRefs"] =
            original["spec"]["rules"][0]["backendRefs"].clone();
        assert_eq!(rest, original, "{name}");
        // The copy of the baseline's backendRef keeps its filter.
        for b in changed["spec"]["rules"][0]["backendRefs"]
            .as_array()
            .unwrap()
        {
            assert_eq!(b["filters"][0]["type"], "RequestHeaderModifier", "{name}");
        }
    }
}

#[test]
fn other_backends_of_the_rule_keep_their_weight() {
    let mut doc = example_object("gateway.yaml", "HTTPRoute");
    doc["spec"]["rules"][0]["backendRefs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "web-legacy", "port": 80, "weight": 5}));
    let route: HTTPRoute = serde_json::from_value(doc).unwrap();
    let changed = at(
        &route,
        &RoutingAction::SetSplit(TrafficSplit {
            baseline: 80,
            candidate: 20,
        }),
    );
    assert_eq!(
        backends(&changed, 0),
        [
            ("web-v1".to_string(), 80),
            ("web-v2".to_string(), 20),
            ("web-legacy".to_string(), 5)
        ]
    );
}

#[test]
fn the_served_split_is_the_share_of_the_two_versions() {
    let route = user_route("gateway.yaml");
    let t = target();
    // The user's route: web-v1 alone, without a weight (Gateway API reads 1).
    assert_eq!(
        route::served_split(&route, &t),
        Some(TrafficSplit::ALL_BASELINE)
    );
    for (_, action) in stages() {
        let changed: HTTPRoute = serde_json::from_value(at(&route, &action)).unwrap();
        assert_eq!(
            route::served_split(&changed, &t),
            Some(Stage::for_action(&action).split())
        );
    }
    // Relative weights: 1 and 3 are 25/75.
    let mut doc = serde_json::to_value(&route).unwrap();
    doc["spec"]["rules"][0]["backendRefs"] =
        json!([{"name": "web-v1", "port": 80}, {"name": "web-v2", "port": 80, "weight": 3}]);
    let relative: HTTPRoute = serde_json::from_value(doc).unwrap();
    assert_eq!(
        route::served_split(&relative, &t),
        Some(TrafficSplit {
            baseline: 25,
            candidate: 75
        })
    );
}

#[test]
fn a_route_iter8_cannot_work_on_is_refused_with_the_reason() {
    let t = target();
    let stage = Stage::for_action(&RoutingAction::Initialize);
    let mut doc = example_object("gateway.yaml", "HTTPRoute");

    doc["spec"]["rules"] = json!([]);
    let empty: HTTPRoute = serde_json::from_value(doc.clone()).unwrap();
    let err = route::at_stage(&empty, &t, &stage).unwrap_err();
    assert_eq!(err.to_string(), "Empty HTTPRoute: demo/web has no rules");

    doc["spec"]["rules"] = json!([{"backendRefs": [{"name": "elsewhere", "port": 80}]}]);
    let unrelated: HTTPRoute = serde_json::from_value(doc.clone()).unwrap();
    let err = route::at_stage(&unrelated, &t, &stage).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTPRoute demo/web has no rule with a backendRef to Service web-v1 or web-v2"
    );

    // A backendRef to web-v1 of another namespace is another Service.
    doc["spec"]["rules"] =
        json!([{"backendRefs": [{"name": "web-v1", "namespace": "other", "port": 80}]}]);
    let elsewhere: HTTPRoute = serde_json::from_value(doc.clone()).unwrap();
    assert!(matches!(
        route::at_stage(&elsewhere, &t, &stage),
        Err(GatewayError::NoMatchingRule { .. })
    ));

    doc["spec"]["rules"] = json!([{"backendRefs": [
        {"name": "web-v1", "port": 80}, {"name": "web-v1", "port": 8080}
    ]}]);
    let twice: HTTPRoute = serde_json::from_value(doc).unwrap();
    let err = route::at_stage(&twice, &t, &stage).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Multiple backendRefs to Service web-v1 in rule 0 of HTTPRoute demo/web"
    );
}

#[test]
fn only_service_kind_experiments_route_with_an_http_route() {
    let mut exp = experiment();
    exp.spec.target_service.kind = Some(TargetKind::Deployment);
    let err = RouteTarget::from_experiment(&exp).unwrap_err();
    assert!(matches!(err, GatewayError::NotServiceKind));
    assert!(err.to_string().contains("must be Service"), "{err}");

    let mut exp = experiment();
    exp.spec.routing_reference = None;
    assert!(matches!(
        RouteTarget::from_experiment(&exp),
        Err(GatewayError::NoReference)
    ));
}

#[test]
fn the_applied_object_carries_only_the_rules_and_iter8s_labels() {
    let mut doc = example_object("gateway.yaml", "HTTPRoute");
    doc["metadata"]["resourceVersion"] = json!("42");
    doc["metadata"]["labels"] = json!({"team": "web"});
    let route: HTTPRoute = serde_json::from_value(doc).unwrap();
    let stage = Stage::for_action(&RoutingAction::Initialize);
    let changed = route::at_stage(&route, &target(), &stage).unwrap();
    let body =
        serde_json::to_value(route::apply_body(&changed, &target(), Role::Progressing)).unwrap();
    assert_eq!(
        body["metadata"],
        json!({
            "name": "web",
            "namespace": "demo",
            "resourceVersion": "42",
            "labels": {
                "iter8-tools/experiment": "web-v2-rollout.demo",
                "iter8-tools/external": "True",
                "iter8-tools/role": "progressing"
            }
        })
    );
    let spec_keys: Vec<&String> = body["spec"].as_object().unwrap().keys().collect();
    assert_eq!(spec_keys, ["rules"]);
    assert_eq!(
        body["spec"]["rules"],
        serde_json::to_value(&changed.spec.rules).unwrap()
    );
}

#[test]
fn the_schema_check_refuses_what_the_crd_refuses() {
    let valid = example_object("gateway.yaml", "HTTPRoute");
    for (what, change) in [
        (
            "a misspelt field",
            json!({"backendRef": [{"name": "web-v1", "port": 80}]}),
        ),
        (
            "a negative weight",
            json!({"backendRefs": [{"name": "web-v1", "port": 80, "weight": -1}]}),
        ),
    ] {
        let mut bad = valid.clone();
        bad["spec"]["rules"][0] = change;
        let refused = std::panic::catch_unwind(|| assert_valid(&bad)).is_err();
        assert!(refused, "{what} passed the schema check");
    }
}

#[test]
fn before_the_candidate_exists_the_rule_sends_everything_to_the_baseline() {
    // The router applies this stage for an `Initialize` while the candidate's Service is
    // missing: no backendRef to a Service that is not there.
    let route = user_route("gateway.yaml");
    let stage = Stage::initializing();
    let changed = route::at_stage(&route, &target(), &stage).unwrap();
    let body = route::apply_body(&changed, &target(), stage.role);
    let body = serde_json::to_value(body).unwrap();
    assert_valid(&body);
    assert_eq!(backends(&body, 0), [("web-v1".to_string(), 100)]);
    assert_eq!(
        body["metadata"]["labels"]["iter8-tools/role"],
        "initializing"
    );
    assert_eq!(
        route::served_split(&changed, &target()),
        Some(TrafficSplit::ALL_BASELINE)
    );
}
