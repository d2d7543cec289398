//! The Experiment CRD as a real kube-apiserver serves it: every tutorial manifest accepted
//! unchanged, malformed Experiments rejected by the API server with a message naming the field,
//! unknown fields pruned, the status subresource, the categories and short name.

mod cluster;

use cluster::*;
use serde_json::{Value, json};

const NS: &str = "crd-checks";

fn experiments() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(EXAMPLES).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("canary_") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            if doc["kind"] == "Experiment" {
                out.push((name.clone(), doc));
            }
        }
    }
    let service_kind = format!("{EXAMPLES}/service-kind");
    for entry in std::fs::read_dir(service_kind).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap_or_default() {
            if doc["kind"] == "Experiment" {
                out.push((entry.file_name().to_string_lossy().to_string(), doc));
            }
        }
    }
    out
}

/// `value` with every number as an f64, so that `3000` and `3000.0` compare equal (YAML and
/// the API server spell some numbers differently).
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `kubectl create --dry-run=server` of `doc`: Ok(()) or the API server's message.
fn server_dry_run(doc: &Value) -> Result<(), String> {
    let cp = cluster();
    namespace(cp, NS);
    let out = cp.kubectl(
        &["create", "--dry-run=server", "-n", NS, "-f", "-"],
        Some(&doc.to_string()),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn every_tutorial_experiment_is_accepted_unchanged() {
    let all = experiments();
    assert!(all.len() >= 6, "{}", all.len());
    let cp = cluster();
    namespace(cp, NS);
    for (file, doc) in all {
        let out = cp.kubectl(
            &[
                "create",
                "--dry-run=server",
                "-n",
                NS,
                "-o",
                "json",
                "-f",
                "-",
            ],
            Some(&doc.to_string()),
        );
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing of what the user wrote was pruned or changed by the API server.
        let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            numbers_as_f64(&stored["spec"]),
            numbers_as_f64(&doc["spec"]),
            "{file}"
        );
    }
}

#[test]
fn malformed_experiments_are_rejected_with_the_field_named() {
    let (_, base) = experiments()
        .into_iter()
        .find(|(f, _)| f == "canary_reviews-v2_to_reviews-v3.yaml")
        .unwrap();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/spec/trafficControl/trafficStepSize",
            json!(0),
            "spec.trafficControl.trafficStepSize",
        ),
        (
            "/spec/trafficControl/maxTrafficPercentage",
            json!(101),
            "spec.trafficControl.maxTrafficPercentage",
        ),
        (
            "/spec/trafficControl/maxIterations",
            json!(0),
            "spec.trafficControl.maxIterations",
        ),
        (
            "/spec/trafficControl/strategy",
            json!("fastest"),
            "spec.trafficControl.strategy",
        ),
        (
            "/spec/trafficControl/interval",
            json!("30 seconds"),
            "spec.trafficControl.interval",
        ),
        (
            "/spec/targetService/kind",
            json!("StatefulSet"),
            "spec.targetService.kind",
        ),
        (
            "/spec/analysis/successCriteria/0/toleranceType",
            json!("ratio"),
            "spec.analysis.successCriteria[0].toleranceType",
        ),
        (
            "/spec/trafficControl/maxIterations",
            json!("eight"),
            "spec.trafficControl.maxIterations",
        ),
        ("/action", json!("abort"), "action"),
    ];
    for (pointer, value, field) in cases {
        let mut doc = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = value.clone();
        let err = server_dry_run(&doc).expect_err(&format!("{pointer} = {value} is rejected"));
        assert!(
            err.contains(field)
                && (err.contains("Invalid value") || err.contains("Unsupported value")),
            "{pointer} = {value}: {err}"
        );
    }
    let mut doc = base.clone();
    doc["spec"]["targetService"]
        .as_object_mut()
        .unwrap()
        .remove("candidate");
    let err = server_dry_run(&doc).expect_err("a missing candidate is rejected");
    assert!(
        err.contains("spec.targetService.candidate") && err.contains("Required value"),
        "{err}"
    );
}

#[test]
fn unknown_fields_are_named_or_pruned_and_the_status_is_a_subresource() {
    let cp = cluster();
    namespace(cp, NS);
    let (_, mut doc) = experiments().remove(0);
    doc["metadata"]["name"] = json!("pruning");
    doc["spec"]["notAField"] = json!("dropped");
    doc["status"] = json!({"phase": "Completed"});
    // kubectl asks for strict field validation: the unknown field is named.
    let err = server_dry_run(&doc).expect_err("an unknown field is rejected by kubectl's default");
    assert!(err.contains("unknown field \"spec.notAField\""), "{err}");
    // Without it, the structural schema prunes it.
    let out = cp.kubectl_ok(
        &[
            "create",
            "--validate=false",
            "-n",
            NS,
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&doc.to_string()),
    );
    let stored: Value = serde_json::from_str(&out).unwrap();
    assert!(stored["spec"].get("notAField").is_none(), "{stored}");
    // With the status subresource, a create ignores the status.
    assert!(
        stored
            .get("status")
            .is_none_or(|s| s.get("phase").is_none()),
        "{stored}"
    );
    // The categories and the short name reach the experiment.
    let names = cp.kubectl_ok(&["get", "exp", "-n", NS, "-o", "name"], None);
    assert!(names.contains("experiment.iter8.tools/pruning"), "{names}");
    let names = cp.kubectl_ok(&["get", "iter8", "-n", NS, "-o", "name"], None);
    assert!(names.contains("experiment.iter8.tools/pruning"), "{names}");
    cp.kubectl_ok(&["delete", "experiment", "pruning", "-n", NS], None);
}
