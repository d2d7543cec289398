//! The experiment dashboard (uid `eXPEaNnZz`): request rate, mean latency and error rate per
//! version, plus a panel for every other metric the experiment's criteria use.

use iter8_core::{Experiment, MetricsConfig, SuccessCriterion, TargetKind, ToleranceType};
use serde_json::{Value, json};

use crate::panels::{self, Grid, PanelSpec, Query};
use crate::promql::{TemplateValues, add_matchers, fill_template};
use crate::telemetry::Telemetry;
use crate::v021;

/// The dashboard's uid, the one `status.grafanaURL` links to.
pub const DASHBOARD_UID: &str = "eXPEaNnZz";
/// The dashboard's title; also the slug in its URL.
pub const DASHBOARD_TITLE: &str = "iter8-application-metrics";
/// The dashboard JSON schema version written (Grafana 11; later versions migrate it).
pub const SCHEMA_VERSION: u32 = 39;

/// The window of the time series panels: Grafana's safe interval for `rate`/`increase`.
pub const SERIES_WINDOW: &str = "$__rate_interval";
/// The window of the stat panels: the dashboard's whole time range (the experiment's, when
/// opened from `status.grafanaURL`), as iter8 measures from the experiment's start.
pub const RANGE_WINDOW: &str = "$__range";

/// What the dashboard is built from.
#[derive(Debug, Clone, Copy)]
pub struct DashboardInput<'a> {
    /// Which Istio telemetry the stock panels query.
    pub telemetry: Telemetry,
    /// The metrics configuration the criteria's metrics are looked up in.
    pub metrics: &'a MetricsConfig,
    /// The experiment whose criteria get panels and thresholds; `None` for the generic dashboard.
    pub experiment: Option<&'a Experiment>,
}

/// Why a dashboard could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DashboardError {
    /// A success criterion names no metric.
    #[error("spec.analysis.successCriteria[{index}]: metricName is missing")]
    MissingMetricName {
        /// The criterion's index.
        index: usize,
    },
    /// A criterion or the reward names a metric the metrics configuration lacks.
    #[error("{field}: metric `{metric}` is not in the metrics configuration (it has: {known})")]
    UnknownMetric {
        /// Where the metric is named (e.g. `spec.analysis.successCriteria[0]`).
        field: String,
        /// The metric's name.
        metric: String,
        /// The metrics the configuration has, comma-separated.
        known: String,
    },
}

/// The labels that tell versions and their namespace apart in Istio's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Labels {
    version: &'static str,
    namespace: &'static str,
}

impl Labels {
    fn for_kind(kind: TargetKind) -> Labels {
        match kind {
            TargetKind::Service => Labels {
                version: "destination_service_name",
                namespace: "destination_service_namespace",
            },
            _ => Labels {
                version: "destination_workload",
                namespace: "destination_workload_namespace",
            },
        }
    }

    /// Matchers selecting one version (`$baseline` or `$candidate`) in `$namespace`.
    fn matchers(&self, version_var: &str) -> String {
        format!(
            "{}='{version_var}', {}='$namespace'",
            self.version, self.namespace
        )
    }
}

/// One metric the experiment uses, with the criteria on it.
struct MetricUse<'a> {
    name: &'a str,
    criteria: Vec<&'a SuccessCriterion>,
}

impl MetricUse<'_> {
    fn thresholds(&self) -> Vec<f64> {
        self.criteria
            .iter()
            .filter(|c| c.tolerance_type == Some(ToleranceType::Threshold))
            .filter_map(|c| c.tolerance)
            .collect()
    }

    fn deltas(&self) -> Vec<f64> {
        self.criteria
            .iter()
            .filter(|c| c.tolerance_type == Some(ToleranceType::Delta))
            .filter_map(|c| c.tolerance)
            .collect()
    }
}

