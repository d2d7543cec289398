//! Validation of an Experiment against the rules of iter8 v0.2 (behaviour guide §1), returning
//! every problem at once, each naming its field path and the rule; and [`plan`], which turns a
//! valid experiment into the [`Plan`] the engine runs.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::duration::parse_go;
use crate::metrics_config::MetricsConfig;
use crate::model::{
    API_VERSION, DEFAULT_CONFIDENCE, DEFAULT_INTERVAL, DEFAULT_MAX_ITERATIONS,
    DEFAULT_MAX_TRAFFIC_PERCENTAGE, DEFAULT_SAMPLE_SIZE, DEFAULT_STEP_SIZE, Experiment,
    GATEWAY_API_GROUP, HTTP_ROUTE_KIND, OnSuccess, RoutingReference, Strategy, TargetKind,
    ToleranceType, UserAction,
};
use crate::plan::{Criterion, Plan, experiment_seed};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The experiment cannot run.
    Error,
    /// Worth knowing; the experiment can run.
    Warning,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The field path (`spec.trafficControl.trafficStepSize`).
    pub path: String,
    /// The rule that is broken.
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// What to do with a success criterion whose metric the configuration lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricCheck {
    /// It is an error (the configuration is the one the experiment will run with).
    Strict,
    /// It is a warning (the cluster's ConfigMap may define it).
    Lenient,
}

struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        self.0.push(Problem {
            severity: Severity::Error,
            path: path.into(),
            rule: rule.into(),
        });
    }
    fn warning(&mut self, path: impl Into<String>, rule: impl Into<String>) {
        self.0.push(Problem {
            severity: Severity::Warning,
            path: path.into(),
            rule: rule.into(),
        });
    }
}

/// Whether `s` is a DNS-1123 subdomain (what Kubernetes accepts as an object name): at most
/// 253 characters of dot-separated labels, each non-empty, of lower-case letters, digits and
/// '-', neither starting nor ending with '-'.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_ok)
}

fn check_name(p: &mut Problems, path: &str, value: Option<&str>, required: bool) {
    match value {
        None | Some("") if required => p.error(path, "is required"),
        None | Some("") => {}
        Some(v) if !is_dns1123_subdomain(v) => p.error(
            path,
            format!(
                "`{v}` is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')"
            ),
        ),
        Some(_) => {}
    }
}

