//! `iter8 validate` on the tutorial's manifests and on broken ones.

use std::process::Command;

fn iter8(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tutorial_manifests_are_valid_and_printed_with_defaults() {
    let (code, out, err) = iter8(&[
        "validate",
        "-f",
        "examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml",
        "examples/bookinfo/canary_reviews-v3_to_reviews-v6.yaml",
        "examples/bookinfo/reviews-v3.yaml",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("kind: Experiment").count(), 2);
    assert!(
        out.contains("onSuccess: candidate"),
        "defaults filled in:\n{out}"
    );
    assert!(out.contains("grafanaEndpoint: http://localhost:3000"));
    // The custom metric of part 4 is not in the stock configuration: a warning, not an error.
    assert!(err.contains("warning: spec.analysis.successCriteria[0].metricName: metric `iter8_90_perc_latency` is not in the metrics configuration"), "{err}");
}

#[test]
fn with_the_extended_metrics_there_is_nothing_to_report() {
    let (code, _, err) = iter8(&[
        "validate",
        "--metrics",
        "examples/bookinfo/iter8_metrics_extended_telemetry-v2.yaml",
        "-f",
        "examples/bookinfo/canary_reviews-v3_to_reviews-v6.yaml",
    ]);
    assert_eq!(code, 0);
    assert_eq!(err, "");
}

#[test]
fn problems_are_listed_with_exit_code_1() {
    let dir = std::env::temp_dir().join(format!("iter8-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: iter8.tools/v1alpha1\nkind: Experiment\nmetadata:\n  name: bad\nspec:\n  targetService:\n    name: reviews\n    baseline: reviews-v3\n  trafficControl:\n    trafficStepSize: 0\n    intervall: 30s\n",
    )
    .unwrap();
    let (code, out, err) = iter8(&["validate", "-f", bad.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(code, 1);
    assert_eq!(out, "");
    for expected in [
        "error: spec.targetService.candidate: is required",
        "error: spec.trafficControl.trafficStepSize: must be more than 0 and at most 100, not 0",
        "error: spec.trafficControl.intervall: unknown field",
        "1 invalid experiment(s)",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from:\n{err}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (code, _, err) = iter8(&["validate", "-f", "no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("reading no/such/file.yaml"), "{err}");
}
