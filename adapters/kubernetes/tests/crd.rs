//! The generated CRD: names, printer columns, the status subresource, the OpenAPI validation
//! (checked by validating manifests against it), and reading resources into the core's model.

use iter8_core::model::{OnSuccess, Strategy, TargetKind, ToleranceType, UserAction};
use iter8_kubernetes::crd::{self, ExperimentResource};
use serde_json::{Value, json};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/bookinfo");

fn crd_json() -> Value {
    serde_json::to_value(crd::crd()).unwrap()
}

fn schema() -> Value {
    crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The experiments of every example manifest, as JSON.
fn examples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .chain(std::fs::read_dir(format!("{EXAMPLES}/service-kind")).unwrap())
        .chain(std::fs::read_dir(format!("{EXAMPLES}/../gateway-api")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs {
            if doc["kind"] == "Experiment" {
                out.push((path.display().to_string(), doc));
            }
        }
    }
    assert!(out.len() >= 6, "{out:?}");
    out
}

/// Errors of validating `doc` against the CRD's schema (OpenAPI v3 is JSON Schema draft 4
/// plus `nullable` and `x-kubernetes-*`, which a draft-4 validator ignores).
fn problems(doc: &Value) -> Vec<String> {
    let validator = jsonschema::draft4::new(&schema()).unwrap();
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn names_scope_and_subresources_are_iter8s() {
    let crd = crd_json();
    assert_eq!(crd["metadata"]["name"], "experiments.iter8.tools");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "iter8.tools");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "Experiment");
    assert_eq!(spec["names"]["plural"], "experiments");
    assert_eq!(spec["names"]["singular"], "experiment");
    assert_eq!(spec["names"]["shortNames"], json!(["exp"]));
    // As v0.2.1: `kubectl get all` and `kubectl get iter8` list experiments.
    assert_eq!(spec["names"]["categories"], json!(["all", "iter8"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"], json!({"status": {}}));
}

#[test]
fn printer_columns_are_the_tutorials() {
    let columns = crd_json()["spec"]["versions"][0]["additionalPrinterColumns"].clone();
    let got: Vec<(String, String, String)> = columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_uppercase(),
                c["jsonPath"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("PHASE", ".status.phase", "string"),
        ("STATUS", ".status.message", "string"),
        ("BASELINE", ".spec.targetService.baseline", "string"),
        (
            "PERCENTAGE",
            ".status.trafficSplitPercentage.baseline",
            "integer",
        ),
        ("CANDIDATE", ".spec.targetService.candidate", "string"),
        (
            "PERCENTAGE",
            ".status.trafficSplitPercentage.candidate",
            "integer",
        ),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(got, want);
    // kubectl adds NAME first: the headers are the core table's.
    let mut headers = vec!["NAME".to_string()];
    headers.extend(got.iter().map(|c| c.0.clone()));
    assert_eq!(headers, iter8_core::table::HEADERS.to_vec());
}

#[test]
fn enums_are_the_cores_known_values() {
    let s = schema();
    let values = |pointer: &str| -> Vec<String> {
        s.pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let known = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let spec = "/properties/spec/properties";
    assert_eq!(
        values(&format!("{spec}/trafficControl/properties/strategy/enum")),
        known(Strategy::KNOWN)
    );
    assert_eq!(
        values(&format!("{spec}/trafficControl/properties/onSuccess/enum")),
        known(OnSuccess::KNOWN)
    );
    assert_eq!(
        values(&format!("{spec}/targetService/properties/kind/enum")),
        known(TargetKind::KNOWN)
    );
    assert_eq!(
        values(&format!(
            "{spec}/analysis/properties/successCriteria/items/properties/toleranceType/enum"
        )),
        known(ToleranceType::KNOWN)
    );
    assert_eq!(values("/properties/action/enum"), known(UserAction::KNOWN));
    assert_eq!(values("/required"), vec!["spec"]);
    assert_eq!(
        values(&format!("{spec}/targetService/required")),
        vec!["baseline", "candidate"]
    );
    // `action` sits beside `spec`, not inside it.
    assert!(s.pointer(&format!("{spec}/action")).is_none());
}

#[test]
fn every_example_passes_the_schema_and_reads_as_the_core_reads_it() {
    for (path, doc) in examples() {
        assert_eq!(problems(&doc), Vec::<String>::new(), "{path}");
        let resource: ExperimentResource = serde_json::from_value(doc.clone()).unwrap();
        let via_kube = crd::to_core(&resource).unwrap();
        let direct = iter8_core::manifest::parse_document(0, doc)
            .unwrap()
            .experiment;
        assert_eq!(via_kube, direct, "{path}");
    }
}

#[test]
fn the_schema_rejects_what_it_can_express() {
    let (_, base) = examples().remove(0);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/spec/trafficControl/trafficStepSize",
            json!(0),
            "/spec/trafficControl/trafficStepSize",
        ),
        (
            "/spec/trafficControl/trafficStepSize",
            json!(101),
            "/spec/trafficControl/trafficStepSize",
        ),
        (
            "/spec/trafficControl/maxTrafficPercentage",
            json!(0),
            "/spec/trafficControl/maxTrafficPercentage",
        ),
        (
            "/spec/trafficControl/maxIterations",
            json!(0),
            "/spec/trafficControl/maxIterations",
        ),
        (
            "/spec/trafficControl/strategy",
            json!("fastest"),
            "/spec/trafficControl/strategy",
        ),
        (
            "/spec/trafficControl/onSuccess",
            json!("everyone"),
            "/spec/trafficControl/onSuccess",
        ),
        (
            "/spec/trafficControl/interval",
            json!("30 seconds"),
            "/spec/trafficControl/interval",
        ),
        (
            "/spec/targetService/kind",
            json!("StatefulSet"),
            "/spec/targetService/kind",
        ),
        (
            "/spec/analysis/successCriteria/0/toleranceType",
            json!("ratio"),
            "/spec/analysis/successCriteria/0/toleranceType",
        ),
        ("/action", json!("abort"), "/action"),
    ];
    for (pointer, value, want) in cases {
        let mut doc = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = value.clone();
        let found = problems(&doc);
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{want}:"))),
            "{pointer} = {value}: {found:?}"
        );
    }
    let mut doc = base.clone();
    doc["spec"]["targetService"]
        .as_object_mut()
        .unwrap()
        .remove("candidate");
    assert!(
        problems(&doc)
            .iter()
            .any(|p| p.contains("candidate") && p.contains("required")),
        "{:?}",
        problems(&doc)
    );
    let mut doc = base.clone();
    doc["spec"]["analysis"]["successCriteria"][0]
        .as_object_mut()
        .unwrap()
        .remove("tolerance");
    assert!(!problems(&doc).is_empty());
}

#[test]
fn a_wrong_type_is_reported_with_its_field_path() {
    let (_, mut doc) = examples().remove(0);
    doc["spec"]["trafficControl"]["maxIterations"] = json!("eight");
    let resource: ExperimentResource = serde_json::from_value(doc).unwrap();
    let err = crd::to_core(&resource).unwrap_err();
    assert_eq!(err.path, "spec.trafficControl.maxIterations", "{err}");
}

#[test]
fn the_crd_yaml_reads_back_as_the_crd() {
    let yaml = crd::crd_yaml().unwrap();
    let back: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, crd_json());
}

#[test]
fn the_schema_takes_a_routing_reference_and_requires_its_name() {
    let path = format!("{EXAMPLES}/../gateway-api/canary_web-v1_to_web-v2.yaml");
    let mut exp: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(exp["spec"]["routingReference"]["kind"], "HTTPRoute");
    assert_eq!(problems(&exp), Vec::<String>::new());
    let read =
        crd::to_core(&serde_json::from_value::<ExperimentResource>(exp.clone()).unwrap()).unwrap();
    assert!(read.spec.routing_reference.unwrap().is_http_route());
    exp["spec"]["routingReference"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let problems = problems(&exp);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"name\" is a required property")),
        "{problems:?}"
    );
}