/// Builds the dashboard JSON (the `dashboard` object of Grafana's import and HTTP API).
pub fn build_dashboard(input: &DashboardInput<'_>) -> Result<Value, DashboardError> {
    let kind = input
        .experiment
        .map(|e| e.spec.target_service.kind())
        .unwrap_or(TargetKind::Deployment);
    let labels = Labels::for_kind(kind);
    let uses = metric_uses(input)?;
    let builder = Builder {
        telemetry: input.telemetry,
        metrics: input.metrics,
        labels,
    };

    let mut grid = Grid::default();
    let mut id = 0u32;
    let mut next_id = || {
        id += 1;
        id
    };
    let mut panels = vec![panels::row(next_id(), "Application metrics", &mut grid)];
    let base = builder.base_panels(&uses);
    for spec in &base {
        panels.push(panels::timeseries(next_id(), spec, grid.place(8, 8)));
    }
    let extra: Vec<&MetricUse<'_>> = uses
        .iter()
        .filter(|u| !builder.has_base_panel(u.name))
        .collect();
    let has_criteria = uses.iter().any(|u| !u.criteria.is_empty());
    if !extra.is_empty() || has_criteria {
        panels.push(panels::row(next_id(), "Success criteria", &mut grid));
    }
    for u in &extra {
        let spec = builder.metric_panel(u);
        panels.push(panels::timeseries(next_id(), &spec, grid.place(12, 8)));
    }
    grid.new_line();
    for u in &uses {
        for c in &u.criteria {
            let spec = builder.criterion_stat(u.name, c);
            panels.push(panels::stat(next_id(), &spec, grid.place(8, 5)));
        }
    }

    // iter8 v0.2.1's panels, collapsed below ours: the same titles and queries.
    for (title, specs) in [
        (
            "iter8 v0.2.1: application metrics",
            v021::application_panels(input.telemetry),
        ),
        (
            "iter8 v0.2.1: utilization metrics",
            v021::utilization_panels(),
        ),
    ] {
        let row_id = next_id();
        let nested: Vec<(u32, PanelSpec)> = specs.into_iter().map(|s| (next_id(), s)).collect();
        panels.push(panels::collapsed_row(row_id, title, &mut grid, &nested));
    }

    let mut description = format!(
        "iter8 canary experiment: request rate, mean latency and error rate of the baseline and \
         candidate versions (Istio telemetry {}).",
        input.telemetry
    );
    if let Some(e) = input.experiment {
        description.push_str(&format!(" Criteria panels from experiment {}.", e.name()));
    }
    Ok(json!({
        "uid": DASHBOARD_UID,
        "title": DASHBOARD_TITLE,
        "description": description,
        "tags": ["iter8", "istio", "canary"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "fiscalYearStartMonth": 0,
        "liveNow": false,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "templating": {"list": variables(labels, input.experiment)},
        "panels": panels,
    }))
}

/// The metrics the experiment's criteria (and reward) use, in order of first use.
fn metric_uses<'a>(input: &DashboardInput<'a>) -> Result<Vec<MetricUse<'a>>, DashboardError> {
    let Some(exp) = input.experiment else {
        return Ok(Vec::new());
    };
    let known = || {
        input
            .metrics
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut uses: Vec<MetricUse<'a>> = Vec::new();
    let mut add = |name: &'a str, field: String, criterion: Option<&'a SuccessCriterion>| {
        if !input.metrics.has_metric(name) {
            return Err(DashboardError::UnknownMetric {
                field,
                metric: name.to_string(),
                known: known(),
            });
        }
        let pos = match uses.iter().position(|u| u.name == name) {
            Some(p) => p,
            None => {
                uses.push(MetricUse {
                    name,
                    criteria: Vec::new(),
                });
                uses.len() - 1
            }
        };
        uses[pos].criteria.extend(criterion);
        Ok(())
    };
    for (index, c) in exp.spec.analysis.success_criteria.iter().enumerate() {
        let name = c
            .metric_name
            .as_deref()
            .ok_or(DashboardError::MissingMetricName { index })?;
        add(
            name,
            format!("spec.analysis.successCriteria[{index}]"),
            Some(c),
        )?;
    }
    if let Some(r) = &exp.spec.analysis.reward {
        add(&r.metric_name, "spec.analysis.reward".into(), None)?;
    }
    Ok(uses)
}

fn number(v: f64) -> String {
    format!("{v}")
}

fn unit_for(metric: &str) -> &'static str {
    if metric.contains("latency") || metric.contains("duration") {
        "ms"
    } else if metric.ends_with("error_rate") {
        "percentunit"
    } else {
        "short"
    }
}

fn describe(metric: &str, c: &SuccessCriterion) -> String {
    let tol = c.tolerance.map(number).unwrap_or_else(|| "?".into());
    let rule = match c.tolerance_type {
        Some(ToleranceType::Threshold) => format!("the candidate's {metric} must be at most {tol}"),
        Some(ToleranceType::Delta) => {
            format!("the candidate's {metric} must be at most (1 + {tol}) times the baseline's")
        }
        _ => format!("{metric} (no known toleranceType)"),
    };
    let sample = c
        .sample_size
        .unwrap_or(iter8_core::model::DEFAULT_SAMPLE_SIZE);
    format!("Success criterion: {rule}, judged once a version has at least {sample} requests.")
}

struct Builder<'a> {
    telemetry: Telemetry,
    metrics: &'a MetricsConfig,
    labels: Labels,
}

