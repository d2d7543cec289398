//! `iter8 analytics serve`'s server (`iter8_analytics::serve::serve`) on 127.0.0.1 over a fake
//! Prometheus: idle connections do not stop it, an oversized body gets 413, and concurrent
//! requests send no more Prometheus queries at once than the client allows.

mod support;

use iter8_rand::ChaCha;
use std::net::SocketAddr;
use std::time::Duration;

use iter8_analytics::AppState;
use iter8_analytics::serve::{Limits, bind, serve};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource};
use iter8_test_support::{FakePrometheus, Reply};
use serde_json::json;
use support::*;

const CAI: &str = "/api/v1/experiment/check_and_increment";

/// Serves the API over the Prometheus at `prometheus` with at most `max_queries` queries in
/// flight.
async fn start(prometheus: &str, max_queries: usize) -> SocketAddr {
    let settings = PrometheusSettings::new(prometheus).with_max_concurrent_queries(max_queries);
    let source = PrometheusSource::new(PrometheusClient::new(&settings).unwrap()).with_clock(now);
    let state = AppState::new(source, prometheus, ChaCha).with_clock(now);
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        state,
        Limits::default(),
        std::future::pending(),
    ));
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_idle_connections_do_not_stop_a_request() {
    let prom = prometheus_with("sample_response").await;
    let addr = start(&prom.url(), 16).await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let url = format!("http://{addr}/api/v1/health/health_check");
    let (status, body) = tokio::time::timeout(Duration::from_secs(1), get_json(&url))
        .await
        .expect("answered within a second");
    assert_eq!((status, body), (200, json!({"status": "OK"})));
    assert_eq!(idle.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_gets_413() {
    let prom = prometheus_with("sample_response").await;
    let addr = start(&prom.url(), 16).await;
    let padding = "x".repeat(Limits::default().max_body_bytes);
    let body = with(
        request(vec![latency("delta", 0.02)], json!({})),
        "pad",
        json!(padding),
    );
    let answer = client()
        .post(format!("http://{addr}{CAI}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413);
    assert!(prom.queries().is_empty(), "nothing was measured");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_a_bounded_number_of_prometheus_queries() {
    let answer = fixture("sample_response").to_string();
    let prom = FakePrometheus::scripted(vec![
        Reply::http(200, answer).after(Duration::from_millis(50)),
    ])
    .await;
    let addr = start(&prom.url(), 3).await;
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        json!({}),
    );
    let url = format!("http://{addr}{CAI}");
    let answers = futures::future::join_all((0..10).map(|_| post(&url, &body))).await;
    for (status, r) in answers {
        assert_eq!(status, 200, "{r}");
    }
    // Ten requests of three queries each: 30 queries, never more than 3 at once.
    assert_eq!(prom.queries().len(), 30);
    assert_eq!(prom.max_in_flight(), 3);
}
