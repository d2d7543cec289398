//! Envoy's own statistics as iter8 metrics: the metrics ConfigMap shipped with this crate, and
//! the Prometheus scrape configuration whose relabeling gives Envoy's series the labels the
//! core's version tags use.

use std::time::Duration;

use iter8_core::metrics_config::{MetricsConfig, MetricsConfigError};

/// The `iter8config-metrics` ConfigMap for Envoy statistics (`iter8_latency`,
/// `iter8_error_count`, `iter8_error_rate`, `iter8_90_perc_latency`, `iter8_sample_size`).
pub const ENVOY_METRICS_CONFIGMAP: &str = include_str!("../iter8config-metrics-envoy.yaml");

/// The Prometheus job name the query templates select.
pub const SCRAPE_JOB: &str = "iter8-envoy";

/// The shipped metrics configuration, parsed.
pub fn envoy_metrics() -> Result<MetricsConfig, MetricsConfigError> {
    MetricsConfig::from_configmap_yaml(ENVOY_METRICS_CONFIGMAP)
}

/// Why a scrape configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace `{0}` is not a Kubernetes name (lowercase letters, digits and '-')")]
pub struct BadNamespace(pub String);

/// A `prometheus.yml` scraping Envoy's admin endpoint (`127.0.0.1:admin_port`) every
/// `scrape_every`, keeping only the cluster request series and labelling each with its version
/// (`destination_workload`, `destination_service_name` = the cluster name) and `namespace`.
pub fn prometheus_config(
    admin_port: u16,
    namespace: &str,
    scrape_every: Duration,
) -> Result<String, BadNamespace> {
    let valid = !namespace.is_empty()
        && namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(BadNamespace(namespace.to_string()));
    }
    let every = format!("{}ms", scrape_every.as_millis().max(100));
    Ok(format!(
        r#"global:
  scrape_interval: {every}
  evaluation_interval: {every}
scrape_configs:
  - job_name: {SCRAPE_JOB}
    scrape_interval: {every}
    scrape_timeout: {every}
    metrics_path: /stats/prometheus
    static_configs:
      - targets: ['127.0.0.1:{admin_port}']
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'envoy_cluster_upstream_rq_(total|xx|time_bucket|time_sum|time_count)'
        action: keep
      - source_labels: [envoy_cluster_name]
        regex: '(.+)'
        target_label: destination_workload
      - source_labels: [envoy_cluster_name]
        regex: '(.+)'
        target_label: destination_service_name
      - source_labels: [envoy_cluster_name]
        regex: '.+'
        target_label: destination_workload_namespace
        replacement: '{namespace}'
      - source_labels: [envoy_cluster_name]
        regex: '.+'
        target_label: destination_service_namespace
        replacement: '{namespace}'
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configuration_has_the_stock_metrics() {
        let m = envoy_metrics().unwrap();
        for name in [
            "iter8_latency",
            "iter8_error_rate",
            "iter8_error_count",
            "iter8_90_perc_latency",
        ] {
            assert!(m.metrics.iter().any(|d| d.name == name), "{name}");
        }
        assert!(m.query_templates["iter8_sample_size"].contains("envoy_cluster_upstream_rq_total"));
    }

    #[test]
    fn the_scrape_configuration_labels_series_with_the_version() {
        let text = prometheus_config(19000, "bookinfo-iter8", Duration::from_secs(1)).unwrap();
        assert!(text.contains("'127.0.0.1:19000'"));
        assert!(text.contains("target_label: destination_workload\n"));
        assert!(text.contains("replacement: 'bookinfo-iter8'"));
        assert!(prometheus_config(1, "Bad'ns", Duration::from_secs(1)).is_err());
    }
}
