//! One decision of the tutorial (iter8_latency threshold + iter8_error_rate delta, stock
//! telemetry v2) against a local Prometheus 2.42 over the synthetic Istio series: queries sent
//! per decision and wall-clock latency (median, p99) of `measure` + `analyze`.
//!
//! `cargo bench -p iter8-prometheus --bench decision` (needs `prometheus` and `promtool`).
//! Set `ITER8_BENCH_DECISIONS` to change the number of timed decisions (default 300).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use iter8_core::MetricsConfig;
use iter8_core::analytics::{AnalysisRequest, analyze};
use iter8_core::measurement::Window;
use iter8_core::model::{OnSuccess, Strategy, TargetKind, ToleranceType};
use iter8_core::plan::{Criterion, Plan};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource};
use iter8_rand::ChaCha;
use support::istio_data::{NAMESPACE, T_END, openmetrics};
use support::prometheus::TestPrometheus;

fn plan(config: &MetricsConfig) -> Option<Plan> {
    let criterion = |metric: &str, t: ToleranceType, tolerance: f64| {
        Some(Criterion {
            metric: config.metric(metric)?,
            tolerance_type: t,
            tolerance,
            sample_size: 10,
            stop_on_failure: false,
            min_max: None,
        })
    };
    Some(Plan {
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
            criterion("iter8_latency", ToleranceType::Threshold, 200.0)?,
            criterion("iter8_error_rate", ToleranceType::Delta, 0.02)?,
        ],
        reward: None,
        cleanup: false,
        analytics_service: String::new(),
        seed: 0,
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let decisions: usize = std::env::var("ITER8_BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let prom = TestPrometheus::start(&openmetrics());
    let end = Utc.timestamp_opt(T_END, 0).single().unwrap();
    let window = Window {
        start: end - chrono::Duration::seconds(1800),
        end,
    };
    let config = MetricsConfig::stock_telemetry_v2();
    let plan = plan(&config).expect("stock metrics");
    let request = AnalysisRequest::new(&plan, window, None);
    let query = request.metrics_query();
    let client = PrometheusClient::new(&PrometheusSettings::new(prom.url())).expect("client");
    let source = PrometheusSource::new(client);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut times = Vec::with_capacity(decisions);
    rt.block_on(async {
        // Warm-up: connections, Prometheus' caches.
        for _ in 0..20 {
            let m = source.measure_at(&query, end).await.expect("measure");
            analyze(&request, &m.readings, &ChaCha).expect("analyze");
        }
        let before = source.client().requests_sent();
        for _ in 0..decisions {
            let started = Instant::now();
            let m = source.measure_at(&query, end).await.expect("measure");
            let outcome = analyze(&request, &m.readings, &ChaCha).expect("analyze");
            times.push(started.elapsed());
            assert_eq!(outcome.candidate_traffic_percentage, 20.0);
        }
        let sent = source.client().requests_sent() - before;
        times.sort();
        println!("decision/tutorial (latency threshold + error_rate delta, stock telemetry v2)");
        println!("  decisions timed:          {decisions}");
        println!(
            "  queries per decision:     {} (iter8-analytics: 8)",
            sent as f64 / decisions as f64
        );
        println!("  latency median:           {:?}", percentile(&times, 0.5));
        println!("  latency p99:              {:?}", percentile(&times, 0.99));
        println!("  latency max:              {:?}", times[times.len() - 1]);

        // The same decision the way iter8-analytics sends it: per criterion, per version, a
        // value query then a sample-size query, one after another (8 requests).
        let plan = iter8_prometheus::QueryPlan::new(&query, end).expect("plan");
        // Plan order: iter8_latency, the shared sample size, iter8_error_rate.
        let (latency, sample, error_rate) = (&plan.queries[0], &plan.queries[1], &plan.queries[2]);
        assert!(sample.starts_with(
            "sum(increase(istio_requests_total{job='envoy-stats', reporter='source'}"
        ));
        let sequence = [
            latency, sample, latency, sample, error_rate, sample, error_rate, sample,
        ];
        let mut seq_times = Vec::with_capacity(decisions);
        let before = source.client().requests_sent();
        for _ in 0..decisions {
            let started = Instant::now();
            for q in sequence {
                source.client().query(q, plan.time).await.expect("query");
            }
            seq_times.push(started.elapsed());
        }
        let sent = source.client().requests_sent() - before;
        seq_times.sort();
        println!("decision/iter8-analytics-style (8 sequential queries, same client and data)");
        println!(
            "  queries per decision:     {}",
            sent as f64 / decisions as f64
        );
        println!(
            "  latency median:           {:?}",
            percentile(&seq_times, 0.5)
        );
        println!(
            "  latency p99:              {:?}",
            percentile(&seq_times, 0.99)
        );
    });
    drop(prom);
}
