//! What the dashboard shows: variables, stock panels per telemetry, criteria panels.

mod common;

use common::*;
use iter8_core::MetricsConfig;
use iter8_grafana::{DashboardError, DashboardInput, Telemetry, build_dashboard};
use serde_json::Value;

fn build(telemetry: Telemetry, metrics: &MetricsConfig, file: Option<&str>) -> Value {
    let exp = file.map(experiment);
    build_dashboard(&DashboardInput {
        telemetry,
        metrics,
        experiment: exp.as_ref(),
    })
    .expect("dashboard")
}

#[test]
fn identity_and_variables() {
    let d = build(Telemetry::V2, &MetricsConfig::stock_telemetry_v2(), None);
    assert_eq!(d["uid"], "eXPEaNnZz");
    assert_eq!(d["title"], "iter8-application-metrics");
    assert!(d.get("id").is_none(), "no instance-specific id");
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        vars,
        [
            "datasource",
            "namespace",
            "service",
            "baseline",
            "candidate",
            "window_size"
        ]
    );
    // The generic dashboard preselects nothing but v0.2.1's default window.
    assert!(
        d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] != "window_size")
            .all(|v| v.get("current").is_none())
    );
    // Panel ids are unique, in collapsed rows too.
    let mut ids: Vec<i64> = all_panels(&d)
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn experiment_values_are_preselected() {
    let d = build(
        Telemetry::V2,
        &MetricsConfig::stock_telemetry_v2(),
        Some("canary_reviews-v2_to_reviews-v3.yaml"),
    );
    let current = |name: &str| {
        d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap()
            .get("current")
            .map(|c| c["value"].as_str().unwrap().to_string())
    };
    assert_eq!(current("service").as_deref(), Some("reviews"));
    assert_eq!(current("baseline").as_deref(), Some("reviews-v2"));
    assert_eq!(current("candidate").as_deref(), Some("reviews-v3"));
    // The manifest names no namespace (it is applied with -n): nothing is guessed.
    assert_eq!(current("namespace"), None);
}

