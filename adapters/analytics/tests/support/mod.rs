//! Test helpers: iter8-test-support's fake Prometheus with upstream's fixtures, and our analytics
//! server over it.
#![allow(dead_code)]

use iter8_rand::ChaCha;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use iter8_analytics::{AppState, router};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource};
pub use iter8_test_support::FakePrometheus;
use serde_json::{Value, json};

/// An upstream fixture from tests/data.
pub fn fixture(name: &str) -> Value {
    iter8_test_support::fixtures::json(&format!(
        "adapters/analytics/tests/data/prometheus_{name}.json"
    ))
}

/// How the fake answers a query: the rendered PromQL -> (HTTP status, body).
pub type Answer = Arc<dyn Fn(&str) -> (u16, Value) + Send + Sync>;

/// Starts a fake Prometheus answering `/api/v1/query` with `answer`; it records every query.
pub async fn fake_prometheus(answer: Answer) -> FakePrometheus {
    FakePrometheus::queries_answered_by(move |q| answer(q)).await
}

/// A fake Prometheus answering every query with one fixture.
pub async fn prometheus_with(fixture_name: &str) -> FakePrometheus {
    let body = fixture(fixture_name);
    FakePrometheus::queries_answered_by(move |_| (200, body.clone())).await
}

/// Serves `app` on 127.0.0.1:0.
pub async fn spawn(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// The fixed "now" of the fixture tests (the windows end in 2019, as upstream's tests do).
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

/// Our analytics server over a Prometheus URL; returns its base URL.
pub async fn analytics_server(prometheus: &str) -> String {
    let client = PrometheusClient::new(&PrometheusSettings::new(prometheus)).unwrap();
    let source = PrometheusSource::new(client).with_clock(now);
    let state = AppState::new(source, prometheus, ChaCha).with_clock(now);
    let addr = spawn(router(Arc::new(state))).await;
    format!("http://{addr}")
}

/// An HTTP client for the tests.
pub fn client() -> reqwest::Client {
    iter8_test_support::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// POSTs `body` to `url` and returns (status, JSON body).
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// GETs `url` and returns (status, JSON body).
pub async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// The value template upstream's tests use for latency.
pub const LATENCY_QUERY: &str = "(sum(increase(istio_request_duration_seconds_sum{source_workload_namespace!='knative-serving',reporter='source'}[$interval]$offset_str)) by ($entity_labels)) / (sum(increase(istio_request_duration_seconds_count{source_workload_namespace!='knative-serving',reporter='source'}[$interval]$offset_str)) by ($entity_labels))";
/// The error-count template.
pub const ERROR_COUNT_QUERY: &str = "sum(increase(istio_requests_total{response_code=~'5..',source_workload_namespace!='knative-serving',reporter='source'}[$interval]$offset_str)) by ($entity_labels)";
/// The sample-size template.
pub const SAMPLE_SIZE_QUERY: &str = "sum(increase(istio_requests_total{source_workload_namespace!='knative-serving',reporter='source'}[$interval]$offset_str)) by ($entity_labels)";

/// A criterion on iter8_latency.
pub fn latency(kind: &str, value: f64) -> Value {
    json!({
        "metric_name": "iter8_latency",
        "is_counter": false,
        "absent_value": "None",
        "metric_query_template": LATENCY_QUERY,
        "metric_sample_size_query_template": SAMPLE_SIZE_QUERY,
        "type": kind,
        "value": value,
    })
}

/// A criterion on iter8_error_count (a counter).
pub fn error_count(kind: &str, value: f64) -> Value {
    json!({
        "metric_name": "iter8_error_count",
        "is_counter": true,
        "metric_query_template": ERROR_COUNT_QUERY,
        "metric_sample_size_query_template": SAMPLE_SIZE_QUERY,
        "type": kind,
        "value": value,
    })
}

/// Sets `key` of a JSON object.
pub fn with(mut v: Value, key: &str, value: Value) -> Value {
    v.as_object_mut().unwrap().insert(key.to_string(), value);
    v
}

/// A version of upstream's tests (namespace `default`).
pub fn version(workload: &str) -> Value {
    json!({
        "start_time": "2019-04-24T19:40:32.017Z",
        "end_time": "2019-04-24T20:40:32.017Z",
        "tags": {"destination_service_namespace": "default", "destination_workload": workload},
    })
}

/// A request as upstream's tests send it: baseline reviews-v2, candidate reviews-v3.
pub fn request(criteria: Vec<Value>, last_state: Value) -> Value {
    json!({
        "baseline": version("reviews-v2"),
        "candidate": version("reviews-v3"),
        "traffic_control": {"success_criteria": criteria},
        "_last_state": last_state,
    })
}

/// Sets `traffic_control.<key>`.
pub fn traffic(mut body: Value, key: &str, value: Value) -> Value {
    body["traffic_control"]
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    body
}

/// A check_and_increment last state.
pub fn last_state(baseline: f64, candidate: f64, b_info: Value, c_info: Value) -> Value {
    json!({
        "baseline": {"traffic_percentage": baseline, "success_criterion_information": b_info},
        "candidate": {"traffic_percentage": candidate, "success_criterion_information": c_info},
    })
}
