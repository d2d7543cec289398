//! Shared test helpers: tutorial manifests, expected objects, CRD schemas, a scripted API server.
#![allow(dead_code)]

use std::path::PathBuf;

use http::{Request, Response};
use iter8_core::model::Experiment;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::Handle;

/// The tutorial's namespace.
pub const NS: &str = "bookinfo-iter8";

/// A file of tests/data.
pub fn data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every document of a YAML file of tests/data, as JSON.
pub fn documents(name: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&data(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// The experiment of a tutorial manifest, applied in the tutorial's namespace
/// (`kubectl apply -n bookinfo-iter8`).
pub fn experiment(name: &str) -> Experiment {
    let mut exp: Experiment =
        serde_saphyr::from_str(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    exp.metadata.namespace = Some(NS.to_string());
    exp
}

/// A Deployment of the tutorial's manifests, by name, as the API server returns it.
pub fn deployment(name: &str) -> Value {
    for file in [
        "bookinfo-tutorial.yaml",
        "reviews-v3.yaml",
        "productpage-v2.yaml",
    ] {
        for doc in documents(file) {
            if doc["kind"] == "Deployment" && doc["metadata"]["name"] == name {
                let mut doc = doc;
                doc["metadata"]["namespace"] = json!(NS);
                return doc;
            }
        }
    }
    // reviews-v4 and later: reviews-v3 with another version label.
    let version = name.rsplit_once('-').map(|(_, v)| v).unwrap_or(name);
    let mut doc = deployment("reviews-v3");
    doc["metadata"]["name"] = json!(name);
    doc["spec"]["selector"]["matchLabels"]["version"] = json!(version);
    doc["spec"]["template"]["metadata"]["labels"]["version"] = json!(version);
    doc
}

/// The openAPIV3Schema of a served version of an Istio CRD (networking-crds.yaml, read once).
pub fn crd_schema(kind: &str, version: &str) -> Value {
    static CRDS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    for crd in CRDS.get_or_init(|| documents("networking-crds.yaml")) {
        if crd["spec"]["names"]["kind"] != kind {
            continue;
        }
        let versions = crd["spec"]["versions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for v in versions {
            if v["name"] == version && v["served"] == true {
                return v["schema"]["openAPIV3Schema"].clone();
            }
        }
    }
    panic!("no served {kind} {version} in networking-crds.yaml")
}

/// The schema made strict the way the API server prunes: an object with declared properties
/// accepts no others (unless it preserves unknown fields), so a misspelt field fails.
pub fn strict(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), strict(v))).collect();
            let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
        other => other.clone(),
    }
}

/// Validates an object against its CRD's schema (served v1alpha3): the whole object as the CRD
/// declares it, and its `spec` strictly.
pub fn assert_valid(obj: &Value) {
    let kind = obj["kind"].as_str().expect("kind");
    assert_eq!(obj["apiVersion"], "networking.istio.io/v1alpha3");
    let schema = crd_schema(kind, "v1alpha3");
    let whole = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = whole.iter_errors(obj).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{kind} invalid: {errors:?}\n{obj:#}");
    let spec_schema = strict(&schema["properties"]["spec"]);
    let spec = jsonschema::validator_for(&spec_schema).expect("schema compiles");
    let errors: Vec<String> = spec
        .iter_errors(&obj["spec"])
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} spec invalid: {errors:?}\n{obj:#}"
    );
    let name = obj["metadata"]["name"].as_str().expect("name");
    assert!(name.len() <= 253, "name too long: {name}");
    for (key, value) in obj["metadata"]["labels"].as_object().expect("labels") {
        let value = value.as_str().expect("label values are strings");
        assert!(value.len() <= 63, "label {key}={value} too long");
    }
}

/// One request the scripted API server expects, and its answer.
pub struct Exchange {
    /// HTTP method.
    pub method: &'static str,
    /// Path and query.
    pub uri: String,
    /// The JSON body it must carry, if checked.
    pub body: Option<Value>,
    /// The answer's status.
    pub status: u16,
    /// The answer's body.
    pub answer: Value,
}

/// A VirtualService or DestinationRule path (and query).
pub fn istio_path(plural: &str, rest: &str) -> String {
    format!("/apis/networking.istio.io/v1alpha3/namespaces/{NS}/{plural}{rest}")
}