#[test]
fn telemetry_v2_panels_use_envoy_stats_in_milliseconds() {
    let d = build(Telemetry::V2, &MetricsConfig::stock_telemetry_v2(), None);
    let titles: Vec<&str> = panels(&d)
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Request rate", "Mean latency", "Error rate"]);
    let latency = exprs(panel(&d, "Mean latency"));
    assert_eq!(
        latency[0],
        "sum(rate(istio_request_duration_milliseconds_sum{job='envoy-stats', reporter='source', \
         destination_workload='$baseline', destination_workload_namespace='$namespace'}[$__rate_interval])) \
         / sum(rate(istio_request_duration_milliseconds_count{job='envoy-stats', reporter='source', \
         destination_workload='$baseline', destination_workload_namespace='$namespace'}[$__rate_interval]))"
    );
    assert!(latency[1].contains("destination_workload='$candidate'"));
    assert!(!latency[0].contains("* 1000"));
    let errors = exprs(panel(&d, "Error rate"));
    assert!(errors[1].contains("response_code=~'5..'"));
    assert!(errors[1].contains("job='envoy-stats'"));
    let rate = exprs(panel(&d, "Request rate"));
    assert_eq!(
        rate[0],
        "sum(rate(istio_requests_total{job='envoy-stats', reporter='source', \
         destination_workload='$baseline', destination_workload_namespace='$namespace'}[$__rate_interval]))"
    );
    assert_eq!(
        panel(&d, "Mean latency")["fieldConfig"]["defaults"]["unit"],
        "ms"
    );
    assert_eq!(
        panel(&d, "Error rate")["fieldConfig"]["defaults"]["unit"],
        "percentunit"
    );
    let legends: Vec<&str> = panel(&d, "Request rate")["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["legendFormat"].as_str().unwrap())
        .collect();
    assert_eq!(legends, ["$baseline", "$candidate"]);
}

#[test]
fn telemetry_v1_panels_use_istio_mesh_in_seconds_times_1000() {
    let d = build(Telemetry::V1, &MetricsConfig::stock_telemetry_v1(), None);
    let latency = exprs(panel(&d, "Mean latency"));
    assert!(
        latency[0].starts_with("(sum(rate(istio_request_duration_seconds_sum{job='istio-mesh'")
    );
    assert!(latency[0].ends_with(") * 1000"), "{}", latency[0]);
    assert!(!latency[0].contains("milliseconds"));
    for p in ["Request rate", "Error rate"] {
        for e in exprs(panel(&d, p)) {
            assert!(e.contains("job='istio-mesh'"), "{p}: {e}");
        }
    }
}

#[test]
fn v6_gets_a_p90_panel_derived_from_its_template_with_the_threshold_line() {
    for (telemetry, v2) in [(Telemetry::V1, false), (Telemetry::V2, true)] {
        let d = build(
            telemetry,
            &extended_metrics(v2),
            Some("canary_reviews-v3_to_reviews-v6.yaml"),
        );
        let p90 = panel(&d, "iter8_90_perc_latency");
        assert_eq!(p90["type"], "timeseries");
        assert_eq!(threshold_values(p90), [200.0]);
        assert_eq!(
            p90["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"],
            "dashed"
        );
        assert_eq!(p90["fieldConfig"]["defaults"]["unit"], "ms");
        let e = exprs(p90);
        assert_eq!(e.len(), 2);
        let expected_v2 = "histogram_quantile(0.90, sum(increase(istio_request_duration_milliseconds_bucket{\
            destination_workload='$baseline', destination_workload_namespace='$namespace', \
            job='envoy-stats', reporter='source'}[$__rate_interval])) by (destination_workload, le))";
        if v2 {
            assert_eq!(e[0], expected_v2);
        } else {
            assert!(e[0].contains(
                "istio_request_duration_seconds_bucket{destination_workload='$baseline'"
            ));
            assert!(e[0].ends_with("* 1000)"), "{}", e[0]);
        }
        assert!(e[1].contains("destination_workload='$candidate'"));
        for x in &e {
            assert!(
                !x.contains("$interval")
                    && !x.contains("$offset_str")
                    && !x.contains("$entity_labels")
            );
        }
        // The stat panel shows what iter8 judged: the whole range, instant queries, red from 200.
        let stat = panel(&d, "iter8_90_perc_latency ≤ 200");
        assert_eq!(stat["type"], "stat");
        assert_eq!(threshold_values(stat), [200.0]);
        assert!(exprs(stat)[0].contains("[$__range]"));
        assert_eq!(stat["targets"][0]["instant"], true);
        // The stock panels carry no threshold: the criterion is not on them.
        assert!(threshold_values(panel(&d, "Mean latency")).is_empty());
    }
}

#[test]
fn stock_metric_criteria_are_drawn_on_the_stock_panels() {
    let d = build(
        Telemetry::V2,
        &extended_metrics(true),
        Some("canary_reviews-v3_to_reviews-v5.yaml"),
    );
    // iter8_latency threshold 200 on Mean latency.
    assert_eq!(threshold_values(panel(&d, "Mean latency")), [200.0]);
    // iter8_error_rate delta 0.02: a limit series of baseline × 1.02 on Error rate.
    let err = panel(&d, "Error rate");
    assert!(threshold_values(err).is_empty());
    let e = exprs(err);
    assert_eq!(e.len(), 3);
    assert_eq!(e[2], format!("({}) * 1.02", e[0]));
    assert_eq!(
        err["targets"][2]["legendFormat"],
        "limit for $candidate ($baseline × 1.02)"
    );
    // No extra time series panel, one stat per criterion, then v0.2.1's two collapsed rows.
    let types: Vec<&str> = panels(&d)
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "row",
            "timeseries",
            "timeseries",
            "timeseries",
            "row",
            "stat",
            "stat",
            "row",
            "row",
        ]
    );
    assert!(
        panel(&d, "Mean latency")["description"]
            .as_str()
            .unwrap()
            .contains("at most 200")
    );
}

