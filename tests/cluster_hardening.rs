//! Hardening on a real kube-apiserver: a deletion whose rollback is moot never wedges, the
//! namespace boundary is enforced at admission by the install bundle's
//! ValidatingAdmissionPolicy, and `spec.targetService` is immutable once an experiment started.

mod cluster;

use std::time::Duration;

use cluster::*;
use iter8_test_support::FakePrometheus;
use serde_json::{Value, json};

const EXPERIMENT: &str = "reviews-v3-rollout";

/// Part 1's experiment in `ns` as JSON (its 30 s interval kept).
fn part1(ns: &str) -> Value {
    let text = part1_experiment("30s", 8);
    let mut doc: Value = serde_saphyr::from_str(&text).unwrap();
    doc["metadata"]["namespace"] = json!(ns);
    doc
}

/// `kubectl create --dry-run=server`: Ok(()) or the API server's message.
fn dry_run(ns: &str, doc: &Value) -> Result<(), String> {
    let out = cluster().kubectl(
        &["create", "--dry-run=server", "-n", ns, "-f", "-"],
        Some(&doc.to_string()),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_deletion_whose_rollback_is_moot_does_not_wedge() {
    let ns = "moot-rollback";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cp = cluster();
    let prometheus = runtime.block_on(FakePrometheus::per_version(ns));
    let _guard = runtime.enter();
    bookinfo_with_reviews_v3(cp, ns, &prometheus);
    let kubeconfig = cp.service_account_kubeconfig("iter8", "iter8-controller");
    let mut operator = Operator::spawn(&kubeconfig, ns, &prometheus.url(), &[]);
    // A long interval: the experiment stays running at iteration 1.
    apply_in(cp, ns, &part1_experiment("1h", 8));
    wait_until(Duration::from_secs(60), "iteration 1 started", || {
        operator.assert_running();
        object(cp, "experiment", ns, EXPERIMENT)
            .is_some_and(|e| e["status"]["currentIteration"].as_u64() >= Some(1))
    });
    drop(operator);

    // With the operator away: the baseline and the routing rules go, then the experiment is
    // deleted while it runs.
    cp.kubectl_ok(&["delete", "deployment", "reviews-v2", "-n", ns], None);
    cp.kubectl_ok(
        &[
            "delete",
            "virtualservices,destinationrules",
            "--all",
            "-n",
            ns,
        ],
        None,
    );
    cp.kubectl_ok(
        &["delete", "experiment", EXPERIMENT, "-n", ns, "--wait=false"],
        None,
    );
    let mut operator = Operator::spawn(&kubeconfig, ns, &prometheus.url(), &[]);
    wait_until(Duration::from_secs(30), "the experiment is gone", || {
        operator.assert_running();
        object(cp, "experiment", ns, EXPERIMENT).is_none()
    });
    let events = cp.kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            &format!("involvedObject.name={EXPERIMENT},reason=RollbackSkipped"),
            "-o",
            "json",
        ],
        None,
    );
    let events: Value = serde_json::from_str(&events).unwrap();
    let event = &events["items"][0];
    assert_eq!(event["type"], "Warning", "{events:#}");
    assert_eq!(
        event["message"],
        "no rollback to the baseline on deletion: the baseline is gone"
    );
}

#[test]
fn an_experiment_naming_another_namespace_is_rejected_at_admission() {
    let ns = "admission-check";
    let cp = cluster();
    namespace(cp, ns);
    let mut own = part1(ns);
    own["spec"]["targetService"]["namespace"] = json!(ns);
    let mut other = part1(ns);
    other["spec"]["targetService"]["namespace"] = json!("elsewhere");
    // The API server loads a new policy within a few seconds.
    let mut last = String::new();
    wait_until(
        Duration::from_secs(30),
        "the policy is enforced",
        || match dry_run(ns, &other) {
            Ok(()) => false,
            Err(e) => {
                last = e;
                true
            }
        },
    );
    assert!(
        last.contains("ValidatingAdmissionPolicy")
            && last.contains("iter8-experiment-namespace")
            && last.contains(
                "spec.targetService.namespace: must be the Experiment namespace admission-check, not elsewhere"
            ),
        "{last}"
    );
    dry_run(ns, &own).expect("its own namespace is accepted");
    dry_run(ns, &part1(ns)).expect("no namespace is accepted");
}

#[test]
fn the_target_service_is_immutable_once_the_experiment_started() {
    let ns = "immutability-check";
    let cp = cluster();
    namespace(cp, ns);
    cp.kubectl_ok(
        &["create", "-n", ns, "-f", "-"],
        Some(&part1(ns).to_string()),
    );
    let patch = |candidate: &str| {
        cp.kubectl(
            &[
                "patch",
                "experiment",
                EXPERIMENT,
                "-n",
                ns,
                "--type=merge",
                "-p",
                &json!({"spec": {"targetService": {"candidate": candidate}}}).to_string(),
            ],
            None,
        )
    };
    let out = patch("reviews-v4");
    assert!(
        out.status.success(),
        "before the start it may change: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(
        &[
            "patch",
            "experiment",
            EXPERIMENT,
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"startTimestamp":"2026-12-01T10:00:00Z"}}"#,
        ],
        None,
    );
    let out = patch("reviews-v5");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a started experiment's target changed"
    );
    assert!(
        err.contains("spec.targetService")
            && err.contains("spec.targetService is immutable once the experiment has started"),
        "{err}"
    );
    // Other fields still change.
    cp.kubectl_ok(
        &[
            "patch",
            "experiment",
            EXPERIMENT,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"action":"pause"}"#,
        ],
        None,
    );
    cp.kubectl_ok(&["delete", "experiment", EXPERIMENT, "-n", ns], None);
}
