//! Shared helpers of the integration tests: test data and the dashboard schema.
#![allow(dead_code)]

use std::path::PathBuf;

use iter8_core::{Experiment, MetricsConfig};
use serde_json::Value;

/// The tutorial's experiments, as copied into tests/data.
pub const TUTORIAL_EXPERIMENTS: [&str; 6] = [
    "canary_reviews-v2_to_reviews-v3.yaml",
    "canary_reviews-v3_to_reviews-v4.yaml",
    "canary_reviews-v3_to_reviews-v5.yaml",
    "canary_reviews-v3_to_reviews-v6.yaml",
    "canary_productpage-v1_to_productpage-v2.yaml",
    "service-kind_canary_productpage-v1_to_productpage-v2.yaml",
];

/// A file of tests/data.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The text of a file of tests/data.
pub fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The first Experiment of a manifest in tests/data.
pub fn experiment(name: &str) -> Experiment {
    let docs: Vec<Value> = serde_saphyr::from_multiple(&read(name)).expect("yaml");
    let doc = docs
        .into_iter()
        .find(|d| d["kind"] == "Experiment")
        .expect("an Experiment");
    serde_json::from_value(doc).expect("an Experiment that parses")
}

/// The tutorial's extended metrics ConfigMap for telemetry v1 or v2.
pub fn extended_metrics(v2: bool) -> MetricsConfig {
    let name = if v2 {
        "iter8_metrics_extended_telemetry-v2.yaml"
    } else {
        "iter8_metrics_extended.yaml"
    };
    MetricsConfig::from_configmap_yaml(&read(name)).expect("metrics config")
}

/// Validates a dashboard against the Grafana dashboard schema; the errors, one a line.
pub fn schema_errors(dashboard: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(&read("dashboard.jsonschema.json")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    validator
        .iter_errors(dashboard)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// All panels of a dashboard, rows included.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect()
}

/// [`panels`] and, after each collapsed row, the panels inside it.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// The panel with this title.
pub fn panel<'a>(dashboard: &'a Value, title: &str) -> &'a Value {
    panels(dashboard)
        .into_iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel `{title}`"))
}

/// The exprs of a panel's targets.
pub fn exprs(panel: &Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect()
}

/// The threshold values of a panel (the steps after the base step).
pub fn threshold_values(panel: &Value) -> Vec<f64> {
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect()
}
