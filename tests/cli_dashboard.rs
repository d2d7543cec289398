//! `iter8 dashboard`, run as a user would: the printed JSON, and --push to a fake Grafana.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("adapters/grafana/tests/data")
        .join(name)
}

/// A fresh scratch file path outside the source tree.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iter8-cli-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn iter8(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .env_remove("GRAFANA_TOKEN")
        .output()
        .expect("iter8 runs")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn titles(d: &Value) -> Vec<String> {
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| p["title"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn prints_the_v6_dashboard_with_its_p90_panel() {
    let exp = data("canary_reviews-v3_to_reviews-v6.yaml");
    let metrics = data("iter8_metrics_extended_telemetry-v2.yaml");
    let out = iter8(&[
        "dashboard",
        "-f",
        exp.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    let d = stdout_json(&out);
    assert_eq!(d["uid"], "eXPEaNnZz");
    assert_eq!(d["title"], "iter8-application-metrics");
    let p90 = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "iter8_90_perc_latency")
        .expect("a p90 panel");
    let expr = p90["targets"][0]["expr"].as_str().unwrap();
    assert!(expr.starts_with("histogram_quantile(0.90, "), "{expr}");
    assert!(
        expr.contains(
            "istio_request_duration_milliseconds_bucket{destination_workload='$baseline'"
        )
    );
    assert_eq!(
        p90["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"],
        200.0
    );
    assert!(titles(&d).contains(&"Mean latency".to_string()));
}

#[test]
fn telemetry_is_taken_from_the_metrics_configuration_or_the_flag() {
    let v1 = data("iter8_metrics_extended.yaml");
    let d = stdout_json(&iter8(&["dashboard", "--metrics", v1.to_str().unwrap()]));
    let latency = d["panels"][2]["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        latency.contains("istio_request_duration_seconds_sum{job='istio-mesh'"),
        "{latency}"
    );
    assert!(latency.ends_with("* 1000"), "{latency}");
    // No experiment: the three stock panels under their row, then v0.2.1's panels in two
    // collapsed rows.
    assert_eq!(
        titles(&d),
        [
            "Application metrics",
            "Request rate",
            "Mean latency",
            "Error rate",
            "iter8 v0.2.1: application metrics",
            "iter8 v0.2.1: utilization metrics"
        ]
    );

    let d = stdout_json(&iter8(&["dashboard", "--telemetry", "v1"]));
    assert!(
        d["panels"][2]["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("job='istio-mesh'")
    );
    let d = stdout_json(&iter8(&["dashboard"]));
    assert!(
        d["panels"][2]["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .contains("job='envoy-stats'")
    );
}

#[test]
fn bad_input_fails_with_a_message_naming_it() {
    let out = iter8(&["dashboard", "--telemetry", "v3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown Istio telemetry `v3`"));

    let exp = data("canary_reviews-v3_to_reviews-v6.yaml");
    let stock = scratch("stock-telemetry-v2.yaml");
    std::fs::write(&stock, iter8_core::metrics_config::STOCK_TELEMETRY_V2).unwrap();
    let out = iter8(&[
        "dashboard",
        "-f",
        exp.to_str().unwrap(),
        "--metrics",
        stock.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&stock);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metric `iter8_90_perc_latency` is not in the metrics configuration"),
        "{err}"
    );

    let out = iter8(&["dashboard", "--folder-uid", "x"]);
    assert!(!out.status.success(), "--folder-uid needs --push");
}

/// A one-request HTTP server on 127.0.0.1: returns its URL and a handle yielding the raw request.
fn fake_grafana(
    status_line: &'static str,
    body: &'static str,
) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body_in = vec![0u8; length];
        reader.read_exact(&mut body_in).unwrap();
        let mut stream = reader.into_inner();
        write!(
            stream,
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head + &String::from_utf8_lossy(&body_in)
    });
    (url, handle)
}

#[test]
fn push_sends_the_dashboard_and_reports_grafanas_answer() {
    let (url, server) = fake_grafana(
        "HTTP/1.1 200 OK",
        r#"{"id":4,"uid":"eXPEaNnZz","url":"/d/eXPEaNnZz/iter8-application-metrics","status":"success","version":2}"#,
    );
    let token = scratch("token");
    std::fs::write(&token, "glsa_cli_secret\n").unwrap();
    let exp = data("canary_reviews-v3_to_reviews-v5.yaml");
    let out = iter8(&[
        "dashboard",
        "-f",
        exp.to_str().unwrap(),
        "--push",
        &url,
        "--folder-uid",
        "canaries",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&token);
    let request = server.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "pushed dashboard eXPEaNnZz to {url}: HTTP 200, status success, version 2, url /d/eXPEaNnZz/iter8-application-metrics"
        )
    );
    assert!(!stdout.contains("glsa_cli_secret") && !stderr.contains("glsa_cli_secret"));
    assert!(
        request.starts_with("POST /api/dashboards/db HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer glsa_cli_secret\r\n")
    );
    let body: Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["overwrite"], true);
    assert_eq!(body["folderUid"], "canaries");
    assert_eq!(body["dashboard"]["uid"], "eXPEaNnZz");
}

#[test]
fn push_reports_a_refusal() {
    let (url, server) = fake_grafana(
        "HTTP/1.1 412 Precondition Failed",
        r#"{"status":"name-exists","message":"A dashboard with the same name in the folder already exists"}"#,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(["dashboard", "--push", &url])
        .env("GRAFANA_TOKEN", "glsa_env_secret")
        .output()
        .unwrap();
    let request = server.join().unwrap();
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer glsa_env_secret\r\n")
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("412 Precondition Failed (name-exists): A dashboard with the same name"),
        "{stderr}"
    );
    assert!(!stderr.contains("glsa_env_secret"));
}

#[test]
fn the_operator_pushes_the_dashboard_at_start_up() {
    let (url, server) = fake_grafana(
        "HTTP/1.1 200 OK",
        r#"{"id":4,"uid":"eXPEaNnZz","url":"/d/eXPEaNnZz/iter8-application-metrics","status":"success","version":1}"#,
    );
    let token = scratch("operator-token");
    std::fs::write(&token, "operator-secret\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args([
            "operator",
            "--grafana-push-url",
            &url,
            "--grafana-token-file",
            token.to_str().unwrap(),
            "--grafana-telemetry",
            "v1",
            // No cluster: the operator stops right after the push.
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("GRAFANA_TOKEN")
        .output()
        .unwrap();
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /api/dashboards/db "), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer operator-secret"),
        "{request}"
    );
    assert!(request.contains("\"uid\":\"eXPEaNnZz\""), "{request}");
    assert!(
        request.contains("istio_request_duration_seconds"),
        "telemetry v1 queries"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("operator-secret"),
        "the token is never printed"
    );
}
