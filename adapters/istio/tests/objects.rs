//! The objects of every stage: exactly the behaviour guide's §5 objects for the tutorial's parts
//! 1 and 5 and the Service-kind variant, valid against Istio's CRD schemas, whole weights.

mod common;

use std::collections::BTreeMap;

use common::{assert_valid, documents, experiment};
use iter8_core::action::{RoutingAction, Winner};
use iter8_core::model::TrafficSplit;
use iter8_istio::build::{self, RoutingTarget, Stage, served_split};
use iter8_istio::labels::bookinfo_labels;
use proptest::prelude::*;
use serde_json::Value;

const PART1: &str = "canary_reviews-v2_to_reviews-v3.yaml";
const PART5: &str = "canary_productpage-v1_to_productpage-v2.yaml";
const SERVICE_KIND: &str = "service-kind_canary_productpage-v1_to_productpage-v2.yaml";

/// The routing target of a tutorial experiment, with Bookinfo's pod-template labels.
fn target(file: &str) -> RoutingTarget {
    let exp = experiment(file);
    let t = RoutingTarget::from_experiment(&exp).expect("routing target");
    let service = exp.spec.target_service.name.clone().unwrap_or_default();
    let b = bookinfo_labels(&service, &t.baseline.name);
    let c = bookinfo_labels(&service, &t.candidate.name);
    t.with_labels(Some(b), Some(c))
}

/// The objects of a stage as JSON documents (VirtualService, then DestinationRule if any).
fn objects(target: &RoutingTarget, stage: Stage) -> Vec<Value> {
    let objs = build::build(target, &stage, true).expect("objects build");
    let mut out = vec![serde_json::to_value(&objs.virtual_service).expect("json")];
    if let Some(dr) = &objs.destination_rule {
        out.push(serde_json::to_value(dr).expect("json"));
    }
    out
}

fn expected(file: &str) -> Vec<Value> {
    documents(&format!("expected/{file}"))
}

fn split(baseline: u32, candidate: u32) -> TrafficSplit {
    TrafficSplit {
        baseline,
        candidate,
    }
}

#[test]
fn part1_initializing_is_baseline_only() {
    let got = objects(&target(PART1), Stage::Initializing);
    assert_eq!(got, expected("part1-initializing.yaml"));
}

#[test]
fn part1_candidate_added_at_zero() {
    let t = target(PART1);
    let stage = Stage::for_action(&RoutingAction::Initialize, true);
    assert_eq!(stage, Stage::Progressing(TrafficSplit::ALL_BASELINE));
    assert_eq!(objects(&t, stage), expected("part1-candidate-added.yaml"));
}

#[test]
fn part1_iteration_one_is_80_20() {
    let stage = Stage::for_action(&RoutingAction::SetSplit(split(80, 20)), true);
    assert_eq!(
        objects(&target(PART1), stage),
        expected("part1-split-80-20.yaml")
    );
}

#[test]
fn part1_final_routes_all_to_the_candidate_and_drops_the_baseline() {
    let stage = Stage::for_action(
        &RoutingAction::Finalize {
            winner: Winner::Candidate,
            split: TrafficSplit::ALL_CANDIDATE,
        },
        true,
    );
    assert_eq!(
        objects(&target(PART1), stage),
        expected("part1-final-candidate.yaml")
    );
}

#[test]
fn rollback_routes_all_to_the_baseline_and_drops_the_candidate() {
    let got = objects(
        &target(PART1),
        Stage::Stable {
            winner: Winner::Baseline,
            split: TrafficSplit::ALL_BASELINE,
        },
    );
    let vs = &got[0];
    assert_eq!(vs["metadata"]["labels"]["iter8-tools/role"], "stable");
    let route = vs["spec"]["http"][0]["route"].as_array().expect("route");
    assert_eq!(route.len(), 1);
    assert_eq!(route[0]["destination"]["subset"], "baseline");
    assert_eq!(route[0]["weight"], 100);
    let subsets = got[1]["spec"]["subsets"].as_array().expect("subsets");
    assert_eq!(subsets.len(), 1);
    assert_eq!(subsets[0]["name"], "baseline");
    assert_eq!(subsets[0]["labels"]["version"], "v2");
}

