//! `iter8 crd`, `iter8 install` and `iter8 operator --help`: what the binary prints, and that
//! the bundle passes `kubernetes-validate --strict` offline.

use std::process::Command;

fn iter8(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(args)
        .output()
        .expect("runs iter8");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn crd_prints_the_generated_crd() {
    let (code, stdout, stderr) = iter8(&["crd"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, iter8_kubernetes::crd_yaml().unwrap());
    assert!(stdout.contains("name: experiments.iter8.tools"));
}

#[test]
fn install_prints_the_bundle_for_each_telemetry() {
    for (flag, telemetry) in [
        ("v1", iter8_kubernetes::install::Telemetry::V1),
        ("v2", iter8_kubernetes::install::Telemetry::V2),
    ] {
        let (code, stdout, stderr) = iter8(&["install", "--telemetry", flag]);
        assert_eq!(code, 0, "{stderr}");
        let options = iter8_kubernetes::install::InstallOptions {
            telemetry,
            ..Default::default()
        };
        assert_eq!(
            stdout,
            iter8_kubernetes::install::bundle_yaml(&options).unwrap()
        );
    }
    let (code, _, stderr) = iter8(&["install", "--telemetry", "v3"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn install_output_passes_kubernetes_validate_strict() {
    let probe = Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "kubernetes-validate is not installed: pip install kubernetes-validate"
    );
    let (code, stdout, stderr) =
        iter8(&["install", "--replicas", "2", "--namespace", "iter8-system"]);
    assert_eq!(code, 0, "{stderr}");
    let dir = std::env::temp_dir().join(format!("iter8-cli-install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("install.yaml");
    std::fs::write(&path, &stdout).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", "1.33.0"])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    assert!(stdout.contains("namespace: iter8-system"));
    assert!(stdout.contains("replicas: 2"));
}

#[test]
fn operator_flags_have_environment_variables() {
    let (code, stdout, stderr) = iter8(&["operator", "--help"]);
    assert_eq!(code, 0, "{stderr}");
    for (flag, env) in [
        ("--kubeconfig", "KUBECONFIG"),
        ("--namespace", "ITER8_WATCH_NAMESPACE"),
        ("--metrics-namespace", "ITER8_METRICS_NAMESPACE"),
        ("--prometheus-url", "ITER8_PROMETHEUS_URL"),
        ("--leader-elect", "ITER8_LEADER_ELECT"),
        ("--log-format", "ITER8_LOG_FORMAT"),
    ] {
        assert!(stdout.contains(flag), "{flag}: {stdout}");
        assert!(stdout.contains(&format!("env: {env}")), "{env}: {stdout}");
    }
}

#[test]
fn the_operator_fails_clearly_without_a_cluster() {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args([
            "operator",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/kubeconfig"), "{stderr}");
}
