//! The REST API against a fake Prometheus answering with iter8-analytics v0.2.1's unit-test
//! fixtures (tests/data). Every decision is asserted field by field, conclusions verbatim.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::*;

const CAI: &str = "/api/v1/experiment/check_and_increment";
const EPSILON: &str = "/api/v1/experiment/epsilon_t_greedy";
const LONG_AGO: &str = "The experiment end time is more than 30 mins ago";
const ALL_MET: &str = "All success criteria were  met";
const NOT_ALL_MET: &str = "All success criteria were not met";
const ABORT: &str = "The experiment needs to be aborted";
const NO_CHANGE: &str = "No change observed in this iteration. Traffic percentage is not altered";
const BASELINE_FAILED: &str = "The baseline version did not meet success criteria";

fn stats(sample: i64, value: Value) -> Value {
    json!({
        "sample_size": sample, "min": null, "max": null, "mean": null, "stddev": null,
        "first_quartile": null, "median": null, "third_quartile": null,
        "95th_percentile": null, "99th_percentile": null, "value": value,
    })
}

fn metric(name: &str, counter: bool, absent: &str, sample: i64, value: Value) -> Value {
    json!({"metric_name": name, "is_counter": counter, "absent_value": absent,
           "statistics": stats(sample, value)})
}

fn criterion(name: &str, conclusions: &[&str], met: bool, abort: bool) -> Value {
    json!({"metric_name": name, "conclusions": conclusions,
           "success_criterion_met": met, "abort_experiment": abort})
}

fn summary(conclusions: &[&str], all_met: bool, abort: bool) -> Value {
    json!({"conclusions": conclusions, "all_success_criteria_met": all_met,
           "abort_experiment": abort})
}

/// Information stored by an earlier call that differs from the fixtures' numbers.
fn old_info() -> Value {
    json!([[10, 20.0], [10, 20.0]])
}

fn old_state(candidate: f64) -> Value {
    last_state(100.0 - candidate, candidate, old_info(), old_info())
}

async fn serve(fixture: &str) -> (FakePrometheus, String) {
    let prom = prometheus_with(fixture).await;
    let url = analytics_server(&prom.url()).await;
    (prom, url)
}

const LATENCY_WITHIN: &str =
    "iter8_latency of the candidate is within delta 0.02 of the baseline. ";
const ERRORS_WITHIN_25: &str = "iter8_error_count of the candidate is within threshold 25 . ";