impl Builder<'_> {
    /// Whether a metric is drawn on a stock panel: `iter8_latency` and `iter8_error_rate`, as
    /// long as the configuration defines them as the stock configuration does.
    fn has_base_panel(&self, metric: &str) -> bool {
        if metric != "iter8_latency" && metric != "iter8_error_rate" {
            return false;
        }
        let squash = |s: &str| s.split_whitespace().collect::<String>();
        let stock = self.telemetry.stock_metrics();
        match (
            self.metrics.query_templates.get(metric),
            stock.query_templates.get(metric),
        ) {
            (Some(ours), Some(theirs)) => squash(ours) == squash(theirs),
            _ => false,
        }
    }

    fn selector(&self, version_var: &str, extra: &str) -> String {
        format!(
            "job='{}', reporter='source', {}{extra}",
            self.telemetry.job(),
            self.labels.matchers(version_var)
        )
    }

    fn request_rate(&self, v: &str) -> String {
        format!(
            "sum(rate(istio_requests_total{{{}}}[{SERIES_WINDOW}]))",
            self.selector(v, "")
        )
    }

    fn mean_latency(&self, v: &str) -> String {
        let m = self.telemetry.duration_metric();
        let sel = self.selector(v, "");
        let ratio = format!(
            "sum(rate({m}_sum{{{sel}}}[{SERIES_WINDOW}])) / sum(rate({m}_count{{{sel}}}[{SERIES_WINDOW}]))"
        );
        match self.telemetry.to_millis() {
            1 => ratio,
            f => format!("({ratio}) * {f}"),
        }
    }

    fn error_rate(&self, v: &str) -> String {
        format!(
            "sum(rate(istio_requests_total{{{}}}[{SERIES_WINDOW}])) / sum(rate(istio_requests_total{{{}}}[{SERIES_WINDOW}]))",
            self.selector(v, ", response_code=~'5..'"),
            self.selector(v, "")
        )
    }

    /// The baseline and candidate series, plus one limit series per delta criterion.
    fn version_queries(&self, expr: impl Fn(&str) -> String, deltas: &[f64]) -> Vec<Query> {
        let mut queries = vec![
            Query {
                expr: expr("$baseline"),
                legend: "$baseline".into(),
            },
            Query {
                expr: expr("$candidate"),
                legend: "$candidate".into(),
            },
        ];
        for d in deltas {
            queries.push(Query {
                expr: format!("({}) * {}", expr("$baseline"), number(1.0 + d)),
                legend: format!("limit for $candidate ($baseline × {})", number(1.0 + d)),
            });
        }
        queries
    }

    fn base_panels(&self, uses: &[MetricUse<'_>]) -> Vec<PanelSpec> {
        let on = |metric: &str| {
            uses.iter()
                .find(|u| u.name == metric && self.has_base_panel(metric))
        };
        let criteria_note = |u: Option<&MetricUse<'_>>| {
            u.map(|u| {
                u.criteria
                    .iter()
                    .map(|c| format!(" {}", describe(u.name, c)))
                    .collect::<String>()
            })
            .unwrap_or_default()
        };
        let latency = on("iter8_latency");
        let errors = on("iter8_error_rate");
        let job = self.telemetry.job();
        vec![
            PanelSpec {
                title: "Request rate".into(),
                description: format!(
                    "Requests per second to each version (istio_requests_total, job {job}, reporter source)."
                ),
                unit: "reqps".into(),
                queries: self.version_queries(|v| self.request_rate(v), &[]),
                thresholds: Vec::new(),
            },
            PanelSpec {
                title: "Mean latency".into(),
                description: format!(
                    "Mean request duration of each version in milliseconds ({}, job {job}); iter8_latency.{}",
                    self.telemetry.duration_metric(),
                    criteria_note(latency)
                ),
                unit: "ms".into(),
                queries: self.version_queries(
                    |v| self.mean_latency(v),
                    &latency.map(MetricUse::deltas).unwrap_or_default(),
                ),
                thresholds: latency.map(MetricUse::thresholds).unwrap_or_default(),
            },
            PanelSpec {
                title: "Error rate".into(),
                description: format!(
                    "Share of each version's requests answered with a 5xx code (job {job}); iter8_error_rate.{}",
                    criteria_note(errors)
                ),
                unit: "percentunit".into(),
                queries: self.version_queries(
                    |v| self.error_rate(v),
                    &errors.map(MetricUse::deltas).unwrap_or_default(),
                ),
                thresholds: errors.map(MetricUse::thresholds).unwrap_or_default(),
            },
        ]
    }

    /// The metric's query template as a panel query for one version.
    fn derived(&self, metric: &str, window: &str, version_var: &str) -> String {
        let template = self
            .metrics
            .query_templates
            .get(metric)
            .map(|t| &**t)
            .unwrap_or_default();
        let filled = fill_template(
            template,
            &TemplateValues {
                interval: window,
                entity_labels: self.labels.version,
            },
        );
        add_matchers(&filled, &self.labels.matchers(version_var))
    }

    fn metric_panel(&self, u: &MetricUse<'_>) -> PanelSpec {
        let mut description = format!(
            "{} per version over a sliding window, from its query template in the metrics configuration.",
            u.name
        );
        for c in &u.criteria {
            description.push(' ');
            description.push_str(&describe(u.name, c));
        }
        if u.criteria.is_empty() {
            description.push_str(" The experiment's reward metric.");
        }
        PanelSpec {
            title: u.name.to_string(),
            description,
            unit: unit_for(u.name).into(),
            queries: self.version_queries(|v| self.derived(u.name, SERIES_WINDOW, v), &u.deltas()),
            thresholds: u.thresholds(),
        }
    }

    fn criterion_stat(&self, metric: &str, c: &SuccessCriterion) -> PanelSpec {
        let tol = c.tolerance.map(number).unwrap_or_else(|| "?".into());
        let (title, thresholds, deltas) = match (&c.tolerance_type, c.tolerance) {
            (Some(ToleranceType::Threshold), Some(t)) => {
                (format!("{metric} ≤ {tol}"), vec![t], vec![])
            }
            (Some(ToleranceType::Delta), Some(d)) => (
                format!("{metric} ≤ baseline × {}", number(1.0 + d)),
                vec![],
                vec![d],
            ),
            _ => (metric.to_string(), vec![], vec![]),
        };
        PanelSpec {
            title,
            description: format!(
                "{} Values over the dashboard's whole time range, as iter8 measures them from the \
                 experiment's start (open the dashboard from status.grafanaURL).",
                describe(metric, c)
            ),
            unit: unit_for(metric).into(),
            queries: self.version_queries(|v| self.derived(metric, RANGE_WINDOW, v), &deltas),
            thresholds,
        }
    }
}

