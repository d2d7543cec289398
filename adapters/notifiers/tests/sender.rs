//! The notifier against a local receiver on 127.0.0.1: what arrives, retries, no redirects,
//! and the level filter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use iter8_core::action::{Event, EventType};
use iter8_core::model::Experiment;
use iter8_core::ports::EventRecorder;
use iter8_notifiers::{Notifier, SenderSettings};
use serde_json::Value;

/// What the receiver got: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A receiver answering each request with the next status of `answers` (then 200).
async fn receiver(answers: Vec<u16>) -> (String, Received) {
    let received: Received = Arc::default();
    let answers = Arc::new(Mutex::new(answers));
    let log = received.clone();
    let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
        let (log, answers) = (log.clone(), answers.clone());
        async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
            log.lock()
                .unwrap()
                .push((uri.path().to_string(), content_type, body));
            let mut answers = answers.lock().unwrap();
            let code = if answers.is_empty() {
                200
            } else {
                answers.remove(0)
            };
            let mut headers = HeaderMap::new();
            headers.insert("location", "http://127.0.0.1:9/elsewhere".parse().unwrap());
            (StatusCode::from_u16(code).unwrap(), headers, "answer")
        }
    };
    let app = Router::new()
        .route("/slack", post(handler.clone()))
        .route("/events", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn experiment() -> Experiment {
    let text = include_str!("../../../examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml");
    let mut exp = iter8_core::manifest::parse_experiments(text).unwrap()[0]
        .clone()
        .unwrap()
        .experiment;
    exp.metadata.namespace = Some("bookinfo-iter8".into());
    exp
}

fn event(reason: &str, message: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        message: message.into(),
    }
}

fn settings() -> SenderSettings {
    SenderSettings {
        timeout: Duration::from_secs(2),
        backoff: Duration::from_millis(50),
        ..SenderSettings::default()
    }
}

async fn wait_for(received: &Received, n: usize) -> Vec<(String, String, Value)> {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    received.lock().unwrap().clone()
}

fn config(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_cloudevents_arrive_and_verbose_events_are_filtered() {
    let (url, received) = receiver(vec![]).await;
    let notifier = Notifier::start(settings()).unwrap();
    let problems = notifier.configure(Some(&config(&[
        ("ops", format!("url: {url}/slack\nnotifier: slack\n")),
        (
            "audit",
            format!("url: {url}/events\nnotifier: webhook\nlevel: verbose\n"),
        ),
    ])));
    assert_eq!(problems, Vec::<String>::new());
    let exp = experiment();
    // Severity 1: only the verbose channel.
    notifier
        .record(&exp, &event("IterationUpdate", "Iteration 1 Started"))
        .await
        .unwrap();
    notifier
        .record(
            &exp,
            &event("ExperimentSucceeded", "All Success Criteria Were Met"),
        )
        .await
        .unwrap();
    let got = wait_for(&received, 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got_all = received.lock().unwrap().clone();
    assert_eq!(got_all.len(), 3, "{got_all:#?}");
    let slack: Vec<_> = got.iter().filter(|(p, _, _)| p == "/slack").collect();
    assert_eq!(
        slack.len(),
        1,
        "the verbose event is not sent to the normal channel"
    );
    assert_eq!(slack[0].1, "application/json");
    assert_eq!(
        slack[0].2["text"],
        "reviews-v3-rollout.bookinfo-iter8: Experiment Succeeded"
    );
    let events: Vec<_> = got.iter().filter(|(p, _, _)| p == "/events").collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].1, "application/cloudevents+json");
    assert_eq!(
        events[0].2["type"],
        "tools.iter8.experiment.IterationUpdate"
    );
    assert_ne!(events[0].2["id"], events[1].2["id"], "ids are unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_a_bounded_number_of_times_and_redirects_not_followed() {
    let (url, received) = receiver(vec![503, 503, 503, 503, 302]).await;
    let notifier = Notifier::start(settings()).unwrap();
    notifier.configure(Some(&config(&[(
        "ops",
        format!("url: {url}/slack\nnotifier: slack\n"),
    )])));
    let exp = experiment();
    // 3 attempts, all 503: given up.
    notifier
        .record(&exp, &event("ExperimentFailed", "Aborted"))
        .await
        .unwrap();
    wait_for(&received, 3).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(received.lock().unwrap().len(), 3, "3 attempts, no more");
    // 503 then a redirect: the redirect is an answer, not followed and not retried.
    notifier
        .record(&exp, &event("ExperimentFailed", "Aborted"))
        .await
        .unwrap();
    wait_for(&received, 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let paths: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(paths, ["/slack"; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_never_waits_for_a_receiver() {
    // A receiver that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let notifier = Notifier::start(SenderSettings {
        queue: 2,
        ..settings()
    })
    .unwrap();
    notifier.configure(Some(&config(&[(
        "ops",
        format!("url: {url}/slack\nnotifier: slack\n"),
    )])));
    let exp = experiment();
    // More events than the queue holds, each recorded at once: the rest are dropped.
    let record_all = async {
        for _ in 0..20 {
            notifier
                .record(&exp, &event("ExperimentFailed", "Aborted"))
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(1), record_all)
        .await
        .expect("recording does not wait on the receiver");
}