#[test]
fn on_success_both_keeps_both_with_the_split_and_role_stable() {
    let got = objects(
        &target(PART1),
        Stage::Stable {
            winner: Winner::Both,
            split: split(40, 60),
        },
    );
    let vs = &got[0];
    assert_eq!(vs["metadata"]["labels"]["iter8-tools/role"], "stable");
    let weights: Vec<&Value> = vs["spec"]["http"][0]["route"]
        .as_array()
        .expect("route")
        .iter()
        .map(|r| &r["weight"])
        .collect();
    assert_eq!(weights, [40, 60]);
    assert_eq!(got[1]["spec"]["subsets"].as_array().map(Vec::len), Some(2));
}

#[test]
fn part5_user_facing_hosts_gateways_and_port() {
    let got = objects(&target(PART5), Stage::Progressing(split(80, 20)));
    assert_eq!(got, expected("part5-split-80-20.yaml"));
}

#[test]
fn service_kind_routes_to_the_two_services_without_destination_rule() {
    let got = objects(&target(SERVICE_KIND), Stage::Progressing(split(60, 40)));
    assert_eq!(got, expected("service-kind-split-60-40.yaml"));
}

#[test]
fn service_kind_with_a_service_name_and_port() {
    let mut exp = experiment(SERVICE_KIND);
    exp.spec.target_service.name = Some("productpage".into());
    exp.spec.target_service.port = Some(9080);
    let t = RoutingTarget::from_experiment(&exp).expect("target");
    assert_eq!(
        t.name,
        "productpage.bookinfo-iter8.svc.cluster.local.iter8-experiment"
    );
    assert_eq!(
        t.hosts,
        [
            "productpage.bookinfo-iter8.svc.cluster.local",
            "productpage.example.com"
        ]
    );
    let got = objects(&t, Stage::Progressing(split(100, 0)));
    assert_eq!(got.len(), 1);
    let dest = &got[0]["spec"]["http"][0]["route"][1]["destination"];
    assert_eq!(
        dest["host"],
        "productpage-v2.bookinfo-iter8.svc.cluster.local"
    );
    assert_eq!(dest["port"]["number"], 9080);
    assert!(dest.get("subset").is_none());
    assert_valid(&got[0]);
}

#[test]
fn hosts_and_gateways_have_no_duplicates() {
    let mut exp = experiment(PART5);
    let host = exp.spec.target_service.hosts[0].clone();
    exp.spec.target_service.hosts.push(host.clone());
    let mut mesh = host.clone();
    mesh.gateway = Some("mesh".into());
    mesh.name = Some("productpage.bookinfo-iter8.svc.cluster.local".into());
    exp.spec.target_service.hosts.push(mesh);
    let t = RoutingTarget::from_experiment(&exp).expect("target");
    assert_eq!(
        t.hosts,
        [
            "productpage.bookinfo-iter8.svc.cluster.local",
            "productpage.deployment.com"
        ]
    );
    assert_eq!(t.gateways, ["mesh", "productpage-gateway"]);
}

#[test]
fn targets_need_names_and_a_valid_port() {
    let mut exp = experiment(PART1);
    exp.spec.target_service.name = None;
    let err = RoutingTarget::from_experiment(&exp).expect_err("no service");
    assert_eq!(
        err.to_string(),
        "spec.targetService.name is required for Istio routing"
    );
    let mut exp = experiment(PART1);
    exp.spec.target_service.port = Some(70000);
    let err = RoutingTarget::from_experiment(&exp).expect_err("bad port");
    assert!(err.to_string().contains("70000"), "{err}");
    let mut exp = experiment(PART1);
    exp.spec.target_service.candidate = None;
    assert!(RoutingTarget::from_experiment(&exp).is_err());
}

#[test]
fn destination_rule_needs_the_labels_of_routed_versions() {
    let t = target(PART1).with_labels(
        Some(BTreeMap::from([("app".into(), "reviews".into())])),
        None,
    );
    let err = build::build(&t, &Stage::Progressing(split(90, 10)), true).expect_err("no labels");
    assert_eq!(
        err.to_string(),
        "the pod-template labels of reviews-v3 are unknown"
    );
    // The baseline alone needs only the baseline's labels.
    assert!(build::build(&t, &Stage::Initializing, true).is_ok());
}

