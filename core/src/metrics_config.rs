//! The metrics configuration: the `iter8config-metrics` ConfigMap of iter8 v0.2.
//!
//! `data.query_templates` is a YAML mapping (metric name -> PromQL template) and `data.metrics`
//! a YAML list of `{name, is_counter, absent_value, sample_size_query_template}`, both stored as
//! strings inside the ConfigMap.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The ConfigMap's name.
pub const CONFIGMAP_NAME: &str = "iter8config-metrics";

/// The stock ConfigMap for Istio telemetry v1 (Mixer, `istio-mesh` job, seconds).
pub const STOCK_TELEMETRY_V1: &str = include_str!("stock/iter8config-metrics-telemetry-v1.yaml");
/// The stock ConfigMap for Istio telemetry v2 (`envoy-stats` job, milliseconds).
pub const STOCK_TELEMETRY_V2: &str = include_str!("stock/iter8config-metrics-telemetry-v2.yaml");
/// The tutorial's extended ConfigMap (adds `iter8_90_perc_latency`), telemetry v1.
pub const EXTENDED_TELEMETRY_V1: &str = include_str!("stock/iter8_metrics_extended.yaml");
/// The tutorial's extended ConfigMap, telemetry v2.
pub const EXTENDED_TELEMETRY_V2: &str =
    include_str!("stock/iter8_metrics_extended_telemetry-v2.yaml");

/// Why a metrics configuration could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsConfigError {
    /// The outer document is not a ConfigMap with the two data keys.
    #[error("metrics configuration: {0}")]
    Document(String),
    /// `data.query_templates` is not a mapping of names to strings.
    #[error("metrics configuration: data.query_templates: {0}")]
    QueryTemplates(String),
    /// `data.metrics` is not a list of metric definitions.
    #[error("metrics configuration: data.metrics: {0}")]
    Metrics(String),
    /// A metric refers to a template that does not exist.
    #[error("metrics configuration: metric `{metric}`: {problem}")]
    Metric {
        /// The metric's name.
        metric: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// What a metric's value is when the backend has no series for a version.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum AbsentValue {
    /// No value (`"None"`): the criterion cannot be judged.
    #[default]
    NoValue,
    /// This number.
    Value(f64),
}

impl AbsentValue {
    /// The value as iter8-analytics takes it: a string, `"None"` for no value.
    pub fn as_api_string(&self) -> String {
        match self {
            AbsentValue::NoValue => "None".to_string(),
            AbsentValue::Value(v) => format!("{v:?}"),
        }
    }

    /// Parses iter8-analytics' string form (`"None"`, `"0"`, `"0.0"`).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "None" | "none" | "null" | "" => Ok(AbsentValue::NoValue),
            t => t
                .parse::<f64>()
                .map(AbsentValue::Value)
                .map_err(|_| format!("absent_value `{text}` is neither a number nor \"None\"")),
        }
    }
}

impl Serialize for AbsentValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AbsentValue::NoValue => s.serialize_str("None"),
            AbsentValue::Value(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for AbsentValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(AbsentValue::NoValue),
            Some(Raw::Num(v)) => Ok(AbsentValue::Value(v)),
            Some(Raw::Text(t)) => AbsentValue::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// One entry of `data.metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDefinition {
    /// The metric's name; also the name of its query template.
    pub name: String,
    /// Whether the metric is a counter (cumulative count); delta criteria cannot use counters.
    #[serde(default)]
    pub is_counter: bool,
    /// The value when a version has no series.
    #[serde(default)]
    pub absent_value: AbsentValue,
    /// The template that counts the requests behind the metric.
    pub sample_size_query_template: String,
}

/// A metric with its templates looked up: everything a backend needs to measure it.
///
/// Its texts are shared with the [`MetricsConfig`] it came from: every analysis builds a plan
/// and a query holding the metrics of its criteria, and copying the templates each time cost
/// more than deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric's name.
    pub name: Arc<str>,
    /// Whether it is a counter.
    pub is_counter: bool,
    /// The value when a version has no series.
    pub absent_value: AbsentValue,
    /// The PromQL template of the value.
    pub query_template: Arc<str>,
    /// The name of the sample-size template.
    pub sample_size_template_name: Arc<str>,
    /// The PromQL template of the sample size.
    pub sample_size_query_template: Arc<str>,
}

