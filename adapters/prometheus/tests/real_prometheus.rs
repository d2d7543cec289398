//! The adapter against a real Prometheus 2.42 over synthetic Istio series whose answers are
//! known exactly (see `support/istio_data.rs`). Each test starts its own Prometheus on a free
//! 127.0.0.1 port and stops it by PID when it ends, even on failure.

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use iter8_core::analytics::{AnalysisRequest, analyze};
use iter8_core::measurement::{Measurement, MetricErrorKind, MetricsQuery, VersionTags, Window};
use iter8_core::metrics_config::{EXTENDED_TELEMETRY_V1, EXTENDED_TELEMETRY_V2};
use iter8_core::model::{OnSuccess, Strategy, TargetKind, ToleranceType};
use iter8_core::plan::{Criterion, Plan};
use iter8_core::ports::MetricSource;
use iter8_core::{MetricReadings, MetricsConfig};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource, RetryPolicy};
use iter8_rand::ChaCha;
use support::istio_data::{NAMESPACE, T_END, openmetrics};
use support::prometheus::TestPrometheus;

fn at(secs: i64, millis: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, millis * 1_000_000)
        .single()
        .unwrap()
}

fn tags(workload: &str) -> VersionTags {
    VersionTags::from([
        ("destination_workload".to_string(), workload.to_string()),
        (
            "destination_workload_namespace".to_string(),
            NAMESPACE.to_string(),
        ),
    ])
}

fn source(p: &TestPrometheus) -> PrometheusSource {
    let settings = PrometheusSettings::new(p.url())
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy {
            max_retries: 1,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(50),
        });
    PrometheusSource::new(PrometheusClient::new(&settings).unwrap())
}

fn query(
    config: &MetricsConfig,
    metrics: &[&str],
    window: Window,
    baseline: &str,
    candidate: &str,
) -> MetricsQuery {
    MetricsQuery {
        window,
        baseline: tags(baseline).into(),
        candidate: tags(candidate).into(),
        metrics: metrics
            .iter()
            .map(|m| config.metric(m).unwrap_or_else(|| panic!("metric {m}")))
            .collect(),
    }
}

fn last_30m() -> Window {
    Window {
        start: at(T_END - 1800, 0),
        end: at(T_END, 0),
    }
}

/// Asserts a value within 1e-9 (v1 templates go through seconds and `* 1000`).
#[track_caller]
fn assert_value(m: &Measurement, expected: f64) {
    match m {
        Measurement::Value(v) => assert!((v - expected).abs() < 1e-9, "{v} != {expected}"),
        other => panic!("expected {expected}, got {other:?}"),
    }
}

fn reading<'a>(r: &'a [MetricReadings], name: &str) -> &'a MetricReadings {
    r.iter().find(|m| &*m.metric == name).unwrap()
}

/// The numbers of the reference data over the last 30 minutes, for any of the four ConfigMaps.
fn assert_reference_numbers(r: &[MetricReadings]) {
    let lat = reading(r, "iter8_latency");
    assert_value(&lat.baseline.value, 56.25);
    assert_value(&lat.baseline.sample_size, 3600.0);
    assert_value(&lat.candidate.value, 62.5);
    assert_value(&lat.candidate.sample_size, 1800.0);
    let count = reading(r, "iter8_error_count");
    // The baseline never failed: its 5xx series does not exist (absent_value decides later).
    assert_eq!(count.baseline.value, Measurement::NoData);
    assert_value(&count.candidate.value, 180.0);
    let rate = reading(r, "iter8_error_rate");
    assert_eq!(rate.baseline.value, Measurement::NoData);
    assert_eq!(rate.candidate.value, Measurement::Value(0.1));
    assert_value(&rate.candidate.sample_size, 1800.0);
    if let Some(p90) = r.iter().find(|m| &*m.metric == "iter8_90_perc_latency") {
        assert_value(&p90.baseline.value, 175.0);
        assert_value(&p90.candidate.value, 212.5);
    }
}

const ALL_STOCK: [&str; 3] = ["iter8_latency", "iter8_error_count", "iter8_error_rate"];
const ALL_EXTENDED: [&str; 4] = [
    "iter8_latency",
    "iter8_error_count",
    "iter8_error_rate",
    "iter8_90_perc_latency",
];

