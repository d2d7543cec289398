//! Remote analytics end to end: `iter8_core::driver::reconcile_once` with [`RemoteAnalytics`]
//! calling our server (in-process on 127.0.0.1:0) over a fake Prometheus, compared with the
//! built-in analytics over the same Prometheus; plus the payload and the client's errors.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use chrono::{DateTime, TimeZone, Utc};
use iter8_analytics::RemoteAnalytics;
use iter8_analytics::remote::payload;
use iter8_core::action::{Event, RoutingAction};
use iter8_core::analytics::{AnalysisRequest, AnalyticsError};
use iter8_core::driver::{BuiltinAnalytics, Ports, reconcile_once};
use iter8_core::engine::Context;
use iter8_core::metrics_config::{EXTENDED_TELEMETRY_V2, MetricsConfig};
use iter8_core::observation::{RoutingObservation, Targets};
use iter8_core::ports::{
    Analytics, EventRecorder, ExperimentStore, PortError, TargetLocator, TrafficRouter,
};
use iter8_core::{Experiment, ExperimentStatus, Phase, TrafficSplit};
use iter8_prometheus::{PrometheusClient, PrometheusSettings, PrometheusSource};
use iter8_rand::ChaCha;
use serde_json::{Value, json};
use support::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
}

/// The tutorial's canary (reviews-v2 -> reviews-v3, step 20, cap 80, 8 iterations).
fn tutorial() -> Experiment {
    let path = format!(
        "{}/../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut exp = iter8_core::manifest::parse_experiments(&text).unwrap()[0]
        .clone()
        .unwrap()
        .experiment;
    exp.metadata.namespace = Some("bookinfo-iter8".into());
    exp
}

/// A Prometheus over a steady 1 request/s per version: the sample size is the window's
/// length in seconds, the mean latency 120 ms (baseline) and 150 ms (candidate).
async fn steady_prometheus() -> FakePrometheus {
    fake_prometheus(Arc::new(|q: &str| {
        let secs: f64 = q
            .split('[')
            .nth(1)
            .and_then(|s| s.split('s').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        let (b, c) = if q.contains("duration_milliseconds_sum") {
            (120.0, 150.0)
        } else {
            (secs, secs)
        };
        let series = |w: &str, v: f64| {
            json!({"metric": {"destination_workload": w,
                              "destination_workload_namespace": "bookinfo-iter8"},
                   "value": [1_700_000_000.0, v.to_string()]})
        };
        (
            200,
            json!({"status": "success", "data": {"resultType": "vector",
                   "result": [series("reviews-v2", b), series("reviews-v3", c)]}}),
        )
    }))
    .await
}

/// The cluster side of the ports, in memory.
#[derive(Default)]
struct Cluster {
    status: Mutex<Option<ExperimentStatus>>,
    finalizers: Mutex<Vec<String>>,
    split: Mutex<Option<TrafficSplit>>,
    routed: Mutex<Vec<RoutingAction>>,
}

#[async_trait]
impl TargetLocator for Cluster {
    async fn locate(&self, _: &Experiment) -> Result<Targets, PortError> {
        Ok(Targets::all_present())
    }
    async fn delete_target(&self, _: &Experiment, _: &str) -> Result<(), PortError> {
        Ok(())
    }
}

#[async_trait]
impl TrafficRouter for Cluster {
    async fn observe(&self, _: &Experiment) -> Result<RoutingObservation, PortError> {
        Ok(RoutingObservation {
            split: *self.split.lock().unwrap(),
            held_by: None,
            ..Default::default()
        })
    }
    async fn apply(&self, _: &Experiment, action: &RoutingAction) -> Result<(), PortError> {
        let split = match action {
            RoutingAction::Initialize => TrafficSplit::ALL_BASELINE,
            RoutingAction::SetSplit(s) | RoutingAction::Finalize { split: s, .. } => *s,
        };
        *self.split.lock().unwrap() = Some(split);
        self.routed.lock().unwrap().push(*action);
        Ok(())
    }
}

#[async_trait]
impl ExperimentStore for Cluster {
    async fn write_status(&self, _: &Experiment, s: &ExperimentStatus) -> Result<(), PortError> {
        *self.status.lock().unwrap() = Some(s.clone());
        Ok(())
    }
    async fn add_finalizer(&self, _: &Experiment) -> Result<(), PortError> {
        self.finalizers
            .lock()
            .unwrap()
            .push(iter8_core::model::FINALIZER.into());
        Ok(())
    }
    async fn remove_finalizer(&self, _: &Experiment) -> Result<(), PortError> {
        self.finalizers.lock().unwrap().clear();
        Ok(())
    }
}

#[async_trait]
impl EventRecorder for Cluster {
    async fn record(&self, _: &Experiment, _: &Event) -> Result<(), PortError> {
        Ok(())
    }
}

/// One reconcile's result: the status written and the split served afterwards.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    status: ExperimentStatus,
    split: Option<TrafficSplit>,
}

/// Runs the experiment to completion through `reconcile_once` on a virtual clock.
async fn run(mut exp: Experiment, analytics: &dyn Analytics) -> Vec<Step> {
    let metrics = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
    let cluster = Cluster::default();
    let mut now = t0();
    let mut steps = Vec::new();
    for _ in 0..40 {
        let ports = Ports {
            targets: &cluster,
            router: &cluster,
            analytics,
            store: &cluster,
            events: &cluster,
        };
        let decision = reconcile_once(&exp, &ports, &Context::new(&metrics, now))
            .await
            .unwrap();
        if let Some(s) = cluster.status.lock().unwrap().clone() {
            exp.status = s;
        }
        exp.metadata.finalizers = cluster.finalizers.lock().unwrap().clone();
        steps.push(Step {
            status: exp.status.clone(),
            split: *cluster.split.lock().unwrap(),
        });
        if exp.status.phase == Some(Phase::Completed) {
            break;
        }
        now +=
            chrono::Duration::from_std(decision.requeue_after.unwrap_or(Duration::from_secs(30)))
                .unwrap();
    }
    steps
}

fn splits(steps: &[Step]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for s in steps {
        if let Some(split) = s.split
            && out.last() != Some(&split.candidate)
        {
            out.push(split.candidate);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tutorial_runs_through_remote_analytics_as_built_in() {
    let prom = steady_prometheus().await;
    let server = analytics_server(&prom.url()).await;
    let mut exp = tutorial();
    exp.spec.analysis.analytics_service = Some(server.clone());

    let remote = RemoteAnalytics::new(Duration::from_secs(10))
        .unwrap()
        .with_allowed_endpoints([&server])
        .unwrap();
    let remote_steps = run(exp.clone(), &remote).await;

    let client = PrometheusClient::new(&PrometheusSettings::new(prom.url())).unwrap();
    let builtin = BuiltinAnalytics::new(PrometheusSource::new(client).with_clock(t0), ChaCha);
    let builtin_steps = run(exp, &builtin).await;

    // 20, 40, 60, 80 (the cap), then 100 to the candidate on success.
    assert_eq!(splits(&remote_steps), vec![20, 40, 60, 80, 100]);
    let last = &remote_steps.last().unwrap().status;
    assert_eq!(last.phase, Some(Phase::Completed));
    assert_eq!(
        last.message.as_deref(),
        Some("ExperimentSucceeded: All Success Criteria Were Met")
    );
    let assessment = last.assessment.as_ref().unwrap();
    assert!(assessment.all_success_criteria_met);
    let c = &assessment.success_criteria[0];
    assert_eq!(c.metric_name, "iter8_latency");
    assert_eq!(
        c.conclusions,
        vec!["iter8_latency of the candidate is within threshold 200 . ".to_string()]
    );
    assert_eq!(c.candidate.unwrap().value, Some(150.0));

    // The same decisions as the built-in analytics, step by step.
    assert_eq!(remote_steps.len(), builtin_steps.len());
    for (r, b) in remote_steps.iter().zip(&builtin_steps) {
        assert_eq!(r.split, b.split);
        assert_eq!(r.status.phase, b.status.phase);
        assert_eq!(r.status.message, b.status.message);
        assert_eq!(r.status.current_iteration, b.status.current_iteration);
        assert_eq!(r.status.analysis_state, b.status.analysis_state);
        assert_eq!(r.status.assessment, b.status.assessment);
    }
}

/// A fake analytics service that records what it is sent and answers with `answer`.
async fn recording_service(
    status: u16,
    answer: Value,
    delay: Duration,
) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move |uri: axum::http::Uri, body: Bytes| {
            let (log, answer) = (log.clone(), answer.clone());
            async move {
                log.lock().unwrap().push((
                    uri.path().to_string(),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                tokio::time::sleep(delay).await;
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(answer),
                )
            }
        }),
    );
    let addr = spawn(app).await;
    (format!("http://{addr}"), seen)
}

fn request() -> AnalysisRequest {
    let exp = tutorial();
    let metrics = MetricsConfig::from_configmap_yaml(EXTENDED_TELEMETRY_V2).unwrap();
    let plan = iter8_core::validation::plan(&exp, &metrics).unwrap();
    let window = iter8_core::measurement::Window {
        start: t0(),
        end: t0() + chrono::Duration::seconds(90),
    };
    AnalysisRequest::new(&plan, window, None)
}

#[test]
fn the_payload_is_what_the_go_controller_sent() {
    let p = payload(&request());
    assert_eq!(
        p["baseline"],
        json!({
            "start_time": "2026-11-27T10:00:00Z",
            "end_time": "2026-11-27T10:01:30Z",
            "tags": {"destination_workload": "reviews-v2",
                     "destination_workload_namespace": "bookinfo-iter8"},
        })
    );
    assert_eq!(p["candidate"]["tags"]["destination_workload"], "reviews-v3");
    assert_eq!(p["_last_state"], json!({}));
    let tc = &p["traffic_control"];
    assert_eq!(tc["max_traffic_percent"].to_string(), "80");
    assert_eq!(tc["step_size"].to_string(), "20");
    let c = &tc["success_criteria"][0];
    assert_eq!(c["metric_name"], "iter8_latency");
    assert_eq!(c["type"], "threshold");
    assert_eq!(
        c["value"].to_string(),
        "200",
        "Go writes whole float64s without .0"
    );
    assert_eq!(c["is_counter"], false);
    assert_eq!(c["absent_value"], "None");
    assert_eq!(c["sample_size"], 5);
    assert_eq!(c["stop_on_failure"], false);
    assert!(
        c["metric_query_template"]
            .as_str()
            .unwrap()
            .contains("istio_request_duration_milliseconds_sum")
    );
    assert!(
        c["metric_sample_size_query_template"]
            .as_str()
            .unwrap()
            .starts_with("sum(increase(istio_requests_total")
    );
    // The payload passes our own validation of the v0.2.1 schema.
    iter8_analytics::schema::validate(&p, &iter8_analytics::schema::CHECK_AND_INCREMENT_PARAMETERS)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_error_names_the_status_and_message() {
    let (url, seen) = recording_service(
        400,
        json!({"message": "Delta criterion cannot be used with counter metric."}),
        Duration::ZERO,
    )
    .await;
    let remote = RemoteAnalytics::new(Duration::from_secs(5))
        .unwrap()
        .with_endpoint(format!("{url}/"));
    let err = remote.analyze(&request()).await.unwrap_err();
    assert_eq!(
        err,
        AnalyticsError::Service(format!(
            "POST {url}/api/v1/experiment/check_and_increment: HTTP 400: Delta criterion cannot be used with counter metric."
        ))
    );
    assert_eq!(
        seen.lock().unwrap()[0].0,
        "/api/v1/experiment/check_and_increment"
    );

    // The last state is passed on, and a strategy maps to its endpoint.
    let mut req = request();
    req.strategy = iter8_core::Strategy::EpsilonGreedy;
    req.last_state = Some(json!({"effective_iteration_count": 1}).into());
    let _ = remote.analyze(&req).await;
    let (path, body) = seen.lock().unwrap()[1].clone();
    assert_eq!(path, "/api/v1/experiment/epsilon_t_greedy");
    assert_eq!(body["_last_state"], json!({"effective_iteration_count": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_or_absent_service_is_a_clear_error() {
    let (url, _) = recording_service(200, json!({}), Duration::from_secs(3)).await;
    let remote = RemoteAnalytics::new(Duration::from_millis(300))
        .unwrap()
        .with_endpoint(url);
    let started = std::time::Instant::now();
    let err = remote.analyze(&request()).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.starts_with("analytics service: POST http://"), "{err}");
    assert!(err.ends_with("no answer within 300ms"), "{err}");

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let remote = RemoteAnalytics::new(Duration::from_secs(2))
        .unwrap()
        .with_endpoint(format!("http://127.0.0.1:{port}"));
    let err = remote.analyze(&request()).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach the service"), "{err}");

    // An answer that is not the API's.
    let (url, _) = recording_service(200, json!({"candidate": {}}), Duration::ZERO).await;
    let remote = RemoteAnalytics::new(Duration::from_secs(2))
        .unwrap()
        .with_endpoint(url);
    let err = remote.analyze(&request()).await.unwrap_err().to_string();
    assert!(
        err.ends_with("the answer has no candidate.traffic_percentage"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_experiment_naming_an_endpoint_not_allowed_pauses_and_nothing_is_sent() {
    let (url, seen) = recording_service(200, json!({}), Duration::ZERO).await;
    let mut exp = tutorial();
    exp.spec.analysis.analytics_service = Some(url.clone());
    // The default allow-list holds only iter8's default service.
    let remote = RemoteAnalytics::new(Duration::from_secs(5)).unwrap();
    let steps = run(exp.clone(), &remote).await;
    let status = &steps.last().unwrap().status;
    let message = status.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "spec.analysis.analyticsService `{url}` is not an allowed analytics endpoint (allowed: http://iter8-analytics.iter8:8080)"
        )),
        "{message}"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing is posted");

    // Allowed explicitly, the same experiment reaches the service.
    let remote = remote.with_allowed_endpoints([format!("{url}/")]).unwrap();
    let mut req = request();
    req.analytics_service = url.clone();
    let _ = remote.analyze(&req).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_not_followed() {
    let (elsewhere, seen) = recording_service(200, json!({}), Duration::ZERO).await;
    let target = format!("{elsewhere}/api/v1/experiment/check_and_increment");
    let app = Router::new().route(
        "/{*path}",
        post(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let url = format!("http://{}", spawn(app).await);
    let remote = RemoteAnalytics::new(Duration::from_secs(5))
        .unwrap()
        .with_endpoint(url.clone());
    let err = remote.analyze(&request()).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 307"), "{err}");
    assert!(seen.lock().unwrap().is_empty(), "the redirect was followed");
}

/// A service answering `status` with `body` (any bytes) to every POST.
async fn raw_service(status: u16, body: Vec<u8>) -> String {
    let app = Router::new().route(
        "/{*path}",
        post(move || {
            let body = body.clone();
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), body) }
        }),
    );
    format!("http://{}", spawn(app).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_are_capped_and_errors_bounded_never_the_raw_body() {
    use iter8_analytics::remote::{MAX_MESSAGE_CHARS, MAX_RESPONSE_BYTES, TRUNCATED};
    let call = |url: String| async move {
        RemoteAnalytics::new(Duration::from_secs(5))
            .unwrap()
            .with_endpoint(url)
            .analyze(&request())
            .await
            .unwrap_err()
            .to_string()
    };

    // An answer over the cap is not read to its end.
    let huge = vec![b' '; MAX_RESPONSE_BYTES + 1];
    let err = call(raw_service(200, huge).await).await;
    assert!(
        err.ends_with(&format!(
            "HTTP 200: the answer exceeds {MAX_RESPONSE_BYTES} bytes"
        )),
        "{err}"
    );

    // A body that is not the API's error JSON is not quoted.
    let page = b"<html>secret internal page</html>".to_vec();
    let err = call(raw_service(502, page).await).await;
    assert!(!err.contains("secret"), "{err}");
    assert!(
        err.ends_with("HTTP 502: the answer (33 bytes) is not an iter8-analytics error message"),
        "{err}"
    );

    // The service's message is kept, but cut to a bounded length with a marker.
    let long = json!({"message": "x".repeat(10_000)})
        .to_string()
        .into_bytes();
    let err = call(raw_service(400, long).await).await;
    assert!(err.ends_with(TRUNCATED), "{err}");
    assert!(
        err.chars().count() <= MAX_MESSAGE_CHARS + TRUNCATED.chars().count() + 40,
        "{} chars",
        err.chars().count()
    );
}