#[test]
fn every_stage_validates_against_the_istio_crds() {
    let stages = [
        Stage::Initializing,
        Stage::Progressing(TrafficSplit::ALL_BASELINE),
        Stage::Progressing(split(52, 48)),
        Stage::Stable {
            winner: Winner::Baseline,
            split: TrafficSplit::ALL_BASELINE,
        },
        Stage::Stable {
            winner: Winner::Candidate,
            split: TrafficSplit::ALL_CANDIDATE,
        },
        Stage::Stable {
            winner: Winner::Both,
            split: split(30, 70),
        },
    ];
    let mut checked = 0;
    for file in [PART1, PART5, SERVICE_KIND] {
        let t = target(file);
        for stage in stages {
            for obj in objects(&t, stage) {
                assert_valid(&obj);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * 2 + 6 * 2 + 6);
}

#[test]
fn the_strict_schema_catches_a_misspelt_field() {
    let mut vs = objects(&target(PART5), Stage::Initializing).remove(0);
    vs["spec"]["http"][0]["route"][0]["wieght"] = 100.into();
    let result = std::panic::catch_unwind(|| assert_valid(&vs));
    assert!(result.is_err(), "a misspelt field must fail validation");
}

#[test]
fn the_split_is_read_back_from_what_is_built() {
    for file in [PART1, PART5, SERVICE_KIND] {
        let t = target(file);
        for stage in [
            Stage::Initializing,
            Stage::Progressing(split(64, 36)),
            Stage::Stable {
                winner: Winner::Candidate,
                split: TrafficSplit::ALL_CANDIDATE,
            },
        ] {
            let vs = build::virtual_service(&t, &stage, &t.name, true);
            assert_eq!(
                served_split(&t, &vs),
                Some(stage.split()),
                "{file} {stage:?}"
            );
        }
    }
}

#[test]
fn hand_written_rules_are_read_as_istio_reads_them() {
    let t = target(PART1);
    let yaml = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo-iter8}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: candidate}
      weight: 30
    - destination: {host: reviews, subset: baseline}
      weight: 70
      headers: {request: {set: {x: y}}}
    retries: {attempts: 3}
"#;
    let vs: iter8_istio::VirtualService = serde_saphyr::from_str(yaml).expect("parses");
    assert_eq!(served_split(&t, &vs), Some(split(70, 30)));
    let lone = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews}
spec:
  http:
  - route:
    - destination: {host: reviews.bookinfo-iter8.svc.cluster.local, subset: baseline}
"#;
    let vs: iter8_istio::VirtualService = serde_saphyr::from_str(lone).expect("parses");
    assert_eq!(served_split(&t, &vs), Some(TrafficSplit::ALL_BASELINE));
}

proptest! {
    /// Any split the engine can produce (candidate 0..=100, baseline the rest) and any split at
    /// all gives integer weights that sum to 100, and reads back as the split served.
    #[test]
    fn weights_are_whole_and_sum_to_100(
        candidate in 0u32..=100,
        baseline in 0u32..=300,
        wild in any::<u32>(),
        final_both in any::<bool>(),
    ) {
        let t = target(PART1);
        for s in [TrafficSplit::with_candidate(candidate), split(baseline, wild), split(wild, candidate)] {
            let stage = if final_both {
                Stage::Stable { winner: Winner::Both, split: s }
            } else {
                Stage::Progressing(s)
            };
            let vs = build::virtual_service(&t, &stage, &t.name, true);
            let weights: Vec<i64> = vs.spec.http[0].route.iter().map(|r| r.weight.unwrap_or(-1)).collect();
            prop_assert!(weights.iter().all(|w| (0..=100).contains(w)), "{weights:?}");
            prop_assert_eq!(weights.iter().sum::<i64>(), 100);
            let json = serde_json::to_value(&vs).unwrap();
            for r in json["spec"]["http"][0]["route"].as_array().unwrap() {
                prop_assert!(r["weight"].is_u64());
            }
            prop_assert_eq!(served_split(&t, &vs), Some(stage.split()));
            if s.baseline.checked_add(s.candidate) == Some(100) {
                prop_assert_eq!(stage.split(), s);
            }
        }
    }
}