#[tokio::test]
async fn stock_and_extended_configmaps_give_the_exact_numbers() {
    let prom = TestPrometheus::start(&openmetrics());
    let src = source(&prom);
    let configs = [
        (
            "stock v2",
            MetricsConfig::stock_telemetry_v2(),
            &ALL_STOCK[..],
        ),
        (
            "stock v1",
            MetricsConfig::stock_telemetry_v1(),
            &ALL_STOCK[..],
        ),
        (
            "extended v2",
            MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap(),
            &ALL_EXTENDED[..],
        ),
        (
            "extended v1",
            MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V1).unwrap(),
            &ALL_EXTENDED[..],
        ),
    ];
    for (name, config, metrics) in configs {
        let q = query(&config, metrics, last_30m(), "reviews-v2", "reviews-v3");
        let before = src.client().requests_sent();
        let m = src.measure_at(&q, at(T_END, 0)).await.unwrap();
        assert_reference_numbers(&m.readings);
        // One query per template: the metrics plus the shared sample-size template.
        assert_eq!(m.queries.len(), metrics.len() + 1, "{name}");
        assert_eq!(
            src.client().requests_sent() - before,
            metrics.len() as u64 + 1
        );
        assert!(m.queries.iter().all(|q| !q.contains("offset")), "{name}");
    }
}

#[tokio::test]
async fn window_in_the_past_renders_an_offset_and_still_covers_the_window() {
    let prom = TestPrometheus::start(&openmetrics());
    let src = source(&prom);
    let config = MetricsConfig::stock_telemetry_v2();

    // The reference window, seen 300.7 s later: ` offset 300s`, same numbers.
    let q = query(&config, &ALL_STOCK, last_30m(), "reviews-v2", "reviews-v3");
    let m = src.measure_at(&q, at(T_END + 300, 700)).await.unwrap();
    assert!(
        m.queries.iter().all(|q| q.contains("[1800s] offset 300s")),
        "{:?}",
        m.queries
    );
    assert_eq!(m.time, at(T_END + 300, 0));
    assert_reference_numbers(&m.readings);

    // 10 minutes that ended 10 minutes before T_END: 60 steps.
    let w = Window {
        start: at(T_END - 1200, 0),
        end: at(T_END - 600, 0),
    };
    let q = query(&config, &ALL_STOCK, w, "reviews-v2", "reviews-v3");
    let m = src.measure_at(&q, at(T_END, 400)).await.unwrap();
    assert!(
        m.queries.iter().all(|q| q.contains("[600s] offset 600s")),
        "{:?}",
        m.queries
    );
    let lat = reading(&m.readings, "iter8_latency");
    assert_value(&lat.baseline.sample_size, 1200.0);
    assert_value(&lat.candidate.sample_size, 600.0);
    assert_value(&lat.candidate.value, 62.5);
    assert_value(
        &reading(&m.readings, "iter8_error_count").candidate.value,
        60.0,
    );
}

#[tokio::test]
async fn idle_version_is_nan_and_missing_version_is_no_data() {
    let prom = TestPrometheus::start(&openmetrics());
    let src = source(&prom);
    let config = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
    // reviews-v4 has series but no traffic in the window; reviews-v5 has no series at all.
    let q = query(
        &config,
        &ALL_EXTENDED,
        last_30m(),
        "reviews-v4",
        "reviews-v5",
    );
    let m = src.measure_at(&q, at(T_END, 0)).await.unwrap();
    let idle = |name| reading(&m.readings, name).baseline.clone();
    assert_eq!(idle("iter8_latency").value, Measurement::NaN, "0/0");
    assert_eq!(idle("iter8_latency").sample_size, Measurement::Value(0.0));
    assert_eq!(idle("iter8_error_count").value, Measurement::Value(0.0));
    assert_eq!(idle("iter8_error_rate").value, Measurement::NaN, "0/0");
    assert_eq!(idle("iter8_90_perc_latency").value, Measurement::NaN);
    for r in &m.readings {
        assert_eq!(r.candidate.value, Measurement::NoData, "{}", r.metric);
        assert_eq!(r.candidate.sample_size, Measurement::NoData, "{}", r.metric);
    }
}