fn variables(labels: Labels, experiment: Option<&Experiment>) -> Vec<Value> {
    let ts = experiment.map(|e| &e.spec.target_service);
    let namespace = experiment.and_then(|e| {
        e.spec
            .target_service
            .namespace
            .as_deref()
            .or(e.metadata.namespace.as_deref())
    });
    let versions_query = match labels.version {
        "destination_service_name" => {
            "label_values(istio_requests_total{destination_service_namespace='$namespace'}, destination_service_name)".to_string()
        }
        version => format!(
            "label_values(istio_requests_total{{destination_service_name='$service', {}='$namespace'}}, {version})",
            labels.namespace
        ),
    };
    vec![
        json!({
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "hide": 0,
            "refresh": 1,
            "options": [],
        }),
        query_variable(
            "namespace",
            "Namespace",
            &format!(
                "label_values(istio_requests_total{{reporter='source'}}, {})",
                labels.namespace
            ),
            namespace,
        ),
        query_variable(
            "service",
            "Service",
            "label_values(istio_requests_total{destination_service_namespace='$namespace'}, destination_service_name)",
            ts.and_then(|t| t.name.as_deref()),
        ),
        query_variable(
            "baseline",
            "Baseline",
            &versions_query,
            ts.and_then(|t| t.baseline.as_deref()),
        ),
        query_variable(
            "candidate",
            "Candidate",
            &versions_query,
            ts.and_then(|t| t.candidate.as_deref()),
        ),
        window_size_variable(),
    ]
}

/// v0.2.1's `window_size`: the range its panels compute rates and increases over.
fn window_size_variable() -> Value {
    let sizes = [
        "30s", "1m", "10m", "30m", "1h", "6h", "12h", "1d", "7d", "14d", "30d",
    ];
    let options: Vec<Value> = sizes
        .iter()
        .map(|s| json!({"selected": *s == "30s", "text": s, "value": s}))
        .collect();
    json!({
        "type": "interval",
        "name": "window_size",
        "label": "Window Size",
        "query": sizes.join(","),
        "current": {"selected": true, "text": "30s", "value": "30s"},
        "options": options,
        "auto": false,
        "refresh": 2,
        "hide": 0,
    })
}

fn query_variable(name: &str, label: &str, query: &str, current: Option<&str>) -> Value {
    let mut v = json!({
        "type": "query",
        "name": name,
        "label": label,
        "datasource": panels::datasource(),
        "query": query,
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "multi": false,
        "includeAll": false,
        "allowCustomValue": true,
        "options": [],
    });
    if let (Some(cur), Some(obj)) = (current, v.as_object_mut()) {
        obj.insert(
            "current".into(),
            json!({"selected": true, "text": cur, "value": cur}),
        );
    }
    v
}
