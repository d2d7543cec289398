//! Validation of an Experiment against the rules of iter8 v0.2 (behaviour guide §1), returning
//! every problem at once, each naming its field path and the rule; and [`plan`], which turns a
//! valid experiment into the [`Plan`] the engine runs.

use std::collections::BTreeSet;
use std::fmt;

use crate::metrics_config::MetricsConfig;
use crate::model::{
    API_VERSION, Experiment, GATEWAY_API_GROUP, HTTP_ROUTE_KIND, OnSuccess, RoutingReference,
    Strategy, TargetKind, ToleranceType, UserAction,
};
use crate::plan::{Criterion, Plan, Settings};

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

/// A field path, formatted only when a problem names it.
struct Path<'a>(fmt::Arguments<'a>);

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_fmt(self.0)
    }
}

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

/// Whether `s` is a DNS-1123 subdomain (what Kubernetes accepts as an object name).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    // One pass over the bytes (validation runs on every reconcile): dot-separated labels, none
    // empty, of lower-case letters, digits and '-', none starting or ending with '-'.
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let mut prev = b'.';
    for &c in s.as_bytes() {
        let ok = match c {
            b'a'..=b'z' | b'0'..=b'9' => true,
            b'-' => prev != b'.',
            b'.' => prev != b'.' && prev != b'-',
            _ => false,
        };
        if !ok {
            return false;
        }
        prev = c;
    }
    prev != b'-' && prev != b'.'
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
        // Paths are formatted only for a problem: validation runs on every reconcile.
        let path = Path(format_args!("spec.targetService.hosts[{i}]"));
        match h.name.as_deref() {
            None | Some("") => p.error(format!("{path}.name"), "is required"),
            Some(name) => {
                if !seen_hosts.insert(name) {
                    p.error(format!("{path}.name"), format!("duplicate host `{name}`"));
                }
            }
        }
        if h.gateway.as_deref().unwrap_or("").is_empty() {
            p.error(format!("{path}.gateway"), "is required");
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
            Ok(d) if d.is_zero() => {
                p.error("spec.trafficControl.interval", "must be longer than 0")
            }
            Ok(_) => {}
        }
    }
    if let Some(n) = tc.max_iterations
        && n < 1
    {
        p.error(
            "spec.trafficControl.maxIterations",
            format!("must be at least 1, not {n}"),
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
        let path = Path(format_args!("spec.analysis.successCriteria[{i}]"));
        let metric = match c.metric_name.as_deref() {
            None | Some("") => {
                p.error(format!("{path}.metricName"), "is required");
                None
            }
            Some(name) => match metrics.definition(name) {
                Some(m) => Some(m),
                None => {
                    let rule = format!("metric `{name}` is not in the metrics configuration");
                    match check {
                        MetricCheck::Strict => p.error(format!("{path}.metricName"), rule),
                        MetricCheck::Lenient => p.warning(format!("{path}.metricName"), rule),
                    }
                    None
                }
            },
        };
        match &c.tolerance_type {
            None => p.error(
                format!("{path}.toleranceType"),
                "is required (threshold or delta)",
            ),
            Some(t) if !t.is_known() => p.error(
                format!("{path}.toleranceType"),
                format!("unknown tolerance type `{t}` (known: threshold, delta)"),
            ),
            Some(ToleranceType::Delta) if metric.as_ref().is_some_and(|m| m.is_counter) => p.error(
                format!("{path}.toleranceType"),
                format!(
                    "delta cannot be used with counter metric `{}`",
                    c.metric_name.as_deref().unwrap_or("")
                ),
            ),
            Some(_) => {}
        }
        match c.tolerance {
            None => p.error(format!("{path}.tolerance"), "is required"),
            Some(t) if !t.is_finite() || t < 0.0 => p.error(
                format!("{path}.tolerance"),
                format!("must be 0 or more, not {t}"),
            ),
            Some(_) => {}
        }
        if let Some(n) = c.sample_size
            && n < 0
        {
            p.error(
                format!("{path}.sampleSize"),
                format!("must be 0 or more, not {n}"),
            );
        }
        if let Some(mm) = &c.min_max
            && mm.min.partial_cmp(&mm.max) != Some(std::cmp::Ordering::Less)
        {
            p.error(format!("{path}.min_max"), "min must be less than max");
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

/// Validates strictly and builds the plan the engine runs.
pub fn plan(exp: &Experiment, metrics: &MetricsConfig) -> Result<Plan, Vec<Problem>> {
    check(exp, metrics)?;
    Ok(build_plan(exp, metrics, &Settings::of(exp)))
}

/// Validates strictly: `Err` with the errors when there are any.
pub(crate) fn check(exp: &Experiment, metrics: &MetricsConfig) -> Result<(), Vec<Problem>> {
    let problems = validate(exp, metrics, MetricCheck::Strict);
    if has_errors(&problems) {
        return Err(problems
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .collect());
    }
    Ok(())
}

/// The plan of an experiment that passed [`check`], from its settings.
pub(crate) fn build_plan(exp: &Experiment, metrics: &MetricsConfig, s: &Settings) -> Plan {
    let (criteria, reward) = criteria(exp, metrics);
    Plan {
        kind: exp.spec.target_service.kind(),
        service: s.service.to_string(),
        namespace: exp.target_namespace().to_string(),
        baseline: s.baseline.to_string(),
        candidate: s.candidate.to_string(),
        strategy: s.strategy.clone(),
        interval: s.interval,
        max_iterations: s.max_iterations,
        step_size: s.step_size,
        max_traffic_percentage: s.max_traffic_percentage,
        on_success: s.on_success.clone(),
        confidence: s.confidence,
        criteria,
        reward,
        cleanup: s.cleanup,
    }
}

/// The success criteria (with their metrics and defaults) and the reward metric of an
/// experiment that passed [`check`]: what an analysis request needs of its plan.
pub(crate) fn criteria(
    exp: &Experiment,
    metrics: &MetricsConfig,
) -> (
    Vec<Criterion>,
    Option<(crate::metrics_config::Metric, Option<crate::model::MinMax>)>,
) {
    // Defaults are applied field by field: cloning the spec with `with_defaults` on every
    // reconcile would cost more than the rest of the plan.
    let spec = &exp.spec;
    let criteria = spec
        .analysis
        .success_criteria
        .iter()
        .filter_map(|c| {
            Some(Criterion {
                metric: metrics.metric(c.metric_name.as_deref()?)?,
                tolerance_type: c.tolerance_type.clone()?,
                tolerance: c.tolerance?,
                sample_size: u64::try_from(
                    c.sample_size.unwrap_or(crate::model::DEFAULT_SAMPLE_SIZE),
                )
                .ok()?,
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
    (criteria, reward)
}

#[cfg(test)]
mod tests {
    use super::is_dns1123_subdomain;

    /// The rule as written: split into labels, then check each.
    fn by_labels(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    }

    #[test]
    fn names_are_judged_as_kubernetes_does() {
        for ok in ["reviews", "reviews-v3", "a.b-c.d", "0", "a-1.b"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "-a", "a-", "a-.b", "a.-b", "Reviews", "a_b",
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
    }

    proptest::proptest! {
        #[test]
        fn one_pass_agrees_with_the_rule_by_labels(s in "[a-z0-9.\\-A_]{0,12}") {
            proptest::prop_assert_eq!(is_dns1123_subdomain(&s), by_labels(&s));
        }
    }
}
