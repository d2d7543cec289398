//! `KubeTargets::claimed_by` against the fake API server: which other experiments claim an
//! experiment's targets, and which of the targets they share (iter8 v0.2.1's
//! `Service`/`Baseline`/`Candidate ... is being involved in other experiment`).

mod support;

use iter8_core::observation::ClaimedTarget;
use iter8_kubernetes::ExperimentResource;
use iter8_kubernetes::targets::KubeTargets;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::*;

/// Part 1's experiment named `name`, on `baseline` → `candidate` of the reviews service.
fn experiment_on(name: &str, service: &str, baseline: &str, candidate: &str) -> Value {
    let mut exp = part1_experiment();
    exp["metadata"]["name"] = json!(name);
    exp["spec"]["targetService"]["name"] = json!(service);
    exp["spec"]["targetService"]["baseline"] = json!(baseline);
    exp["spec"]["targetService"]["candidate"] = json!(candidate);
    exp
}

/// Writes `status` through the status subresource, as the operator does.
async fn set_status(client: &kube::Client, name: &str, status: Value) {
    let api: Api<ExperimentResource> = Api::namespaced(client.clone(), NS);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

async fn claim_on(
    client: &kube::Client,
    server: &iter8_fake_apiserver::FakeApiServer,
    name: &str,
) -> Option<(String, ClaimedTarget)> {
    KubeTargets::new(client.clone())
        .claimed_by(&core_experiment(server, name))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_started_unfinished_experiments_claim_and_the_shared_target_is_named() {
    let (server, client) = cluster().await;
    let started = json!({"startTimestamp": "2026-12-06T10:00:00Z", "phase": "Progressing"});
    apply(
        &client,
        NS,
        &experiment_on("running", "reviews", "reviews-v2", "reviews-v3"),
    )
    .await;
    apply(
        &client,
        NS,
        &experiment_on("same-service", "reviews", "a", "b"),
    )
    .await;
    apply(
        &client,
        NS,
        &experiment_on("same-baseline", "other", "reviews-v2", "c"),
    )
    .await;
    apply(
        &client,
        NS,
        &experiment_on("candidate-as-baseline", "x", "y", "reviews-v2"),
    )
    .await;
    apply(
        &client,
        NS,
        &experiment_on("unrelated", "ratings", "r1", "r2"),
    )
    .await;

    // Not started yet: it claims nothing, whatever it shares.
    assert_eq!(claim_on(&client, &server, "same-service").await, None);

    set_status(&client, "running", started.clone()).await;
    let by = |target| Some(("running.bookinfo-iter8".to_string(), target));
    assert_eq!(
        claim_on(&client, &server, "same-service").await,
        by(ClaimedTarget::Service)
    );
    assert_eq!(
        claim_on(&client, &server, "same-baseline").await,
        by(ClaimedTarget::Baseline)
    );
    // A Deployment that is the other experiment's baseline is claimed in any role.
    assert_eq!(
        claim_on(&client, &server, "candidate-as-baseline").await,
        by(ClaimedTarget::Candidate)
    );
    assert_eq!(claim_on(&client, &server, "unrelated").await, None);
    // The running experiment is not claimed by the ones that have not started.
    assert_eq!(claim_on(&client, &server, "running").await, None);

    // Completed: it claims nothing any more.
    set_status(&client, "running", json!({"phase": "Completed"})).await;
    assert_eq!(claim_on(&client, &server, "same-service").await, None);
    server.stop().await;
}
