//! Validation names every problem at once, each with its field path and rule.

mod support;

use iter8_core::MetricsConfig;
use iter8_core::validation::{MetricCheck, Severity, plan, validate};
use support::*;

fn problems(yaml: &str) -> Vec<String> {
    validate(&experiment(yaml), &metrics(), MetricCheck::Strict)
        .iter()
        .map(|p| p.to_string())
        .collect()
}

fn doc(target: &str, traffic: &str, analysis: &str) -> String {
    format!(
        "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: e\nspec:\n  targetService:\n{target}\n  trafficControl:\n{traffic}\n  analysis:\n{analysis}\n"
    )
}

const TARGET: &str = "    name: reviews\n    baseline: reviews-v2\n    candidate: reviews-v3";
const TRAFFIC: &str = "    interval: 30s";
const ANALYSIS: &str = "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: threshold\n      tolerance: 200";

#[test]
fn a_valid_experiment_has_no_problems() {
    assert_eq!(
        problems(&doc(TARGET, TRAFFIC, ANALYSIS)),
        Vec::<String>::new()
    );
}

#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            doc(
                "    name: reviews\n    candidate: reviews-v3",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.baseline: is required",
        ),
        (
            doc(
                "    name: reviews\n    baseline: reviews-v2",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.candidate: is required",
        ),
        (
            doc(
                "    kind: Service\n    baseline: a\n    candidate: b",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService: either name or hosts must be set",
        ),
        (
            doc(
                "    kind: Service\n    apiVersion: apps/v1\n    name: s\n    baseline: a\n    candidate: b",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.apiVersion: `apps/v1` does not go with kind Service",
        ),
        (
            doc(
                "    kind: Deployment\n    apiVersion: batch/v1\n    name: s\n    baseline: a\n    candidate: b",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.apiVersion: `batch/v1` does not go with kind Deployment",
        ),
        (
            doc(
                "    kind: StatefulSet\n    name: s\n    baseline: a\n    candidate: b",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.kind: unknown kind `StatefulSet`",
        ),
        (
            doc(TARGET, "    strategy: fastest", ANALYSIS),
            "spec.trafficControl.strategy: unknown strategy `fastest`",
        ),
        (
            doc(TARGET, "    trafficStepSize: 0", ANALYSIS),
            "spec.trafficControl.trafficStepSize: must be more than 0 and at most 100, not 0",
        ),
        (
            doc(TARGET, "    trafficStepSize: 101", ANALYSIS),
            "spec.trafficControl.trafficStepSize: must be more than 0 and at most 100, not 101",
        ),
        (
            doc(TARGET, "    maxTrafficPercentage: 0", ANALYSIS),
            "spec.trafficControl.maxTrafficPercentage: must be more than 0 and at most 100, not 0",
        ),
        (
            doc(TARGET, "    maxTrafficPercentage: 100.5", ANALYSIS),
            "spec.trafficControl.maxTrafficPercentage: must be more than 0 and at most 100, not 100.5",
        ),
        (
            doc(TARGET, "    maxIterations: 0", ANALYSIS),
            "spec.trafficControl.maxIterations: must be from 1 to 1000, not 0",
        ),
        (
            doc(TARGET, "    interval: soon", ANALYSIS),
            "spec.trafficControl.interval: `soon` is not a duration",
        ),
        (
            doc(TARGET, "    interval: 0s", ANALYSIS),
            "spec.trafficControl.interval: must be from 1s to 24h, not 0s",
        ),
        (
            doc(TARGET, "    interval: 500ms", ANALYSIS),
            "spec.trafficControl.interval: must be from 1s to 24h, not 500ms",
        ),
        (
            doc(TARGET, "    interval: 25h", ANALYSIS),
            "spec.trafficControl.interval: must be from 1s to 24h, not 25h",
        ),
        (
            doc(TARGET, "    maxIterations: 1001", ANALYSIS),
            "spec.trafficControl.maxIterations: must be from 1 to 1000, not 1001",
        ),
        (
            doc(TARGET, "    onSuccess: everyone", ANALYSIS),
            "spec.trafficControl.onSuccess: unknown value `everyone`",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: within\n      tolerance: 2",
            ),
            "spec.analysis.successCriteria[0].toleranceType: unknown tolerance type `within`",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: threshold\n      tolerance: -1",
            ),
            "spec.analysis.successCriteria[0].tolerance: must be 0 or more, not -1",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: threshold\n      tolerance: 1\n      sampleSize: -5",
            ),
            "spec.analysis.successCriteria[0].sampleSize: must be from 0 to 1000000000, not -5",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: threshold\n      tolerance: 1\n      sampleSize: 1000000001",
            ),
            "spec.analysis.successCriteria[0].sampleSize: must be from 0 to 1000000000, not 1000000001",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_wow\n      toleranceType: threshold\n      tolerance: 1",
            ),
            "spec.analysis.successCriteria[0].metricName: metric `iter8_wow` is not in the metrics configuration",
        ),
        (
            doc(
                TARGET,
                TRAFFIC,
                "    successCriteria:\n    - metricName: iter8_error_count\n      toleranceType: delta\n      tolerance: 1",
            ),
            "spec.analysis.successCriteria[0].toleranceType: delta cannot be used with counter metric `iter8_error_count`",
        ),
        (
            doc(
                &format!(
                    "{TARGET}\n    hosts:\n    - name: a.com\n      gateway: g\n    - name: a.com\n      gateway: g"
                ),
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.hosts[1].name: duplicate host `a.com`",
        ),
        (
            doc(&format!("{TARGET}\n    port: 70000"), TRAFFIC, ANALYSIS),
            "spec.targetService.port: 70000 is not a port",
        ),
        (
            doc(
                "    name: reviews\n    baseline: Reviews_V2\n    candidate: reviews-v3",
                TRAFFIC,
                ANALYSIS,
            ),
            "spec.targetService.baseline: `Reviews_V2` is not a valid Kubernetes name",
        ),
        (
            doc(TARGET, TRAFFIC, ANALYSIS).replace("iter8.tools/v1alpha1", "iter8.tools/v2"),
            "apiVersion: must be iter8.tools/v1alpha1, not `iter8.tools/v2`",
        ),
        (
            format!("{}action: explode\n", doc(TARGET, TRAFFIC, ANALYSIS)),
            "action: unknown action `explode`",
        ),
    ];
    for (yaml, expected) in cases {
        let found = problems(&yaml);
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "expected `{expected}` in {found:?}"
        );
    }
}