/// The metrics configuration: query templates and metric definitions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricsConfig {
    /// Template name -> PromQL template (shared with the [`Metric`]s built from them).
    pub query_templates: BTreeMap<Arc<str>, Arc<str>>,
    /// The metric definitions, in the order given.
    pub metrics: Vec<MetricDefinition>,
}

#[derive(Deserialize)]
struct ConfigMapDoc {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    data: Option<BTreeMap<String, String>>,
}

impl MetricsConfig {
    /// Reads a ConfigMap manifest (YAML or JSON); `---` separated documents are allowed and the
    /// first ConfigMap is taken.
    pub fn from_configmap_yaml(text: &str) -> Result<Self, MetricsConfigError> {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text)
            .map_err(|e| MetricsConfigError::Document(e.to_string()))?;
        let doc = docs
            .into_iter()
            .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap"))
            .ok_or_else(|| MetricsConfigError::Document("no ConfigMap in the input".into()))?;
        let cm: ConfigMapDoc =
            serde_json::from_value(doc).map_err(|e| MetricsConfigError::Document(e.to_string()))?;
        debug_assert_eq!(cm.kind.as_deref(), Some("ConfigMap"));
        let data = cm
            .data
            .ok_or_else(|| MetricsConfigError::Document("the ConfigMap has no data".into()))?;
        Self::from_data(&data)
    }

    /// Reads the ConfigMap's `data` map (`query_templates` and `metrics` as YAML strings).
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, MetricsConfigError> {
        let templates = data.get("query_templates").ok_or_else(|| {
            MetricsConfigError::Document("data.query_templates is missing".into())
        })?;
        let metrics = data
            .get("metrics")
            .ok_or_else(|| MetricsConfigError::Document("data.metrics is missing".into()))?;
        Self::from_parts(templates, metrics)
    }

    /// Reads the two YAML strings and checks that every metric's templates exist.
    pub fn from_parts(query_templates: &str, metrics: &str) -> Result<Self, MetricsConfigError> {
        let query_templates: BTreeMap<Arc<str>, Arc<str>> = if query_templates.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_saphyr::from_str(query_templates)
                .map_err(|e| MetricsConfigError::QueryTemplates(e.to_string()))?
        };
        let metrics: Vec<MetricDefinition> = if metrics.trim().is_empty() {
            Vec::new()
        } else {
            serde_saphyr::from_str(metrics)
                .map_err(|e| MetricsConfigError::Metrics(e.to_string()))?
        };
        let config = MetricsConfig {
            query_templates,
            metrics,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), MetricsConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.metrics {
            let problem = |p: String| MetricsConfigError::Metric {
                metric: m.name.clone(),
                problem: p,
            };
            if !seen.insert(m.name.as_str()) {
                return Err(problem("defined twice".into()));
            }
            if !self.query_templates.contains_key(m.name.as_str()) {
                return Err(problem("no query template of that name".into()));
            }
            if !self
                .query_templates
                .contains_key(m.sample_size_query_template.as_str())
            {
                return Err(problem(format!(
                    "sample_size_query_template `{}` is not a query template",
                    m.sample_size_query_template
                )));
            }
        }
        Ok(())
    }

    /// The stock configuration for Istio telemetry v2 (the default).
    pub fn stock_telemetry_v2() -> Self {
        Self::from_configmap_yaml(STOCK_TELEMETRY_V2).unwrap_or_default()
    }

    /// The stock configuration for Istio telemetry v1.
    pub fn stock_telemetry_v1() -> Self {
        Self::from_configmap_yaml(STOCK_TELEMETRY_V1).unwrap_or_default()
    }

    /// The definition of a metric whose two templates exist (what [`Self::metric`] would
    /// build), without copying anything.
    pub fn definition(&self, name: &str) -> Option<&MetricDefinition> {
        let def = self.metrics.iter().find(|m| m.name == name)?;
        (self.query_templates.contains_key(def.name.as_str())
            && self
                .query_templates
                .contains_key(def.sample_size_query_template.as_str()))
        .then_some(def)
    }

    /// A metric with its templates, if defined.
    pub fn metric(&self, name: &str) -> Option<Metric> {
        let def = self.metrics.iter().find(|m| m.name == name)?;
        // The names are the templates' keys: shared, like the templates.
        let (name, query_template) = self.query_templates.get_key_value(def.name.as_str())?;
        let (sample_size_template_name, sample_size_query_template) = self
            .query_templates
            .get_key_value(def.sample_size_query_template.as_str())?;
        Some(Metric {
            name: name.clone(),
            is_counter: def.is_counter,
            absent_value: def.absent_value,
            query_template: query_template.clone(),
            sample_size_template_name: sample_size_template_name.clone(),
            sample_size_query_template: sample_size_query_template.clone(),
        })
    }

    /// Whether a metric of that name is defined.
    pub fn has_metric(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m.name == name)
    }

    /// The ConfigMap manifest for this configuration (for install bundles and round trips).
    pub fn to_configmap_yaml(&self, namespace: &str) -> String {
        let templates = self
            .query_templates
            .iter()
            .map(|(k, v)| format!("{k}: {}", serde_json::Value::String(v.to_string())))
            .collect::<Vec<_>>()
            .join("\n");
        let metrics = serde_saphyr::to_string(&self.metrics).unwrap_or_default();
        let cm = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
            "data": {"query_templates": templates, "metrics": metrics},
        });
        serde_saphyr::to_string(&cm).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_configs_parse() {
        for (name, text, n) in [
            ("v1", STOCK_TELEMETRY_V1, 3),
            ("v2", STOCK_TELEMETRY_V2, 3),
            ("extended v1", EXTENDED_TELEMETRY_V1, 4),
            ("extended v2", EXTENDED_TELEMETRY_V2, 4),
        ] {
            let c =
                MetricsConfig::from_configmap_yaml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.metrics.len(), n, "{name}");
            assert_eq!(c.query_templates.len(), n + 1, "{name}");
        }
    }

    #[test]
    fn python_style_fields_are_read() {
        let c = MetricsConfig::from_configmap_yaml(STOCK_TELEMETRY_V1).unwrap();
        let latency = c.metric("iter8_latency").unwrap();
        assert!(!latency.is_counter);
        assert_eq!(latency.absent_value, AbsentValue::NoValue);
        assert_eq!(&*latency.sample_size_template_name, "iter8_sample_size");
        assert!(
            latency
                .query_template
                .contains("istio_request_duration_seconds_sum")
        );
        let count = c.metric("iter8_error_count").unwrap();
        assert!(count.is_counter);
        assert_eq!(count.absent_value, AbsentValue::Value(0.0));
        let ext = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
        let p90 = ext.metric("iter8_90_perc_latency").unwrap();
        assert!(p90.query_template.starts_with("histogram_quantile(0.90"));
        // iter8_error_count has no absent_value in the extended map: it defaults to no value.
        assert_eq!(
            ext.metric("iter8_error_count").unwrap().absent_value,
            AbsentValue::NoValue
        );
    }

    #[test]
    fn round_trips_through_its_configmap() {
        let c = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V1).unwrap();
        let again = MetricsConfig::from_configmap_yaml(&c.to_configmap_yaml("iter8")).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn missing_template_is_named() {
        let err = MetricsConfig::from_parts(
            "iter8_sample_size: \"x\"",
            "- name: iter8_latency\n  sample_size_query_template: iter8_sample_size",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "metrics configuration: metric `iter8_latency`: no query template of that name"
        );
        let err =
            MetricsConfig::from_parts("m: \"x\"", "- name: m\n  sample_size_query_template: nope")
                .unwrap_err();
        assert!(
            err.to_string().contains("`nope` is not a query template"),
            "{err}"
        );
    }

    #[test]
    fn bad_absent_value_is_an_error() {
        let err = MetricsConfig::from_parts(
            "m: \"x\"",
            "- name: m\n  absent_value: lots\n  sample_size_query_template: m",
        )
        .unwrap_err();
        assert!(err.to_string().contains("absent_value `lots`"), "{err}");
    }
}
