//! What the client does with an answer it should not trust (too large, too wordy), how many
//! queries it sends at once, and a bearer token file rotated under it; against the fake
//! Prometheus of iter8-test-support on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use iter8_core::measurement::MetricErrorKind;
use iter8_prometheus::client::{MAX_MESSAGE_CHARS, MAX_RESPONSE_BYTES, TRUNCATED};
use iter8_prometheus::{Auth, PrometheusClient, PrometheusSettings, RetryPolicy};
use iter8_test_support::{FakePrometheus, Reply};

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_704_067_200, 0).single().unwrap()
}

fn settings(url: String) -> PrometheusSettings {
    PrometheusSettings::new(url)
        .with_timeout(Duration::from_secs(5))
        .with_retry(RetryPolicy::NONE)
}

const ONE_SERIES: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}"#;

#[tokio::test]
async fn an_answer_over_the_cap_is_a_bad_response() {
    let huge = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[]}},"pad":"{}"}}"#,
        "x".repeat(MAX_RESPONSE_BYTES)
    );
    let fake = FakePrometheus::scripted(vec![Reply::http(200, huge)]).await;
    let client = PrometheusClient::new(&settings(fake.url())).unwrap();
    let err = client.query("up", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::BadResponse);
    assert!(
        err.message
            .ends_with(&format!("the answer exceeds {MAX_RESPONSE_BYTES} bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn prometheus_error_text_is_cut_with_a_marker() {
    let body = serde_json::json!({
        "status": "error", "errorType": "bad_data", "error": "y".repeat(100_000)
    });
    let fake = FakePrometheus::scripted(vec![Reply::json(400, &body)]).await;
    let client = PrometheusClient::new(&settings(fake.url())).unwrap();
    let err = client.query("up", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::Backend);
    assert!(err.message.ends_with(TRUNCATED), "{err}");
    assert_eq!(
        err.message.chars().count(),
        MAX_MESSAGE_CHARS + TRUNCATED.chars().count()
    );
}

#[tokio::test]
async fn no_more_than_the_configured_queries_are_in_flight() {
    let fake = FakePrometheus::scripted(vec![
        Reply::http(200, ONE_SERIES).after(Duration::from_millis(200)),
    ])
    .await;
    let client = Arc::new(
        PrometheusClient::new(&settings(fake.url()).with_max_concurrent_queries(2)).unwrap(),
    );
    let queries = (0..6).map(|i| {
        let client = client.clone();
        async move { client.query(&format!("q{i}"), t0()).await }
    });
    for answer in futures::future::join_all(queries).await {
        assert_eq!(answer.unwrap()[0].value, 7.0);
    }
    assert_eq!(fake.requests().len(), 6);
    assert_eq!(fake.max_in_flight(), 2);
}

/// A Prometheus that accepts only the bearer token in `accepted`.
async fn accepting(accepted: Arc<Mutex<String>>) -> FakePrometheus {
    FakePrometheus::answering(move |request| {
        let wanted = format!(
            "authorization: bearer {}",
            accepted.lock().unwrap().to_ascii_lowercase()
        );
        if request.head.to_ascii_lowercase().contains(&wanted) {
            Reply::http(200, ONE_SERIES)
        } else {
            Reply::http(401, "Unauthorized")
        }
    })
    .await
}

fn bearer(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("authorization: bearer ")
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rotated_token_file_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "old-token\n").unwrap();
    let accepted = Arc::new(Mutex::new("old-token".to_string()));
    let fake = accepting(accepted.clone()).await;
    let client =
        PrometheusClient::new(&settings(fake.url()).with_auth(Auth::BearerFile(path.clone())))
            .unwrap();
    assert_eq!(client.query("up", t0()).await.unwrap()[0].value, 7.0);

    // Rotation: a new file (new modification time) and a server that accepts only the new token.
    *accepted.lock().unwrap() = "new-token".into();
    let older = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "new-token\n").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(older + Duration::from_secs(5)).unwrap();
    assert_eq!(client.query("up", t0()).await.unwrap()[0].value, 7.0);
    let heads = fake.heads();
    assert_eq!(
        heads.iter().map(|h| bearer(h)).collect::<Vec<_>>(),
        ["old-token", "new-token"],
        "the new token is sent straight away"
    );
}

#[tokio::test]
async fn a_401_reads_the_token_file_again_and_retries_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "old-token").unwrap();
    let accepted = Arc::new(Mutex::new("old-token".to_string()));
    let fake = accepting(accepted.clone()).await;
    let client =
        PrometheusClient::new(&settings(fake.url()).with_auth(Auth::BearerFile(path.clone())))
            .unwrap();
    assert_eq!(client.query("up", t0()).await.unwrap()[0].value, 7.0);

    // Rotated, but with the old modification time (a coarse clock, a copy that keeps it): only
    // the 401 tells the client.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    *accepted.lock().unwrap() = "new-token".into();
    std::fs::write(&path, "new-token").unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(modified).unwrap();
    assert_eq!(client.query("up", t0()).await.unwrap()[0].value, 7.0);
    let sent: Vec<_> = fake.heads().iter().map(|h| bearer(h)).collect();
    assert_eq!(sent, ["old-token", "old-token", "new-token"]);

    // A token the server refuses and no new one in the file: one request, a clear 401.
    *accepted.lock().unwrap() = "newer-token".into();
    let err = client.query("up", t0()).await.unwrap_err();
    assert_eq!(err.kind, MetricErrorKind::HttpStatus);
    assert!(err.message.contains("HTTP 401"), "{err}");
    assert_eq!(fake.heads().len(), 4, "no retry without a new token");
}