#[test]
fn non_finite_numbers_are_rejected_naming_the_field() {
    // Manifests cannot spell them (the parser refuses `.inf`); a spec built in code can.
    let mut exp = experiment(&doc(TARGET, TRAFFIC, ANALYSIS));
    let c = &mut exp.spec.analysis.success_criteria[0];
    c.tolerance = Some(f64::INFINITY);
    c.min_max = Some(iter8_core::MinMax {
        min: 0.0,
        max: f64::NAN,
    });
    let found: Vec<String> = validate(&exp, &metrics(), MetricCheck::Strict)
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        found,
        [
            "spec.analysis.successCriteria[0].tolerance: must be a finite number, not inf",
            "spec.analysis.successCriteria[0].min_max: min and max must be finite numbers",
        ]
    );
}

#[test]
fn the_longest_interval_and_the_most_iterations_are_accepted() {
    let yaml = doc(
        TARGET,
        "    interval: 24h\n    maxIterations: 1000",
        ANALYSIS,
    );
    assert_eq!(problems(&yaml), Vec::<String>::new());
    let p = plan(&experiment(&yaml), &metrics()).unwrap();
    assert_eq!(p.interval, std::time::Duration::from_secs(24 * 3600));
    assert_eq!(p.max_iterations, 1000);
}

#[test]
fn an_interval_past_the_calendar_is_rejected_naming_the_field() {
    // Added to a timestamp this interval overflows any date: it must be refused, not used.
    let yaml = doc(TARGET, "    interval: 99999999999h", ANALYSIS);
    let found = problems(&yaml);
    assert_eq!(
        found,
        ["spec.trafficControl.interval: must be from 1s to 24h, not 99999999999h"]
    );
}

