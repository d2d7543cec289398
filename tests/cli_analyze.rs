//! `iter8 analyze` end to end: the binary against a real Prometheus over the synthetic Istio
//! series of the Prometheus adapter's tests (numbers known exactly).

#[path = "../adapters/prometheus/tests/support/istio_data.rs"]
#[allow(dead_code)]
mod istio_data;
#[path = "../adapters/prometheus/tests/support/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;

use std::process::Command;

use istio_data::{NAMESPACE, T_END, openmetrics};
use prometheus::{TempDir, TestPrometheus};

fn experiment(dir: &TempDir, status: &str) -> std::path::PathBuf {
    let path = dir.path().join("experiment.yaml");
    let text = format!(
        "apiVersion: iter8.tools/v1alpha1
kind: Experiment
metadata:
  name: reviews-v3-rollout
  namespace: {NAMESPACE}
spec:
  targetService:
    name: reviews
    apiVersion: v1
    baseline: reviews-v2
    candidate: reviews-v3
  trafficControl:
    strategy: check_and_increment
    interval: 30s
    trafficStepSize: 20
    maxIterations: 8
    maxTrafficPercentage: 80
  analysis:
    successCriteria:
      - metricName: iter8_latency
        toleranceType: threshold
        tolerance: 200
        sampleSize: 5
      - metricName: iter8_error_rate
        toleranceType: delta
        tolerance: 0.02
        sampleSize: 5
{status}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn iter8(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn analyze_prints_values_verdicts_and_the_decision() {
    let prom = TestPrometheus::start(&openmetrics());
    let dir = TempDir::new();
    let exp = experiment(&dir, "");
    let from = T_END - 1800;
    let (from, to) = (from.to_string(), T_END.to_string());
    let url = prom.url();
    let args = [
        "analyze",
        "-f",
        exp.to_str().unwrap(),
        "--prometheus",
        &url,
        "--from",
        &from,
        "--to",
        &to,
    ];

    let (code, out, err) = iter8(&args);
    println!("{out}");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("2023-12-31T23:30:00Z .. 2024-01-01T00:00:00Z (1800s, offset "),
        "{out}"
    );
    assert!(out.contains("(3 queries, time="), "{out}");
    assert!(
        out.contains("iter8_latency: threshold 200, sample size >= 5"),
        "{out}"
    );
    assert!(out.contains("value 56.25"), "{out}");
    assert!(out.contains("sample 3600"), "{out}");
    assert!(out.contains("value 62.5"), "{out}");
    assert!(out.contains("value 0 (no data: absent_value)"), "{out}");
    assert!(
        out.contains("verdict    met: iter8_latency of the candidate is within threshold 200 ."),
        "{out}"
    );
    assert!(out.contains("verdict    NOT met: iter8_error_rate of the candidate is not within delta 0.02 of the baseline."), "{out}");
    // No status: the current split is 100/0 and the readings are new; not all criteria met.
    assert!(
        out.contains("Decision:   hold: baseline 100, candidate 0"),
        "{out}"
    );

    let mut json_args = args.to_vec();
    json_args.extend(["--output", "json", "--first-iteration"]);
    let (code, out, err) = iter8(&json_args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prometheus"]["queries"].as_array().unwrap().len(), 3);
    assert_eq!(v["window"]["interval_seconds"], 1800);
    assert_eq!(v["criteria"][0]["candidate"]["value"], 62.5);
    assert_eq!(v["criteria"][0]["baseline"]["sample_size"], 3600.0);
    assert_eq!(
        v["criteria"][1]["baseline"]["measured"]["value"]["kind"],
        "no_data"
    );
    assert_eq!(v["criteria"][1]["met"], false);
    // First iteration: the split always moves by one step.
    assert_eq!(v["decision"]["action"], "new_split");
    assert_eq!(v["decision"]["candidate"], 20);
    assert_eq!(v["assessment"]["conclusions"][0], "Experiment started");
}

#[test]
fn analyze_reads_the_window_and_state_from_the_status_and_reports_an_unreachable_prometheus() {
    let mut prom = TestPrometheus::start(&openmetrics());
    let dir = TempDir::new();
    let status = "status:
  startTimestamp: \"2023-12-31T23:50:00Z\"
  endTimestamp: \"2024-01-01T00:00:00Z\"
  trafficSplitPercentage:
    baseline: 80
    candidate: 20
";
    let exp = experiment(&dir, status);
    let url = prom.url();
    let args = [
        "analyze",
        "-f",
        exp.to_str().unwrap(),
        "--prometheus",
        &url,
        "-o",
        "json",
    ];
    let (code, out, err) = iter8(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["window"]["interval_seconds"], 600);
    assert_eq!(v["criteria"][0]["baseline"]["sample_size"], 1200.0);
    assert_eq!(v["decision"]["action"], "hold");
    assert_eq!(v["decision"]["current"]["candidate"], 20);

    prom.stop();
    let (code, _, err) = iter8(&[&args[..], &["--prometheus-retries", "0"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn analyze_rejects_bad_flags_with_a_message() {
    let dir = TempDir::new();
    let exp = experiment(&dir, "");
    let e = exp.to_str().unwrap();
    let (code, _, err) = iter8(&[
        "analyze",
        "-f",
        e,
        "--prometheus",
        "http://127.0.0.1:1",
        "--last",
        "soon",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--last `soon`"), "{err}");
    let (code, _, err) = iter8(&["analyze", "-f", e, "--prometheus", "http://127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("no window"), "{err}");
    let (code, _, err) = iter8(&[
        "analyze",
        "-f",
        e,
        "--prometheus",
        "127.0.0.1:9090",
        "--last",
        "5m",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("Prometheus URL"), "{err}");
}