/// Validates an experiment; metric names are checked against `metrics`.
pub fn validate(exp: &Experiment, metrics: &MetricsConfig, check: MetricCheck) -> Vec<Problem> {
    let mut p = Problems(Vec::new());
    if exp.api_version != API_VERSION {
        p.error(
            "apiVersion",
            format!("must be {API_VERSION}, not `{}`", exp.api_version),
        );
    }
    check_name(&mut p, "metadata.name", exp.metadata.name.as_deref(), true);
    if let Some(action) = &exp.action
        && !action.is_known()
    {
        p.error(
            "action",
            format!(
                "unknown action `{action}` (known: {})",
                UserAction::KNOWN.join(", ")
            ),
        );
    }

    let ts = &exp.spec.target_service;
    let kind = ts.kind();
    if !kind.is_known() {
        p.error(
            "spec.targetService.kind",
            format!("unknown kind `{kind}` (known: Deployment, Service)"),
        );
    }
    let api = ts.api_version.as_deref().unwrap_or("");
    let pair_ok = match kind {
        TargetKind::Deployment => matches!(api, "" | "apps/v1" | "v1"),
        TargetKind::Service => matches!(api, "" | "v1"),
        TargetKind::Unknown(_) => true,
    };
    if !pair_ok {
        p.error(
            "spec.targetService.apiVersion",
            format!(
                "`{api}` does not go with kind {kind} (Deployment: apps/v1 or v1; Service: v1)"
            ),
        );
    }
    check_name(
        &mut p,
        "spec.targetService.baseline",
        ts.baseline.as_deref(),
        true,
    );
    check_name(
        &mut p,
        "spec.targetService.candidate",
        ts.candidate.as_deref(),
        true,
    );
    check_name(&mut p, "spec.targetService.name", ts.name.as_deref(), false);
    check_name(
        &mut p,
        "spec.targetService.namespace",
        ts.namespace.as_deref(),
        false,
    );
    let http_route = exp
        .spec
        .routing_reference
        .as_ref()
        .is_some_and(RoutingReference::is_http_route);
    // An HTTPRoute's own parentRefs say where traffic comes from: no Service name is needed.
    if ts.name.as_deref().unwrap_or("").is_empty() && ts.hosts.is_empty() && !http_route {
        p.error("spec.targetService", "either name or hosts must be set");
    }
    if kind == TargetKind::Deployment && ts.name.as_deref().unwrap_or("").is_empty() {
        p.error("spec.targetService.name", "is required for kind Deployment");
    }
    if let Some(port) = ts.port
        && !(1..=65535).contains(&port)
    {
        p.error(
            "spec.targetService.port",
            format!("{port} is not a port (1-65535)"),
        );
    }
    let mut seen_hosts = BTreeSet::new();
    for (i, h) in ts.hosts.iter().enumerate() {
        let path = |field: &str| format!("spec.targetService.hosts[{i}].{field}");
        match h.name.as_deref() {
            None | Some("") => p.error(path("name"), "is required"),
            Some(name) => {
                if !seen_hosts.insert(name) {
                    p.error(path("name"), format!("duplicate host `{name}`"));
                }
            }
        }
        if h.gateway.as_deref().unwrap_or("").is_empty() {
            p.error(path("gateway"), "is required");
        }
    }

    let tc = &exp.spec.traffic_control;
    if let Some(s) = &tc.strategy
        && !s.is_known()
    {
        p.error(
            "spec.trafficControl.strategy",
            format!(
                "unknown strategy `{s}` (known: {})",
                Strategy::KNOWN.join(", ")
            ),
        );
    }
    if let Some(interval) = &tc.interval {
        match interval.parse() {
            Err(e) => p.error("spec.trafficControl.interval", e.to_string()),
            Ok(d) if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&d) => p.error(
                "spec.trafficControl.interval",
                format!("must be from 1s to 24h, not {interval}"),
            ),
            Ok(_) => {}
        }
    }
    if let Some(n) = tc.max_iterations
        && !(1..=MAX_ITERATIONS).contains(&n)
    {
        p.error(
            "spec.trafficControl.maxIterations",
            format!("must be from 1 to {MAX_ITERATIONS}, not {n}"),
        );
    }
    if let Some(step) = tc.traffic_step_size
        && !(step > 0.0 && step <= 100.0)
    {
        p.error(
            "spec.trafficControl.trafficStepSize",
            format!("must be more than 0 and at most 100, not {step}"),
        );
    }
    if let Some(max) = tc.max_traffic_percentage
        && !(max > 0.0 && max <= 100.0)
    {
        p.error(
            "spec.trafficControl.maxTrafficPercentage",
            format!("must be more than 0 and at most 100, not {max}"),
        );
    }
    if let Some(on) = &tc.on_success
        && !on.is_known()
    {
        p.error(
            "spec.trafficControl.onSuccess",
            format!(
                "unknown value `{on}` (known: {})",
                OnSuccess::KNOWN.join(", ")
            ),
        );
    }
    if let Some(c) = tc.confidence
        && !(c > 0.0 && c < 1.0)
    {
        p.error(
            "spec.trafficControl.confidence",
            format!("must be between 0 and 1, not {c}"),
        );
    }

    for (i, c) in exp.spec.analysis.success_criteria.iter().enumerate() {
        // The path is spelled out only for a problem (a valid spec formats nothing).
        let path = |field: &str| format!("spec.analysis.successCriteria[{i}].{field}");
        let metric = match c.metric_name.as_deref() {
            None | Some("") => {
                p.error(path("metricName"), "is required");
                None
            }
            Some(name) => match metrics.definition(name) {
                Some(m) => Some(m),
                None => {
                    let rule = format!("metric `{name}` is not in the metrics configuration");
                    match check {
                        MetricCheck::Strict => p.error(path("metricName"), rule),
                        MetricCheck::Lenient => p.warning(path("metricName"), rule),
                    }
                    None
                }
            },
        };
        match &c.tolerance_type {
            None => p.error(path("toleranceType"), "is required (threshold or delta)"),
            Some(t) if !t.is_known() => p.error(
                path("toleranceType"),
                format!("unknown tolerance type `{t}` (known: threshold, delta)"),
            ),
            Some(ToleranceType::Delta) if metric.as_ref().is_some_and(|m| m.is_counter) => p.error(
                path("toleranceType"),
                format!(
                    "delta cannot be used with counter metric `{}`",
                    c.metric_name.as_deref().unwrap_or("")
                ),
            ),
            Some(_) => {}
        }
        match c.tolerance {
            None => p.error(path("tolerance"), "is required"),
            Some(t) if !t.is_finite() => p.error(
                path("tolerance"),
                format!("must be a finite number, not {t}"),
            ),
            Some(t) if t < 0.0 => p.error(path("tolerance"), format!("must be 0 or more, not {t}")),
            Some(_) => {}
        }
        if let Some(n) = c.sample_size
            && !(0..=MAX_SAMPLE_SIZE).contains(&n)
        {
            p.error(
                path("sampleSize"),
                format!("must be from 0 to {MAX_SAMPLE_SIZE}, not {n}"),
            );
        }
        if let Some(mm) = &c.min_max {
            if !(mm.min.is_finite() && mm.max.is_finite()) {
                p.error(path("min_max"), "min and max must be finite numbers");
            } else if mm.min >= mm.max {
                p.error(path("min_max"), "min must be less than max");
            }
        }
    }
    if let Some(r) = &exp.spec.analysis.reward
        && !metrics.has_metric(&r.metric_name)
    {
        let rule = format!(
            "metric `{}` is not in the metrics configuration",
            r.metric_name
        );
        match check {
            MetricCheck::Strict => p.error("spec.analysis.reward.metricName", rule),
            MetricCheck::Lenient => p.warning("spec.analysis.reward.metricName", rule),
        }
    }
    if let Some(r) = &exp.spec.routing_reference {
        check_routing_reference(&mut p, r, &kind);
    }
    if let Some(c) = &exp.spec.cleanup
        && !c.is_known()
    {
        p.error(
            "spec.cleanup",
            format!("unknown value `{c}` (known: delete)"),
        );
    }
    p.0
}