#[test]
fn every_problem_is_returned_at_once() {
    let yaml = doc(
        "    name: reviews",
        "    trafficStepSize: -2\n    maxIterations: 0\n    interval: nope",
        "    successCriteria:\n    - metricName: iter8_latency\n      tolerance: -1",
    );
    let found = problems(&yaml);
    for expected in [
        "spec.targetService.baseline",
        "spec.targetService.candidate",
        "spec.trafficControl.trafficStepSize",
        "spec.trafficControl.maxIterations",
        "spec.trafficControl.interval",
        "spec.analysis.successCriteria[0].toleranceType",
        "spec.analysis.successCriteria[0].tolerance",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{expected}:"))),
            "{expected} missing from {found:?}"
        );
    }
    assert_eq!(found.len(), 7, "{found:?}");
    let err = plan(&experiment(&yaml), &metrics()).unwrap_err();
    assert_eq!(err.len(), 7);
}

#[test]
fn lenient_check_makes_unknown_metrics_warnings() {
    let yaml = doc(
        TARGET,
        TRAFFIC,
        "    successCriteria:\n    - metricName: iter8_90_perc_latency\n      toleranceType: threshold\n      tolerance: 200",
    );
    let stock = MetricsConfig::stock_telemetry_v2();
    let found = validate(&experiment(&yaml), &stock, MetricCheck::Lenient);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].severity, Severity::Warning);
    let found = validate(&experiment(&yaml), &stock, MetricCheck::Strict);
    assert_eq!(found[0].severity, Severity::Error);
}

#[test]
fn the_plan_applies_every_default() {
    let yaml = doc(
        TARGET,
        "    {}",
        "    successCriteria:\n    - metricName: iter8_latency\n      toleranceType: threshold\n      tolerance: 200",
    );
    let p = plan(&experiment(&yaml), &metrics()).unwrap();
    assert_eq!(p.interval, std::time::Duration::from_secs(60));
    assert_eq!(p.max_iterations, 100);
    assert_eq!(p.step_size, 2.0);
    assert_eq!(p.max_traffic_percentage, 50.0);
    assert_eq!(p.confidence, 0.95);
    assert_eq!(p.criteria[0].sample_size, 10);
    assert!(!p.criteria[0].stop_on_failure);
    assert_eq!(p.on_success, iter8_core::OnSuccess::Candidate);
    assert_eq!(p.strategy, iter8_core::Strategy::CheckAndIncrement);
}

/// An experiment with `routingReference` (indented under `spec`).
fn with_reference(target: &str, reference: &str) -> String {
    format!(
        "{}  routingReference:\n{reference}\n",
        doc(target, TRAFFIC, ANALYSIS)
    )
}

const HTTP_ROUTE: &str =
    "    apiVersion: gateway.networking.k8s.io/v1\n    kind: HTTPRoute\n    name: web";
const SERVICES: &str = "    kind: Service\n    baseline: web-v1\n    candidate: web-v2";

#[test]
fn an_http_route_reference_needs_service_kind_and_no_service_name() {
    assert_eq!(
        problems(&with_reference(SERVICES, HTTP_ROUTE)),
        Vec::<String>::new()
    );
    let deployments = problems(&with_reference(TARGET, HTTP_ROUTE));
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert!(
        deployments[0].starts_with(
            "spec.targetService.kind: must be Service with an HTTPRoute routingReference, not Deployment: Gateway API routes to Services"
        ),
        "{deployments:?}"
    );
}

#[test]
fn a_routing_reference_names_its_problems() {
    let cases = [
        (
            "    apiVersion: networking.istio.io/v1alpha3\n    kind: HTTPRoute\n    name: web",
            "spec.routingReference.apiVersion: `networking.istio.io/v1alpha3` does not go with kind HTTPRoute (use gateway.networking.k8s.io/v1)",
        ),
        (
            "    apiVersion: gateway.networking.k8s.io/v1\n    kind: HTTPRoute",
            "spec.routingReference.name: is required",
        ),
        (
            "    apiVersion: gateway.networking.k8s.io/v1\n    kind: HTTPRoute\n    name: Web_Route",
            "spec.routingReference.name: `Web_Route` is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')",
        ),
    ];
    for (reference, want) in cases {
        let got = problems(&with_reference(SERVICES, reference));
        assert!(got.iter().any(|p| p == want), "{want}\n{got:?}");
    }
    // A VirtualService reference keeps the usual target rules; another kind is refused when
    // routing starts (`Referenced rule not supported`), as iter8 v0.2 does.
    let vs =
        "    apiVersion: networking.istio.io/v1alpha3\n    kind: VirtualService\n    name: reviews";
    assert_eq!(problems(&with_reference(TARGET, vs)), Vec::<String>::new());
}
