//! Shared test helpers: the worked example's manifests and the HTTPRoute CRD's schema.
#![allow(dead_code)]

use iter8_core::model::Experiment;
use serde_json::{Map, Value, json};

/// The namespace the tests put everything in.
pub const NS: &str = "demo";

/// The documents of a manifest of examples/gateway-api, as JSON.
pub fn example(file: &str) -> Vec<Value> {
    let path = format!(
        "{}/../../examples/gateway-api/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .filter(Value::is_object)
        .collect()
}

/// The one object of `kind` in an example manifest, in [`NS`].
pub fn example_object(file: &str, kind: &str) -> Value {
    let mut doc = example(file)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {file}"));
    doc["metadata"]["namespace"] = json!(NS);
    doc
}

/// The worked example's experiment, in [`NS`].
pub fn experiment() -> Experiment {
    let doc = example_object("canary_web-v1_to_web-v2.yaml", "Experiment");
    serde_json::from_value(doc).expect("the example experiment parses")
}

/// The openAPIV3Schema of HTTPRoute v1 (the v1.6.1 standard channel CRD in tests/data).
pub fn crd_schema() -> Value {
    let path = format!(
        "{}/tests/data/httproutes.crd.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let crd: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the CRD parses");
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1" && v["served"] == true)
        .expect("v1 is served")["schema"]["openAPIV3Schema"]
        .clone()
}

/// The schema with `additionalProperties: false` on every object that lists its properties:
/// the API server prunes unknown fields silently, so a misspelt field would otherwise pass.
fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), strict(v))).collect();
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

/// Fails unless the route is valid against the CRD's schema, unknown fields included (metadata
/// is the API server's to check, so only `spec` is checked strictly).
pub fn assert_valid(route: &Value) {
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["kind"], "HTTPRoute");
    let schema = crd_schema();
    let whole = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = whole
        .iter_errors(route)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "invalid: {errors:?}\n{route:#}");
    let spec = jsonschema::validator_for(&strict(&schema["properties"]["spec"]))
        .expect("the schema compiles");
    let errors: Vec<String> = spec
        .iter_errors(&route["spec"])
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "spec invalid: {errors:?}\n{route:#}");
    for (key, value) in route["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let value = value.as_str().expect("label values are strings");
        assert!(value.len() <= 63, "label {key}={value} too long");
    }
}
