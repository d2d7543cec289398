//! Notifiers through the `iter8 operator` binary on a real kube-apiserver, as the install
//! bundle's ServiceAccount: the `iter8config-notifiers` ConfigMap, created while the operator
//! runs, is picked up live (so the bundle's RBAC lets it watch that ConfigMap); its Slack
//! channel (level `normal`) gets v0.2.1's payload for `ExperimentSucceeded` and none of the
//! verbose `IterationUpdate` events, which its webhook channel (level `verbose`) gets as
//! CloudEvents. Notifications go to a receiver on 127.0.0.1.

mod cluster;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::*;
use iter8_test_support::FakePrometheus;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A notification receiver on 127.0.0.1: each POST's path and JSON body are recorded and
/// answered 200 (one request per connection).
async fn notification_receiver() -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                let complete = |data: &[u8]| {
                    let text = String::from_utf8_lossy(data);
                    let (head, body) = text.split_once("\r\n\r\n")?;
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    (body.len() >= length).then(|| (head.to_string(), body.to_string()))
                };
                let (head, body) = loop {
                    if let Some(done) = complete(&data) {
                        break done;
                    }
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push((path, body));
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = conn.shutdown().await;
            });
        }
    });
    (url, seen)
}

#[test]
fn the_operator_binary_notifies_slack_and_webhooks() {
    let ns = "notifier-check";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let prometheus = runtime.block_on(FakePrometheus::per_version(ns));
    let (receiver, received) = runtime.block_on(notification_receiver());
    let _guard = runtime.enter();
    bookinfo_with_reviews_v3(cp, ns, &prometheus);
    let kubeconfig = cp.service_account_kubeconfig("iter8", "iter8-controller");
    // The notifiers' ConfigMap is read from the operator's own namespace (POD_NAMESPACE).
    let mut operator = Operator::spawn_with_env(
        &kubeconfig,
        ns,
        &prometheus.url(),
        &[],
        &[("POD_NAMESPACE", "iter8")],
    );

    apply_in(
        cp,
        "iter8",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "iter8config-notifiers"},
        "data": {
            "ops": format!("url: {receiver}/slack\nnotifier: slack\nlevel: normal\n"),
            "audit": format!("url: {receiver}/events\nnotifier: webhook\nlevel: verbose\nnamespace: {ns}\n"),
        }})
        .to_string(),
    );
    wait_until(
        Duration::from_secs(20),
        "the ConfigMap is picked up",
        || {
            operator.assert_running();
            operator
                .log()
                .lines()
                .any(|l| l.contains("notifier channels configured") && l.contains("ops"))
        },
    );

    // Five 1 s iterations: the fake Prometheus counts a version's requests only after a
    // warm-up of 2 s, and the success criterion needs a sample of 5.
    apply_in(cp, ns, &part1_experiment("1s", 5));
    let succeeded = format!("reviews-v3-rollout.{ns}: Experiment Succeeded");
    let slack_texts = || -> Vec<String> {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path == "/slack")
            .map(|(_, body)| body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !slack_texts().contains(&succeeded) {
        operator.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "no Slack notification of the success: {:#?}\nexperiment: {:#}",
            received.lock().unwrap(),
            object(cp, "experiment", ns, "reviews-v3-rollout").unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let all = received.lock().unwrap().clone();
    let slack = all
        .iter()
        .find(|(path, body)| path == "/slack" && body["text"] == succeeded.as_str())
        .map(|(_, body)| body.clone())
        .unwrap();
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        format!("*Experiment Succeeded*\nreviews-v3-rollout.{ns}\n_All Success Criteria Were Met_")
    );
    assert_eq!(slack["attachments"][0]["color"], "good");
    assert_eq!(
        slack["attachments"][0]["fields"][1],
        json!({"title": "Progress", "value": "Experiment Completed", "short": false})
    );
    // The level filter: IterationUpdate (severity 1) reached the verbose webhook only.
    assert!(
        !slack_texts().iter().any(|t| t.contains("Iteration Update")),
        "{all:#?}"
    );
    let webhook_types: Vec<&str> = all
        .iter()
        .filter(|(path, _)| path == "/events")
        .filter_map(|(_, body)| body["type"].as_str())
        .collect();
    assert!(
        webhook_types.contains(&"tools.iter8.experiment.IterationUpdate"),
        "{webhook_types:?}"
    );
    cp.kubectl_ok(
        &[
            "delete",
            "configmap",
            "iter8config-notifiers",
            "-n",
            "iter8",
        ],
        None,
    );
}