/// `GET` list by host label.
pub fn list(plural: &str, host: &str, items: Vec<Value>) -> Exchange {
    Exchange {
        method: "GET",
        uri: istio_path(
            plural,
            &format!("?labelSelector=iter8-tools%2Fhost%3D{host}"),
        ),
        body: None,
        status: 200,
        answer: json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "List",
                       "metadata": {"resourceVersion": "1"}, "items": items}),
    }
}

/// Server-side apply of `obj`: asserts the body, answers with it.
pub fn apply(plural: &str, obj: &Value) -> Exchange {
    let name = obj["metadata"]["name"].as_str().expect("name");
    Exchange {
        method: "PATCH",
        uri: istio_path(plural, &format!("/{name}?fieldManager=iter8&force=true")),
        body: Some(obj.clone()),
        status: 200,
        answer: obj.clone(),
    }
}

/// Server-side apply of `sent`, answered with `answer` (e.g. a webhook changed it).
pub fn apply_answered(plural: &str, sent: &Value, answer: Value) -> Exchange {
    Exchange {
        answer,
        ..apply(plural, sent)
    }
}

/// `GET` a Deployment.
pub fn get_deployment(name: &str) -> Exchange {
    Exchange {
        method: "GET",
        uri: format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
        body: None,
        status: 200,
        answer: deployment(name),
    }
}

/// `GET` a Deployment that does not exist.
pub fn missing_deployment(name: &str) -> Exchange {
    Exchange {
        method: "GET",
        uri: format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
        body: None,
        status: 404,
        answer: not_found("deployments.apps", name),
    }
}

/// `GET` an Experiment, answered with `status.phase` (or 404 when `None`).
pub fn get_experiment(name: &str, phase: Option<&str>) -> Exchange {
    let (status, answer) = match phase {
        Some(phase) => (
            200,
            json!({"apiVersion": "iter8.tools/v1alpha1", "kind": "Experiment",
                   "metadata": {"name": name, "namespace": NS},
                   "spec": {}, "status": {"phase": phase}}),
        ),
        None => (404, not_found("experiments.iter8.tools", name)),
    };
    Exchange {
        method: "GET",
        uri: format!("/apis/iter8.tools/v1alpha1/namespaces/{NS}/experiments/{name}"),
        body: None,
        status,
        answer,
    }
}

/// `DELETE` an object.
pub fn delete(plural: &str, name: &str) -> Exchange {
    Exchange {
        method: "DELETE",
        uri: istio_path(plural, &format!("/{name}?")),
        body: None,
        status: 200,
        answer: json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 200}),
    }
}

/// The API server's 404 body.
pub fn not_found(resource: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
           "message": format!("{resource} \"{name}\" not found"), "reason": "NotFound",
           "details": {"name": name}, "code": 404})
}

/// A URI's path and its query pairs in order of name: kube writes `?&force=true&fieldManager=iter8`
/// for what reads `?fieldManager=iter8&force=true`; the order of query parameters means nothing.
pub fn normalize_uri(uri: &str) -> (String, Vec<String>) {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    pairs.sort();
    (path.to_string(), pairs)
}

/// Answers the requests in order, asserting each one's method, path and body; panics on a
/// missing or unexpected request.
pub async fn serve(mut handle: Handle<Request<Body>, Response<Body>>, script: Vec<Exchange>) {
    for (i, ex) in script.into_iter().enumerate() {
        let Some((req, send)) = handle.next_request().await else {
            panic!("request {i} never came: {} {}", ex.method, ex.uri);
        };
        assert_eq!(
            req.method().as_str(),
            ex.method,
            "request {i} method ({})",
            req.uri()
        );
        assert_eq!(
            normalize_uri(&req.uri().to_string()),
            normalize_uri(&ex.uri),
            "request {i}: {} {}",
            ex.method,
            req.uri()
        );
        if ex.method == "PATCH" {
            let content_type = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or(""));
            assert_eq!(
                content_type,
                Some("application/apply-patch+yaml"),
                "request {i}"
            );
        }
        let bytes = req.into_body().collect_bytes().await.expect("request body");
        if let Some(want) = ex.body {
            let got: Value = serde_json::from_slice(&bytes).expect("JSON body");
            assert_eq!(got, want, "request {i} body ({})", ex.uri);
        }
        let answer = serde_json::to_vec(&ex.answer).expect("answer");
        send.send_response(
            Response::builder()
                .status(ex.status)
                .header("content-type", "application/json")
                .body(Body::from(answer))
                .expect("response"),
        );
    }
    if let Some((req, _)) = handle.next_request().await {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}