/// An Experiment as iter8 v0.2.1 stored it (int64 nanosecond timestamps, `analysisState: {}`,
/// knative conditions) passes the schema and reads into the core's model with its times.
#[test]
fn a_status_written_by_v0_2_1_passes_the_schema_and_reads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/written-by-v0.2.1.yaml"
    ))
    .unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    let doc = docs[0].clone();
    assert_eq!(
        doc["status"]["startTimestamp"],
        json!(1605866401000000000_i64)
    );
    assert_eq!(problems(&doc), Vec::<String>::new());

    let resource: ExperimentResource = serde_json::from_value(doc).unwrap();
    let exp = crd::to_core(&resource).unwrap();
    let at = |s: &str| Some(s.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
    assert_eq!(exp.status.create_timestamp, at("2020-11-20T10:00:00Z"));
    assert_eq!(exp.status.start_timestamp, at("2020-11-20T10:00:01Z"));
    assert_eq!(exp.status.last_increment_time, at("2020-11-20T10:00:02Z"));
    assert_eq!(exp.status.end_timestamp, None);
    assert_eq!(exp.status.current_iteration, 2);
    assert_eq!(exp.status.split().candidate, 40);
    assert!(exp.status.analysis_state.unwrap().is_empty());
    assert_eq!(
        crd::core_status(&resource).start_timestamp,
        at("2020-11-20T10:00:01Z")
    );
}
