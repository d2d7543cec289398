//! `iter8 simulate`: the timeline, the final row, the plot, exit codes and input errors.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iter8"))
        .current_dir(root())
        .arg("simulate")
        .args(args)
        .output()
        .expect("running iter8 simulate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_successful_rollout_prints_a_timeline_and_the_final_row() {
    let out = simulate(&[
        "-f",
        "examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml",
        "--profile",
        "examples/profiles/reviews-v2.yaml",
        "--profile",
        "examples/profiles/reviews-v3.yaml",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("TIME"), "{stdout}");
    for split in ["80/20", "60/40", "40/60", "20/80", "0/100"] {
        assert!(stdout.contains(split), "{split}\n{stdout}");
    }
    assert!(stdout.contains("iter8_latency"));
    let last = stdout.lines().last().unwrap_or_default();
    let cells: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "reviews-v3-rollout",
            "Completed",
            "ExperimentSucceeded:",
            "All",
            "Success",
            "Criteria",
            "Were",
            "Met",
            "reviews-v2",
            "0",
            "reviews-v3",
            "100"
        ]
    );
}

#[test]
fn a_failing_candidate_exits_1_and_the_plot_is_written() {
    let dir = std::env::temp_dir().join(format!("iter8-simulate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("v5.svg");
    let out = simulate(&[
        "-f",
        "examples/bookinfo/canary_reviews-v3_to_reviews-v5.yaml",
        "--profile",
        "examples/profiles/reviews-v3.yaml",
        "--profile",
        "examples/profiles/reviews-v5.yaml",
        "--seed",
        "3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("ExperimentFailed: Aborted"), "{stdout}");
    assert!(stdout.contains("not met: abort"), "{stdout}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.contains("<svg") && picture.contains("reviews-v5"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn same_seed_same_output() {
    let args = [
        "-f",
        "examples/bookinfo/canary_reviews-v3_to_reviews-v6.yaml",
        "--profile",
        "examples/profiles/reviews-v3.yaml",
        "--profile",
        "examples/profiles/reviews-v6.yaml",
        "--metrics",
        "examples/bookinfo/iter8_metrics_extended_telemetry-v2.yaml",
        "--seed",
        "11",
    ];
    let a = simulate(&args);
    let b = simulate(&args);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert!(text(&a.stdout).contains("iter8_90_perc_latency"));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = std::env::temp_dir().join(format!("iter8-simulate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_profile = dir.join("bad.yaml");
    std::fs::write(
        &bad_profile,
        "versions:\n  reviews-v3:\n    latency: {lognormal: {median_ms: 35, sigma: 0.3}}\n    error_rate: 7\n",
    )
    .unwrap();
    let typo = dir.join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(
            root().join("examples/bookinfo/canary_reviews-v2_to_reviews-v3.yaml"),
        )
        .unwrap()
        .replace("maxIterations", "maxIteration"),
    )
    .unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec![
                "-f",
                "examples/bookinfo/canary_reviews-v3_to_reviews-v4.yaml",
                "--profile",
                bad_profile.to_str().unwrap(),
            ],
            "versions.reviews-v3.error_rate: 7 is not a probability",
        ),
        (
            vec![
                "-f",
                "examples/bookinfo/canary_reviews-v3_to_reviews-v4.yaml",
                "--profile",
                "examples/profiles/reviews-v3.yaml",
            ],
            "the profile has no version `reviews-v4`",
        ),
        (
            vec![
                "-f",
                typo.to_str().unwrap(),
                "--profile",
                "examples/profiles/reviews-v2.yaml",
            ],
            "spec.trafficControl.maxIteration",
        ),
        (
            vec![
                "-f",
                "no/such/file.yaml",
                "--profile",
                "examples/profiles/reviews-v2.yaml",
            ],
            "reading no/such/file.yaml",
        ),
    ];
    for (args, needle) in cases {
        let out = simulate(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
