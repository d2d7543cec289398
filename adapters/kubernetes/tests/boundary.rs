//! The namespace boundary as the operator enforces it (here without the install bundle's
//! admission policy): an experiment naming another namespace pauses with a `ValidationError`
//! naming `spec.targetService.namespace`.

mod support;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_naming_another_namespace_pauses_with_the_field_named() {
    // Without the install bundle's admission policy, which would refuse it first.
    let cluster = cluster_on(control_plane_without_crd_validation(), "boundary").await;
    let operator = Running::start(&cluster, FakeMetrics::new(120.0, 100.0)).await;
    let mut exp = part1_experiment();
    exp["spec"]["targetService"]["namespace"] = json!("elsewhere");
    cluster.apply(&exp).await;
    wait_for(
        &cluster,
        "reviews-v3-rollout",
        10,
        message_is(format!(
            "ValidationError: spec.targetService.namespace: must be the experiment's own \
             namespace {}, not elsewhere (the operator runs without \
             --allow-cross-namespace)",
            cluster.ns
        )),
    )
    .await;
    let stored = experiment(&cluster, "reviews-v3-rollout").await.unwrap();
    assert_eq!(stored["status"]["phase"], json!("Pause"));
    assert!(
        stored["status"].get("startTimestamp").is_none(),
        "{stored:#}"
    );
    operator.stop().await.expect("a clean stop");
}