#[tokio::test(flavor = "multi_thread")]
async fn first_iteration() {
    let (prom, url) = serve("sample_response").await;
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        json!({}),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    let expected = json!({
        "metric_backend_url": prom.url(),
        "baseline": {
            "metrics": [
                metric("iter8_latency", false, "None", 24, json!(24.05)),
                metric("iter8_error_count", true, "0.0", 24, json!(24.05)),
            ],
            "traffic_percentage": 98.0,
        },
        "candidate": {
            "metrics": [
                metric("iter8_latency", false, "None", 19, json!(19.677)),
                metric("iter8_error_count", true, "0.0", 19, json!(19.677)),
            ],
            "traffic_percentage": 2.0,
        },
        "assessment": {
            "summary": summary(&[LONG_AGO, "Experiment started"], true, false),
            "success_criteria": [
                criterion("iter8_latency", &[LATENCY_WITHIN], true, false),
                criterion("iter8_error_count", &[ERRORS_WITHIN_25], true, false),
            ],
        },
        "_last_state": {
            "baseline": {"traffic_percentage": 98.0,
                         "success_criterion_information": [[24.0, 24.05], [24.0, 24.05]]},
            "candidate": {"traffic_percentage": 2.0,
                          "success_criterion_information": [[19.0, 19.677], [19.0, 19.677]]},
        },
    });
    assert_eq!(r, expected);
    // The templates were rendered as iter8-analytics renders them: a one-hour window that
    // ended in the past, grouped by the tag keys.
    let queries = prom.queries();
    assert!(!queries.is_empty());
    for q in &queries {
        assert!(q.contains("[3600s] offset "), "{q}");
        assert!(
            q.contains("by (destination_service_namespace,destination_workload)"),
            "{q}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn last_state_75_25_advances_by_the_default_step() {
    let (_prom, url) = serve("sample_response").await;
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        old_state(25.0),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["candidate"]["traffic_percentage"], json!(27.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(73.0));
    assert_eq!(
        r["assessment"]["summary"],
        summary(&[LONG_AGO, ALL_MET], true, false)
    );
    assert_eq!(
        r["_last_state"],
        json!({
            "baseline": {"traffic_percentage": 73.0,
                         "success_criterion_information": [[24.0, 24.05], [24.0, 24.05]]},
            "candidate": {"traffic_percentage": 27.0,
                          "success_criterion_information": [[19.0, 19.677], [19.0, 19.677]]},
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_change_observed_holds() {
    let (_prom, url) = serve("sample_response").await;
    let last = last_state(
        75.0,
        25.0,
        json!([[24, 24.05], [24, 24.05]]),
        json!([[19, 19.677], [19, 19.677]]),
    );
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        last,
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["candidate"]["traffic_percentage"], json!(25.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(75.0));
    assert_eq!(
        r["assessment"]["summary"],
        summary(&[LONG_AGO, ALL_MET, NO_CHANGE], true, false)
    );
    assert_eq!(
        r["_last_state"]["candidate"]["traffic_percentage"],
        json!(25.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capped_at_the_maximum() {
    let (_prom, url) = serve("sample_response").await;
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        old_state(49.0),
    );
    let (_, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(50.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(50.0));
    // An explicit cap and step are honoured.
    let body = traffic(
        traffic(body, "max_traffic_percent", json!(60)),
        "step_size",
        json!(5),
    );
    let (_, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(54.0));
    let body = traffic(body, "max_traffic_percent", json!(52.5));
    let (_, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(52.5));
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_metric_over_its_threshold_aborts() {
    let (_prom, url) = serve("sample_response").await;
    let body = request(
        vec![latency("delta", 0.02), error_count("threshold", 10.0)],
        old_state(25.0),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["assessment"],
        json!({
            "summary": summary(&[LONG_AGO, ABORT, NOT_ALL_MET, BASELINE_FAILED], false, true),
            "success_criteria": [
                criterion("iter8_latency", &[LATENCY_WITHIN], true, false),
                criterion("iter8_error_count", &[
                    "iter8_error_count of the candidate is not within threshold 10 . ",
                    "Counter Metric exceeded threshold value. Aborting experiment.",
                ], false, true),
            ],
        })
    );
    assert_eq!(r["candidate"]["traffic_percentage"], json!(25.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_on_a_counter_metric_is_a_400() {
    let (_prom, url) = serve("sample_response").await;
    let body = request(vec![error_count("delta", 0.02)], json!({}));
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        r,
        json!({"message": "Delta criterion cannot be used with counter metric."})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_versions_failing_with_stop_on_failure() {
    let (_prom, url) = serve("baseline_failing_response").await;
    let c = with(
        with(latency("threshold", 0.5), "sample_size", json!(1)),
        "stop_on_failure",
        json!(true),
    );
    let body = request(
        vec![c],
        last_state(75.0, 25.0, json!([[0, 0.0]]), json!([[0, 0.0]])),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["assessment"],
        json!({
            "summary": summary(&[LONG_AGO, ABORT, NOT_ALL_MET, BASELINE_FAILED], false, true),
            "success_criteria": [criterion("iter8_latency",
                &["iter8_latency of the candidate is not within threshold 0.5 . "], false, true)],
        })
    );
    assert_eq!(
        r["baseline"]["metrics"][0]["statistics"],
        stats(1, json!(1.0))
    );
    assert_eq!(
        r["candidate"]["metrics"][0]["statistics"],
        stats(5, json!(5.0))
    );
    assert_eq!(r["candidate"]["traffic_percentage"], json!(25.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn insufficient_sample_holds() {
    let (_prom, url) = serve("sample_response").await;
    let c = with(
        with(latency("threshold", 30.0), "sample_size", json!(100)),
        "stop_on_failure",
        json!(true),
    );
    let body = request(
        vec![c],
        last_state(75.0, 25.0, json!([[0, 0.0]]), json!([[0, 0.0]])),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["assessment"],
        json!({
            "summary": summary(&[LONG_AGO, NOT_ALL_MET], false, false),
            "success_criteria": [criterion("iter8_latency", &["Insufficient sample size. "], false, false)],
        })
    );
    assert_eq!(r["candidate"]["traffic_percentage"], json!(25.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(75.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_data_with_absent_value_none() {
    let (_prom, url) = serve("no_data_response").await;
    let body = request(
        vec![
            with(latency("threshold", 0.5), "sample_size", json!(0)),
            with(error_count("threshold", 10.0), "sample_size", json!(0)),
        ],
        json!({}),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["candidate"]["metrics"],
        json!([
            metric("iter8_latency", false, "None", 0, Value::Null),
            metric("iter8_error_count", true, "0.0", 0, json!(0.0)),
        ])
    );
    assert_eq!(
        r["assessment"],
        json!({
            "summary": summary(&[LONG_AGO, "Experiment started"], false, false),
            "success_criteria": [
                criterion("iter8_latency",
                    &["iter8_latency of the candidate is not within threshold 0.5 . "], false, false),
                criterion("iter8_error_count",
                    &["iter8_error_count of the candidate is within threshold 10 . "], true, false),
            ],
        })
    );
    // The first call always steps.
    assert_eq!(r["candidate"]["traffic_percentage"], json!(2.0));
    assert_eq!(
        r["_last_state"]["candidate"]["success_criterion_information"],
        json!([[0.0, null], [0.0, 0.0]])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_start_time_is_a_validation_error() {
    let (_prom, url) = serve("sample_response").await;
    let mut body = request(vec![latency("delta", 0.02)], json!({}));
    body["baseline"]
        .as_object_mut()
        .unwrap()
        .remove("start_time");
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        r,
        json!({"errors": {"baseline.start_time": "'start_time' is a required property"},
               "message": "Input payload validation failed"})
    );
    // Several problems are reported together, by path.
    let mut body = request(vec![json!({"metric_name": "x"})], json!({}));
    body.as_object_mut().unwrap().remove("_last_state");
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 400);
    let errors = r["errors"].as_object().unwrap();
    assert_eq!(
        errors["_last_state"],
        "'_last_state' is a required property"
    );
    assert_eq!(
        errors["traffic_control.success_criteria.0.is_counter"],
        "'is_counter' is a required property"
    );
    assert_eq!(errors.len(), 6, "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_failing_holds() {
    let (_prom, url) = serve("baseline_failing_response").await;
    let c = with(latency("delta", 0.02), "sample_size", json!(1));
    let body = request(
        vec![c],
        last_state(75.0, 25.0, json!([[0, 0.0]]), json!([[0, 0.0]])),
    );
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["assessment"],
        json!({
            "summary": summary(&[LONG_AGO, NOT_ALL_MET], false, false),
            "success_criteria": [criterion("iter8_latency",
                &["iter8_latency of the candidate is not within delta 0.02 of the baseline. "],
                false, false)],
        })
    );
    assert_eq!(r["candidate"]["traffic_percentage"], json!(25.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn epsilon_greedy_first_exploit_and_explore() {
    let (_prom, url) = serve("sample_response").await;
    let endpoint = format!("{url}{EPSILON}");
    let passing = vec![latency("delta", 0.02), error_count("threshold", 25.0)];

    // First call: effective iteration 1, epsilon 1 -> int((1 - 1 + 0.5) * 100) = 50.
    let body = traffic(
        request(passing.clone(), json!({})),
        "max_traffic_percent",
        json!(90),
    );
    let (status, r) = post(&endpoint, &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["candidate"]["traffic_percentage"], json!(50.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(50.0));
    assert_eq!(
        r["assessment"]["summary"],
        summary(&[LONG_AGO, "Experiment started"], true, false)
    );
    assert_eq!(r["_last_state"]["effective_iteration_count"], json!(1));
    assert_eq!(
        r["_last_state"]["candidate"],
        json!({"traffic_percentage": 50.0,
               "success_criterion_information": [[19.0, 19.677], [19.0, 19.677]]})
    );

    // Exploit: all met on new data, iteration 2 -> int((1 - 0.5 + 0.25) * 100) = 75.
    let mut last = old_state(50.0);
    last["effective_iteration_count"] = json!(1);
    let body = traffic(
        request(passing.clone(), last),
        "max_traffic_percent",
        json!(90),
    );
    let (_, r) = post(&endpoint, &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(75.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(25.0));
    assert_eq!(
        r["assessment"]["summary"],
        summary(&[LONG_AGO, ALL_MET], true, false)
    );
    assert_eq!(r["_last_state"]["effective_iteration_count"], json!(2));

    // Explore: a criterion fails on a sufficient sample, iteration 3 -> int((1/3 / 2) * 100).
    let mut last = old_state(75.0);
    last["effective_iteration_count"] = json!(2);
    let failing = vec![latency("threshold", 10.0), error_count("threshold", 25.0)];
    let body = traffic(request(failing, last), "max_traffic_percent", json!(90));
    let (_, r) = post(&endpoint, &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(16.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(84.0));
    assert_eq!(
        r["assessment"]["summary"],
        summary(&[LONG_AGO, NOT_ALL_MET, BASELINE_FAILED], false, false)
    );
    assert_eq!(r["_last_state"]["effective_iteration_count"], json!(3));

    // The default cap (50) applies to exploitation.
    let mut last = old_state(50.0);
    last["effective_iteration_count"] = json!(1);
    let (_, r) = post(&endpoint, &request(passing.clone(), last)).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(50.0));

    // iter8-analytics requires the count after the first call.
    let (status, r) = post(&endpoint, &request(passing, old_state(50.0))).await;
    assert_eq!(status, 400);
    assert_eq!(r, json!({"message": "'effective_iteration_count'"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn start_after_end_is_a_400() {
    let (_prom, url) = serve("sample_response").await;
    let mut body = request(vec![latency("delta", 0.02)], json!({}));
    body["candidate"]["start_time"] = json!("2019-04-24T21:40:32.017Z");
    let (status, r) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 400);
    assert_eq!(r, json!({"message": "Start time cannot exceed end time"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_error_is_query_did_not_succeed() {
    let prom = fake_prometheus(Arc::new(|_| {
        (
            400,
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
        )
    }))
    .await;
    let url = analytics_server(&prom.url()).await;
    let (status, r) = post(
        &format!("{url}{CAI}"),
        &request(vec![latency("delta", 0.02)], json!({})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        r,
        json!({"message": "Query did not succeed. Check your query template."})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn end_time_defaults_to_now_and_both_prefixes_answer() {
    let (prom, url) = serve("sample_response").await;
    let mut body = request(
        vec![latency("delta", 0.02), error_count("threshold", 25.0)],
        json!({}),
    );
    for v in ["baseline", "candidate"] {
        body[v].as_object_mut().unwrap().remove("end_time");
        body[v]["start_time"] = json!("2026-11-27T09:30:00Z");
    }
    let (status, a) = post(&format!("{url}{CAI}"), &body).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        a["assessment"]["summary"]["conclusions"],
        json!(["Experiment started"])
    );
    let (status, b) = post(
        &format!("{url}/api/v1/analytics/canary/check_and_increment"),
        &body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(a, b);
    // The window is [start, now] and ends now: no offset.
    for q in prom.queries().iter() {
        assert!(q.contains("[1800s])"), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bayesian_routing_is_deterministic_for_a_seed() {
    let (_prom, url) = serve("sample_response_br").await;
    let rate = with(
        with(
            latency("threshold", 200000.0),
            "min_max",
            json!({"min": 0, "max": 1}),
        ),
        "metric_name",
        json!("iter8_error_rate"),
    );
    let body = traffic(request(vec![rate], json!({})), "confidence", json!(0.5));
    for name in ["posterior_bayesian_routing", "optimistic_bayesian_routing"] {
        let endpoint = format!("{url}/api/v1/experiment/{name}");
        let (status, r) = post(&endpoint, &body).await;
        assert_eq!(status, 200, "{r}");
        // The candidate (198000 requests) wins nearly every trial; the cap is 50.
        assert_eq!(r["candidate"]["traffic_percentage"], json!(50.0), "{name}");
        assert_eq!(r["baseline"]["traffic_percentage"], json!(50.0), "{name}");
        assert_eq!(
            r["assessment"]["summary"],
            summary(
                &[LONG_AGO, ALL_MET, "Required confidence of 0.5 was reached"],
                true,
                false
            )
        );
        assert_eq!(
            r["assessment"]["success_criteria"],
            json!([criterion(
                "iter8_error_rate",
                &["iter8_error_rate of the candidate is within threshold 200000 . "],
                true,
                false
            )])
        );
        // v0.2.1's belief shape: [alpha, beta, gamma, sigma] per criterion.
        let b = &r["_last_state"]["baseline"]["success_criterion_belief"][0];
        assert_eq!(
            b,
            &json!([25.05, 1.0, null, null]),
            "W = 24.05 (the sample query's value), the value clamped to max"
        );
        assert_eq!(r["_last_state"]["iteration"], json!(1));
        let (_, again) = post(&endpoint, &body).await;
        assert_eq!(r, again, "same seed and inputs, same decision");
    }
    // Without the cap the share is the trials' verdict: the candidate's stand-in reward
    // (Beta with mean 2/3 over 198000 requests) beats the baseline's (mean 1/3) every time.
    let endpoint = format!("{url}/api/v1/experiment/posterior_bayesian_routing");
    let mut body = traffic(
        traffic(body, "max_traffic_percent", json!(100)),
        "confidence",
        json!(0.99999),
    );
    let (_, r) = post(&endpoint, &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(100.0));
    assert_eq!(
        r["assessment"]["summary"]["conclusions"][2],
        "Required confidence of 0.99999 was reached"
    );
    // A threshold both versions' beliefs break (values near the top of [0, 1] against 0.5):
    // neither is feasible, the baseline keeps everything.
    body["traffic_control"]["success_criteria"][0]["value"] = json!(0.5);
    let (_, r) = post(&endpoint, &body).await;
    assert_eq!(r["candidate"]["traffic_percentage"], json!(0.0));
    assert_eq!(r["baseline"]["traffic_percentage"], json!(100.0));
    assert_eq!(
        r["assessment"]["summary"]["conclusions"],
        json!([
            LONG_AGO,
            NOT_ALL_MET,
            "Required confidence of 0.99999 was not reached"
        ])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_algorithms_and_unknown_paths() {
    let (_prom, url) = serve("sample_response").await;
    assert_eq!(
        get_json(&format!("{url}/api/v1/health/health_check")).await,
        (200, json!({"status": "OK"}))
    );
    let (status, algos) = get_json(&format!("{url}/api/v1/experiment/algorithms")).await;
    assert_eq!(status, 200);
    // iter8-analytics v0.2.1's body, byte for byte in content.
    assert_eq!(
        algos,
        json!({
            "check_and_increment": {"endpoint": "/experiment/check_and_increment"},
            "epsilon_t_greedy": {"endpoint": "/experiment/epsilon_t_greedy"},
            "posterior_bayesian_routing": {"endpoint": "/experiment/posterior_bayesian_routing"},
            "optimistic_bayesian_routing": {"endpoint": "/experiment/optimistic_bayesian_routing"},
        })
    );
    // Each endpoint is relative to the swagger's basePath, and served there.
    let swagger: Value = serde_json::from_str(include_str!("data/swagger_v0.2.1.json")).unwrap();
    assert_eq!(swagger["basePath"], "/api/v1");
    for (name, algo) in algos.as_object().unwrap() {
        let endpoint = algo["endpoint"].as_str().unwrap();
        assert!(
            swagger["paths"][endpoint]["post"].is_object(),
            "{name}: {endpoint} is not in the swagger"
        );
        let r = client()
            .post(format!("{url}/api/v1{endpoint}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{endpoint}: an empty request");
    }
    let (status, body) = get_json(&format!("{url}/api/v1/nope")).await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The requested URL")
    );
    let (status, _) = get_json(&format!("{url}{CAI}")).await;
    assert_eq!(status, 405);
    let r = client()
        .post(format!("{url}{CAI}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to decode JSON object")
    );
}