#[test]
fn a_customised_stock_metric_gets_its_own_panel() {
    // iter8_latency redefined as a p99: drawing its threshold on "Mean latency" would mislead.
    let mut metrics = MetricsConfig::stock_telemetry_v2();
    metrics.query_templates.insert(
        "iter8_latency".into(),
        "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket[$interval]$offset_str)) by ($entity_labels, le))".into(),
    );
    let d = build(
        Telemetry::V2,
        &metrics,
        Some("canary_reviews-v2_to_reviews-v3.yaml"),
    );
    assert!(threshold_values(panel(&d, "Mean latency")).is_empty());
    let own = panel(&d, "iter8_latency");
    assert_eq!(threshold_values(own), [200.0]);
    assert_eq!(
        exprs(own)[1],
        "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{\
         destination_workload='$candidate', destination_workload_namespace='$namespace'}[$__rate_interval])) \
         by (destination_workload, le))"
    );
}

#[test]
fn service_kind_experiments_filter_on_service_labels() {
    let d = build(
        Telemetry::V2,
        &extended_metrics(true),
        Some("service-kind_canary_productpage-v1_to_productpage-v2.yaml"),
    );
    for e in exprs(panel(&d, "Request rate")) {
        assert!(e.contains("destination_service_name='$"), "{e}");
        assert!(
            e.contains("destination_service_namespace='$namespace'"),
            "{e}"
        );
        assert!(!e.contains("destination_workload"), "{e}");
    }
    assert_eq!(threshold_values(panel(&d, "Mean latency")), [3000.0]);
}

#[test]
fn unknown_metrics_and_missing_names_are_errors() {
    let exp = experiment("canary_reviews-v3_to_reviews-v6.yaml");
    let err = build_dashboard(&DashboardInput {
        telemetry: Telemetry::V2,
        metrics: &MetricsConfig::stock_telemetry_v2(),
        experiment: Some(&exp),
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.analysis.successCriteria[0]: metric `iter8_90_perc_latency` is not in the metrics \
         configuration (it has: iter8_latency, iter8_error_count, iter8_error_rate)"
    );
    let mut nameless = exp.clone();
    nameless.spec.analysis.success_criteria[0].metric_name = None;
    assert_eq!(
        build_dashboard(&DashboardInput {
            telemetry: Telemetry::V2,
            metrics: &extended_metrics(true),
            experiment: Some(&nameless),
        })
        .unwrap_err(),
        DashboardError::MissingMetricName { index: 0 }
    );
}

/// Every panel of iter8 v0.2.1's dashboard for a telemetry (title and each query, verbatim) is
/// in ours for the same telemetry, with the variables its queries use.
#[test]
fn a_superset_of_v0_2_1s_panels_for_the_same_telemetry() {
    for (telemetry, file) in [
        (Telemetry::V1, "istio-telemetry-v1.grafana6.json"),
        (Telemetry::V2, "istio-telemetry-v2.grafana6.json"),
    ] {
        let theirs: Value = serde_json::from_str(&read(file)).expect("json");
        let ours = build(
            telemetry,
            &telemetry.stock_metrics(),
            Some("canary_reviews-v2_to_reviews-v3.yaml"),
        );
        let their_panels: Vec<&Value> = all_panels(&theirs)
            .into_iter()
            .filter(|p| p["type"] != "row")
            .collect();
        assert_eq!(their_panels.len(), 11, "{file}");
        for p in their_panels {
            let title = p["title"].as_str().unwrap();
            let wanted = exprs(p);
            let found = all_panels(&ours)
                .into_iter()
                .any(|o| o["title"] == title && wanted.iter().all(|e| exprs(o).contains(e)));
            assert!(found, "{telemetry}: v0.2.1's `{title}` {wanted:#?}");
        }
        let names = |d: &Value| -> Vec<String> {
            d["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect()
        };
        let ours_names = names(&ours);
        for name in names(&theirs) {
            assert!(ours_names.contains(&name), "{telemetry}: variable {name}");
        }
        assert_eq!(schema_errors(&ours), Vec::<String>::new(), "{telemetry}");
    }
}
