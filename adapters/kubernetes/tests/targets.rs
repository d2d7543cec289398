//! `KubeTargets::claimed_by` against a real kube-apiserver: which other experiments claim an
//! experiment's targets, and which of the targets they share (iter8 v0.2.1's
//! `Service`/`Baseline`/`Candidate ... is being involved in other experiment`).

mod support;

use std::time::{Duration, Instant};

use iter8_core::observation::ClaimedTarget;
use iter8_kubernetes::ExperimentResource;
use iter8_kubernetes::controller::{Settings, Stores};
use iter8_kubernetes::targets::KubeTargets;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
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
async fn set_status(cluster: &Cluster, name: &str, status: Value) {
    let api: Api<ExperimentResource> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

/// What `KubeTargets` finds claiming `name`'s targets, once its Experiment store holds every
/// experiment of the namespace as the API server has it now.
async fn claim_on(cluster: &Cluster, name: &str) -> Option<(String, ClaimedTarget)> {
    let settings = Settings {
        namespace: Some(cluster.ns.clone()),
        metrics_namespace: cluster.ns.clone(),
        ..Settings::default()
    };
    let (stores, _watches) = Stores::watch(&cluster.client, &settings);
    let api: Api<ExperimentResource> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let now: Vec<(String, Option<String>)> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| (e.name_any(), e.resource_version()))
        .collect();
    let caught_up = || {
        now.iter().all(|(n, version)| {
            stores
                .experiments
                .get(&ObjectRef::new(n).within(&cluster.ns))
                .is_some_and(|e| e.resource_version() == *version)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caught_up() {
        assert!(Instant::now() < deadline, "the store did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    KubeTargets::new(
        cluster.client.clone(),
        settings.namespace.clone(),
        stores.experiments.clone(),
        stores.deployments.clone(),
        stores.services.clone(),
    )
    .claimed_by(&core_experiment(cluster, name).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_started_unfinished_experiments_claim_and_the_shared_target_is_named() {
    let cluster = cluster("claims").await;
    let started = json!({"startTimestamp": "2026-12-06T10:00:00Z", "phase": "Progressing"});
    for exp in [
        experiment_on("running", "reviews", "reviews-v2", "reviews-v3"),
        experiment_on("same-service", "reviews", "a", "b"),
        experiment_on("same-baseline", "other", "reviews-v2", "c"),
        experiment_on("candidate-as-baseline", "x", "y", "reviews-v2"),
        experiment_on("unrelated", "ratings", "r1", "r2"),
    ] {
        cluster.apply(&exp).await;
    }

    // Not started yet: it claims nothing, whatever it shares.
    assert_eq!(claim_on(&cluster, "same-service").await, None);

    set_status(&cluster, "running", started.clone()).await;
    let running = format!("running.{}", cluster.ns);
    let by = |target| Some((running.clone(), target));
    assert_eq!(
        claim_on(&cluster, "same-service").await,
        by(ClaimedTarget::Service)
    );
    assert_eq!(
        claim_on(&cluster, "same-baseline").await,
        by(ClaimedTarget::Baseline)
    );
    // A Deployment that is the other experiment's baseline is claimed in any role.
    assert_eq!(
        claim_on(&cluster, "candidate-as-baseline").await,
        by(ClaimedTarget::Candidate)
    );
    assert_eq!(claim_on(&cluster, "unrelated").await, None);
    // The running experiment is not claimed by the ones that have not started.
    assert_eq!(claim_on(&cluster, "running").await, None);

    // Completed: it claims nothing any more.
    set_status(&cluster, "running", json!({"phase": "Completed"})).await;
    assert_eq!(claim_on(&cluster, "same-service").await, None);
}