/// The shortest `spec.trafficControl.interval` accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `spec.trafficControl.interval` accepted (a day).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The most `spec.trafficControl.maxIterations` accepted.
pub const MAX_ITERATIONS: i64 = 1000;
/// The largest `successCriteria[].sampleSize` accepted (a billion requests).
pub const MAX_SAMPLE_SIZE: i64 = 1_000_000_000;

/// `spec.routingReference`: a name, and for an HTTPRoute (which routes to Services) the
/// Service kind. Other kinds are refused when routing starts (`Referenced rule not supported`),
/// as iter8 v0.2 does.
fn check_routing_reference(p: &mut Problems, r: &RoutingReference, kind: &TargetKind) {
    check_name(p, "spec.routingReference.name", r.name.as_deref(), true);
    check_name(
        p,
        "spec.routingReference.namespace",
        r.namespace.as_deref(),
        false,
    );
    if r.kind() != HTTP_ROUTE_KIND {
        return;
    }
    if r.group() != GATEWAY_API_GROUP {
        p.error(
            "spec.routingReference.apiVersion",
            format!(
                "`{}` does not go with kind HTTPRoute (use {GATEWAY_API_GROUP}/v1)",
                r.api_version.as_deref().unwrap_or("")
            ),
        );
    }
    if *kind != TargetKind::Service {
        p.error(
            "spec.targetService.kind",
            format!(
                "must be Service with an HTTPRoute routingReference, not {kind}: Gateway API routes \
                 to Services, so the baseline and candidate name one Service each"
            ),
        );
    }
}

/// Whether any problem is an error.
pub fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

/// Validates strictly and builds the plan the engine runs: `Err` with the errors when there
/// are any.
pub fn plan(exp: &Experiment, metrics: &MetricsConfig) -> Result<Plan, Vec<Problem>> {
    let problems = validate(exp, metrics, MetricCheck::Strict);
    if has_errors(&problems) {
        return Err(problems
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect());
    }
    Ok(build_plan(exp, metrics))
}

/// The plan of an experiment without validation errors: defaults applied, metrics looked up.
fn build_plan(exp: &Experiment, metrics: &MetricsConfig) -> Plan {
    let spec = &exp.spec;
    let (ts, tc) = (&spec.target_service, &spec.traffic_control);
    // Validation guarantees that every criterion has a known metric and a tolerance, and that
    // the interval parses: nothing below is dropped or falls back.
    let criteria = spec
        .analysis
        .success_criteria
        .iter()
        .filter_map(|c| {
            Some(Criterion {
                metric: metrics.metric(c.metric_name.as_deref()?)?,
                tolerance_type: c.tolerance_type.clone()?,
                tolerance: c.tolerance?,
                sample_size: u64::try_from(c.sample_size.unwrap_or(DEFAULT_SAMPLE_SIZE)).ok()?,
                stop_on_failure: c.stop_on_failure.unwrap_or(false),
                min_max: c.min_max.clone(),
            })
        })
        .collect();
    let reward = spec
        .analysis
        .reward
        .as_ref()
        .and_then(|r| Some((metrics.metric(&r.metric_name)?, r.min_max.clone())));
    let interval = tc
        .interval
        .as_ref()
        .map_or(DEFAULT_INTERVAL, |i| i.as_str());
    Plan {
        kind: ts.kind(),
        service: ts.name.clone().unwrap_or_default(),
        namespace: exp.target_namespace().to_string(),
        baseline: ts.baseline().to_string(),
        candidate: ts.candidate().to_string(),
        strategy: spec.strategy(),
        interval: parse_go(interval).unwrap_or(MIN_INTERVAL),
        max_iterations: tc
            .max_iterations
            .unwrap_or(DEFAULT_MAX_ITERATIONS)
            .clamp(1, MAX_ITERATIONS) as u32,
        step_size: tc.traffic_step_size.unwrap_or(DEFAULT_STEP_SIZE),
        max_traffic_percentage: tc
            .max_traffic_percentage
            .unwrap_or(DEFAULT_MAX_TRAFFIC_PERCENTAGE),
        on_success: tc.on_success.clone().unwrap_or(OnSuccess::Candidate),
        confidence: tc.confidence.unwrap_or(DEFAULT_CONFIDENCE),
        criteria,
        reward,
        cleanup: spec.cleanup.is_some(),
        analytics_service: spec.analytics_service().to_string(),
        seed: experiment_seed(exp),
    }
}

#[cfg(test)]
mod tests {
    use super::is_dns1123_subdomain;

    #[test]
    fn names_are_judged_as_kubernetes_does() {
        for ok in ["reviews", "reviews-v3", "a.b-c.d", "0", "a-1.b"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "-a", "a-", "a-.b", "a.-b", "Reviews", "a_b", "é",
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain(&"a".repeat(253)));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }
}