fn tutorial_plan(config: &MetricsConfig) -> Plan {
    let criterion = |metric: &str, t: ToleranceType, tolerance: f64| Criterion {
        metric: config.metric(metric).unwrap(),
        tolerance_type: t,
        tolerance,
        sample_size: 10,
        stop_on_failure: false,
        min_max: None,
    };
    Plan {
        kind: TargetKind::Deployment,
        service: "reviews".into(),
        namespace: NAMESPACE.into(),
        baseline: "reviews-v2".into(),
        candidate: "reviews-v3".into(),
        strategy: Strategy::CheckAndIncrement,
        interval: Duration::from_secs(30),
        max_iterations: 8,
        step_size: 20.0,
        max_traffic_percentage: 80.0,
        on_success: OnSuccess::Candidate,
        confidence: 0.95,
        criteria: vec![
            criterion("iter8_latency", ToleranceType::Threshold, 200.0),
            criterion("iter8_error_rate", ToleranceType::Delta, 0.02),
        ],
        reward: None,
        cleanup: false,
        analytics_service: String::new(),
        seed: 0,
    }
}

#[tokio::test]
async fn tutorial_decision_sends_three_queries_and_the_core_decides() {
    let prom = TestPrometheus::start(&openmetrics());
    let config = MetricsConfig::stock_telemetry_v2();
    let plan = tutorial_plan(&config);
    let src = source(&prom).with_clock(|| at(T_END, 0));
    let request = AnalysisRequest::new(
        &plan,
        last_30m(),
        Some(serde_json::json!({
            "baseline": {"traffic_percentage": 80.0, "success_criterion_information": [[3000, 50.0], [3000, 0.0]]},
            "candidate": {"traffic_percentage": 20.0, "success_criterion_information": [[1500, 60.0], [1500, 0.1]]},
        }).into()),
    );
    let readings = src.measure(&request.metrics_query()).await.unwrap();
    // iter8-analytics would send 2 criteria x 2 versions x (value + sample size) = 8.
    assert_eq!(src.client().requests_sent(), 3);
    let outcome = analyze(&request, &readings, &ChaCha).unwrap();
    let a = &outcome.assessment;
    let latency = &a.success_criteria[0];
    assert!(latency.success_criterion_met, "{latency:?}");
    assert_eq!(latency.candidate.as_ref().unwrap().value, Some(62.5));
    // Delta on the error rate: the baseline has no 5xx series -> absent_value 0 (stock v2),
    // and 0.1 > 1.02 x 0: not met, so traffic holds at 20.
    let errors = &a.success_criteria[1];
    assert!(!errors.success_criterion_met, "{errors:?}");
    assert_eq!(errors.baseline.as_ref().unwrap().value, Some(0.0));
    assert!(!a.all_success_criteria_met && !a.abort_experiment);
    assert_eq!(outcome.candidate_traffic_percentage, 20.0);
}

#[tokio::test]
async fn prometheus_stopped_mid_test_is_unreachable() {
    let mut prom = TestPrometheus::start(&openmetrics());
    let src = source(&prom);
    let config = MetricsConfig::stock_telemetry_v2();
    let q = query(&config, &ALL_STOCK, last_30m(), "reviews-v2", "reviews-v3");
    src.measure_at(&q, at(T_END, 0)).await.unwrap();
    prom.stop();
    let err = src.measure_at(&q, at(T_END, 0)).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Unreachable, "{err}");
    assert!(err.message.contains("cannot reach"), "{err}");
    assert!(err.message.contains("after 2 attempts"), "{err}");
}

#[tokio::test]
async fn a_template_with_a_syntax_error_reports_prometheus_text() {
    let prom = TestPrometheus::start(&openmetrics());
    let src = source(&prom);
    let config = MetricsConfig::from_parts(
        "iter8_sample_size: \"sum(increase(istio_requests_total{reporter='source'}[$interval]$offset_str)) by ($entity_labels)\"\n\
         broken: \"sum(rate(istio_requests_total[$interval]$offset_str) by ($entity_labels)\"",
        "- name: broken\n  sample_size_query_template: iter8_sample_size",
    )
    .unwrap();
    let q = query(&config, &["broken"], last_30m(), "reviews-v2", "reviews-v3");
    let m = src.measure_at(&q, at(T_END, 0)).await.unwrap();
    let r = &m.readings[0];
    let err = r.baseline.value.error().expect("an error");
    assert_eq!(err.kind, MetricErrorKind::Backend);
    assert!(
        err.message.contains("bad_data") && err.message.contains("parse error"),
        "{err}"
    );
    assert_eq!(r.candidate.value, r.baseline.value);
    // The sample size of the same decision is still measured (both job flavours count).
    assert_value(&r.baseline.sample_size, 7200.0);
    // Prometheus answered: one attempt each, no retries.
    assert_eq!(src.client().requests_sent(), 2);
}
