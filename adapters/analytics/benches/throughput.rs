//! Throughput and latency of `POST /api/v1/experiment/check_and_increment` with two criteria,
//! against a local fake Prometheus answering with iter8-analytics' sample fixture, all on
//! 127.0.0.1 in one process.
//!
//! `cargo bench -p iter8-analytics --bench throughput`; `BENCH_REQUESTS` (default 20000) and
//! `BENCH_CONCURRENCY` (default 1,16,64) tune the run.

use iter8_rand::ChaCha;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use iter8_analytics::{AppState, router};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource};
use iter8_test_support::FakePrometheus;
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../tests/data/prometheus_sample_response.json");
const SAMPLE: &str = "sum(increase(istio_requests_total{reporter='source'}[$interval]$offset_str)) by ($entity_labels)";

async fn spawn(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn body() -> Value {
    let version = |w: &str| {
        json!({"start_time": "2019-04-24T19:40:32.017Z", "end_time": "2019-04-24T20:40:32.017Z",
               "tags": {"destination_service_namespace": "default", "destination_workload": w}})
    };
    json!({
        "baseline": version("reviews-v2"),
        "candidate": version("reviews-v3"),
        "traffic_control": {"success_criteria": [
            {"metric_name": "iter8_latency", "is_counter": false, "absent_value": "None",
             "metric_query_template": "(sum(increase(istio_request_duration_seconds_sum{reporter='source'}[$interval]$offset_str)) by ($entity_labels)) / (sum(increase(istio_request_duration_seconds_count{reporter='source'}[$interval]$offset_str)) by ($entity_labels))",
             "metric_sample_size_query_template": SAMPLE, "type": "delta", "value": 0.02},
            {"metric_name": "iter8_error_count", "is_counter": true,
             "metric_query_template": "sum(increase(istio_requests_total{response_code=~'5..',reporter='source'}[$interval]$offset_str)) by ($entity_labels)",
             "metric_sample_size_query_template": SAMPLE, "type": "threshold", "value": 25},
        ]},
        "_last_state": {},
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(url: &str, total: usize, concurrency: usize) -> (f64, Duration, Duration) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let body = Arc::new(body());
    let per_worker = total / concurrency;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, body, url) = (client.clone(), body.clone(), url.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    let r = client.post(&url).json(&*body).send().await.expect("send");
                    assert_eq!(r.status().as_u16(), 200);
                    let _ = r.bytes().await.expect("body");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    (
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` passes `--bench`; under `cargo test` only a short run checks that it works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let total: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 20_000 } else { 200 });
    let levels: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if measuring {
                vec![1, 16, 64]
            } else {
                vec![1, 4]
            }
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture");
        let prom = FakePrometheus::queries_answered_by(move |_| (200, fixture.clone())).await;
        let prom_url = prom.url();
        let client =
            PrometheusClient::new(&PrometheusSettings::new(prom_url.clone())).expect("prometheus");
        let state = AppState::new(PrometheusSource::new(client), prom_url, ChaCha);
        let server = spawn(router(Arc::new(state))).await;
        let url = format!("http://{server}/api/v1/experiment/check_and_increment");
        let _ = run(&url, 500.min(total), 4).await; // warm-up
        println!(
            "check_and_increment, 2 criteria, fake Prometheus on 127.0.0.1 ({} worker threads)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!(
            "{:>11} {:>9} {:>10} {:>10} {:>10}",
            "concurrency", "requests", "req/s", "p50", "p99"
        );
        for c in levels.into_iter().filter(|c| *c > 0) {
            let (rps, p50, p99) = run(&url, total, c).await;
            println!(
                "{c:>11} {:>9} {rps:>10.0} {:>10.2?} {:>10.2?}",
                total / c * c,
                p50,
                p99
            );
        }
    });
}
