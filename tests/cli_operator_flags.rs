//! `iter8 operator` refuses bad hardening flags at start-up, before it reaches Kubernetes.

use std::process::Command;

#[test]
fn an_allowed_analytics_endpoint_that_is_not_an_http_url_is_refused_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .args([
            "operator",
            "--analytics",
            "remote",
            "--analytics-allowed-endpoint",
            "http://iter8-analytics.iter8:8080",
            "--analytics-allowed-endpoint",
            "ftp://analytics.example",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ])
        .env_remove("ITER8_ANALYTICS_ALLOWED_ENDPOINTS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "--analytics-allowed-endpoint: allowed analytics endpoint `ftp://analytics.example`: the scheme must be http or https"
        ),
        "{err}"
    );
}
