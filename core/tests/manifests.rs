//! The tutorial's manifests parse unchanged, validate, and survive a round trip.

use iter8_core::manifest::{self, parse_experiments};
use iter8_core::metrics_config::{EXTENDED_TELEMETRY_V2, MetricsConfig};
use iter8_core::validation::{self, MetricCheck};
use iter8_core::{Experiment, GoDuration, TargetKind};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bookinfo");

fn experiment_files() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in [DIR.to_string(), format!("{DIR}/service-kind")] {
        for entry in std::fs::read_dir(&dir).expect("examples/bookinfo exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn experiments() -> Vec<(String, Experiment)> {
    let mut out = Vec::new();
    for path in experiment_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        for doc in parse_experiments(&text).expect("valid YAML") {
            let doc = doc.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                doc.unknown_fields.is_empty(),
                "{}: unknown fields {:?}",
                path.display(),
                doc.unknown_fields
            );
            out.push((path.display().to_string(), doc.experiment));
        }
    }
    out
}

#[test]
fn every_tutorial_experiment_is_found() {
    let names: Vec<String> = experiments()
        .iter()
        .map(|(_, e)| e.name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "productpage-v2-rollout",
            "reviews-v3-rollout",
            "reviews-v4-rollout",
            "reviews-v5-rollout",
            "reviews-v6-rollout",
            "productpage-bootstrap",
            "productpage-v2-rollout",
        ]
    );
}

#[test]
fn fields_are_read_as_written() {
    let all = experiments();
    let v5 = &all
        .iter()
        .find(|(_, e)| e.name() == "reviews-v5-rollout")
        .unwrap()
        .1;
    let ts = &v5.spec.target_service;
    assert_eq!(ts.name.as_deref(), Some("reviews"));
    assert_eq!(ts.api_version.as_deref(), Some("v1"));
    assert_eq!(
        (ts.baseline(), ts.candidate()),
        ("reviews-v3", "reviews-v5")
    );
    let tc = &v5.spec.traffic_control;
    assert_eq!(tc.interval, Some(GoDuration::new("30s")));
    assert_eq!(tc.max_iterations, Some(6));
    assert_eq!(tc.traffic_step_size, Some(20.0));
    assert_eq!(tc.max_traffic_percentage, Some(80.0));
    let c = &v5.spec.analysis.success_criteria;
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].metric_name.as_deref(), Some("iter8_error_rate"));
    assert_eq!(c[1].tolerance, Some(0.02));
    assert_eq!(c[1].sample_size, Some(10));
    assert_eq!(c[1].stop_on_failure, Some(true));
    let pp = &all[0].1;
    assert_eq!(pp.spec.target_service.port, Some(9080));
    assert_eq!(
        pp.spec.target_service.hosts[0].gateway.as_deref(),
        Some("productpage-gateway")
    );
    let svc = &all[6].1;
    assert_eq!(svc.spec.target_service.kind(), TargetKind::Service);
}

/// `3000.0` and `3000` are the same number; JSON values compare them as different.
fn numbers_as_f64(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_f64).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect())
        }
        other => other,
    }
}

#[test]
fn serialising_back_loses_nothing() {
    for (path, exp) in experiments() {
        let yaml = manifest::to_yaml(&exp).expect("serialises");
        let again = parse_experiments(&yaml).expect("parses")[0]
            .clone()
            .expect("an experiment");
        assert_eq!(again.experiment, exp, "{path} via YAML");
        let json = serde_json::to_value(&exp).expect("json");
        let back: Experiment = serde_json::from_value(json.clone()).expect("from json");
        assert_eq!(back, exp, "{path} via JSON");
        // Same document, key for key: nothing added, nothing dropped.
        let original: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).expect("readable"))
                .expect("yaml");
        assert_eq!(
            numbers_as_f64(json),
            numbers_as_f64(original),
            "{path}: JSON form differs from the file"
        );
    }
}

#[test]
fn tutorial_experiments_are_valid_with_the_extended_metrics() {
    let metrics = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
    for (path, exp) in experiments() {
        let problems = validation::validate(&exp, &metrics, MetricCheck::Strict);
        assert!(problems.is_empty(), "{path}: {problems:?}");
        let plan = validation::plan(&exp, &metrics).expect("plan");
        let expected = exp
            .spec
            .traffic_control
            .interval
            .as_ref()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(plan.interval, expected, "{path}");
    }
}

#[test]
fn defaults_are_filled_in() {
    let text = "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\nspec:\n  targetService:\n    name: s\n    baseline: a\n    candidate: b\n";
    let exp = parse_experiments(text).unwrap()[0]
        .clone()
        .unwrap()
        .experiment;
    let d = exp.with_defaults().spec;
    assert_eq!(d.traffic_control.interval, Some(GoDuration::new("1m")));
    assert_eq!(d.traffic_control.max_iterations, Some(100));
    assert_eq!(d.traffic_control.traffic_step_size, Some(2.0));
    assert_eq!(d.traffic_control.max_traffic_percentage, Some(50.0));
    assert_eq!(d.traffic_control.confidence, Some(0.95));
    assert_eq!(
        d.traffic_control.strategy.map(|s| s.to_string()).as_deref(),
        Some("increment_without_check"),
        "no criteria forces increment_without_check"
    );
    assert_eq!(
        d.analysis.grafana_endpoint.as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(
        d.analysis.analytics_service.as_deref(),
        Some("http://iter8-analytics.iter8:8080")
    );
}

#[test]
fn other_kinds_are_skipped_and_type_errors_name_the_field() {
    let text = "kind: ConfigMap\napiVersion: v1\n---\napiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\nspec:\n  trafficControl:\n    maxIterations: lots\n";
    let docs = parse_experiments(text).unwrap();
    assert_eq!(docs.len(), 1);
    let err = docs[0].clone().unwrap_err();
    assert_eq!(err.path, "spec.trafficControl.maxIterations");
    assert!(err.message.contains("invalid type"), "{err}");
}

#[test]
fn unknown_fields_are_reported_with_their_path() {
    let text = "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\n  uid: abc\nspec:\n  targetService:\n    name: s\n    baseline: a\n    candidate: b\n  trafficControl:\n    maxIteration: 3\n  analysis:\n    successCriteria:\n    - metricName: iter8_latency\n      tolerence: 3\n";
    let doc = parse_experiments(text).unwrap()[0].clone().unwrap();
    assert_eq!(
        doc.unknown_fields,
        [
            "spec.analysis.successCriteria[0].tolerence",
            "spec.trafficControl.maxIteration"
        ]
    );
    // Metadata is Kubernetes': everything in it is kept.
    assert_eq!(doc.experiment.metadata.other["uid"], "abc");
}
