//! iter8 v0.2.1's dashboard panels under their titles and with their queries (its variables
//! `[[baseline]]`, `$namespace`, `$window_size`), so that a user who knows that dashboard finds
//! every one of its panels here, in two collapsed rows below ours.

use crate::panels::{PanelSpec, Query};
use crate::telemetry::Telemetry;

/// The versions, as v0.2.1's queries name them.
const VERSIONS: [&str; 2] = ["baseline", "candidate"];

/// A panel with one query per version, legend `$<version>` (v0.2.1's `legend` form).
fn per_version(
    title: &str,
    unit: &str,
    description: &str,
    legend: impl Fn(&str) -> String,
    expr: impl Fn(&str) -> String,
) -> PanelSpec {
    PanelSpec {
        title: title.to_string(),
        description: format!("{description} (iter8 v0.2.1's panel and query)."),
        unit: unit.to_string(),
        queries: VERSIONS
            .iter()
            .map(|v| Query {
                expr: expr(v),
                legend: legend(v),
            })
            .collect(),
        thresholds: Vec::new(),
    }
}

/// Istio's series of one version in `$namespace`, as v0.2.1 selects them.
fn istio(v: &str) -> String {
    format!("destination_workload=~'[[{v}]]', destination_service_namespace='$namespace'")
}

/// The "Application Metrics" row of v0.2.1's dashboard for this telemetry.
pub fn application_panels(telemetry: Telemetry) -> Vec<PanelSpec> {
    let job = telemetry.job();
    let duration = telemetry.duration_metric();
    let unit = match telemetry {
        Telemetry::V1 => "s",
        Telemetry::V2 => "ms",
    };
    let legend = |v: &str| format!("${v}");
    let errors = |v: &str| {
        format!(
            "sum(increase(istio_requests_total{{job='{job}', {}, reporter = 'source', response_code =~ \"5..\"}}[$window_size]))",
            istio(v)
        )
    };
    let requests = |v: &str| {
        format!(
            "sum(increase(istio_requests_total{{job='{job}', {}, reporter = 'source'}}[$window_size]))",
            istio(v)
        )
    };
    let mut percentiles = PanelSpec {
        title: "Latency percentiles".into(),
        description: "25th, 50th, 75th and 95th percentile request duration of each version \
                      (iter8 v0.2.1's panel and query)."
            .into(),
        unit: unit.into(),
        queries: Vec::new(),
        thresholds: Vec::new(),
    };
    for (q, label) in [
        ("0.25", "25%"),
        ("0.50", "50%"),
        ("0.75", "75%"),
        ("0.95", "95%"),
    ] {
        for v in VERSIONS {
            percentiles.queries.push(Query {
                expr: format!(
                    "histogram_quantile({q}, sum(rate({duration}_bucket{{{}, reporter='source'}}[$window_size])) by (le))",
                    istio(v)
                ),
                legend: format!("${v}-{label}"),
            });
        }
    }
    vec![
        per_version(
            "Request rate",
            "reqps",
            "Requests per second to each version over $window_size",
            legend,
            |v| {
                format!(
                    "sum(rate(istio_requests_total{{{}, reporter='source'}}[$window_size]))",
                    istio(v)
                )
            },
        ),
        per_version(
            "Mean latency",
            unit,
            "Mean request duration of each version over $window_size",
            legend,
            |v| {
                format!(
                    "sum(increase({duration}_sum{{job='{job}', {}, reporter='source'}}[$window_size])) / {}",
                    istio(v),
                    requests(v)
                )
            },
        ),
        percentiles,
        per_version(
            "Error rate",
            "percentunit",
            "Share of each version's requests answered with a 5xx code over $window_size",
            legend,
            |v| format!("{} / {}", errors(v), requests(v)),
        ),
        per_version(
            "Error counts",
            "short",
            "Requests of each version answered with a 5xx code over $window_size",
            legend,
            errors,
        ),
    ]
}

/// The "Utilization Metrics" row of v0.2.1's dashboard (cAdvisor series; the same for both
/// telemetries).
pub fn utilization_panels() -> Vec<PanelSpec> {
    let legend = |v: &str| format!("{{{{${v}}}}}");
    let container = |function: &str, metric: &str, without_proxy: bool| {
        let proxy = if without_proxy {
            ", container_name!~\"istio-proxy\""
        } else {
            ""
        };
        let function = function.to_string();
        let metric = metric.to_string();
        move |v: &str| {
            format!(
                "sum({function}({metric}{{pod_name=~\"${v}.*\"{proxy}, namespace=\"$namespace\", image=~\".+\"}}[$window_size]))"
            )
        }
    };
    vec![
        per_version(
            "CPU Utilization ($window_size)",
            "short",
            "CPU seconds per second used by each version's containers (without the Istio proxy)",
            legend,
            container("rate", "container_cpu_usage_seconds_total", true),
        ),
        per_version(
            "Memory Usage of Working Set ($window_size)",
            "bytes",
            "Working-set memory of each version's containers (without the Istio proxy)",
            legend,
            container("avg_over_time", "container_memory_working_set_bytes", true),
        ),
        per_version(
            "Network Bytes Received ($window_size)",
            "Bps",
            "Bytes per second received by each version's pods",
            legend,
            container("rate", "container_network_receive_bytes_total", false),
        ),
        per_version(
            "Network Bytes Sent ($window_size)",
            "Bps",
            "Bytes per second sent by each version's pods",
            legend,
            container("rate", "container_network_transmit_bytes_total", false),
        ),
        per_version(
            "Disk Bytes Read ($window_size)",
            "Bps",
            "Bytes per second read from disk by each version's containers (without the Istio proxy)",
            legend,
            container("rate", "container_fs_reads_bytes_total", true),
        ),
        per_version(
            "Disk Bytes Written ($window_size)",
            "Bps",
            "Bytes per second written to disk by each version's containers (without the Istio proxy)",
            legend,
            container("rate", "container_fs_writes_bytes_total", true),
        ),
    ]
}
