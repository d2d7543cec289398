//! No stale writes: a status decided on an old `resourceVersion` is refused (409 Conflict), and
//! the next reconcile reads again and decides again.

mod support;

use std::sync::Arc;

use iter8_core::driver::BuiltinAnalytics;
use iter8_core::engine::NoDashboard;
use iter8_core::ports::ExperimentStore;
use iter8_kubernetes::controller::{self, Adapters, Settings};
use iter8_kubernetes::crd::{self, ExperimentResource};
use iter8_kubernetes::metrics::OperatorMetrics;
use iter8_kubernetes::store::KubeStore;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::*;

const PART1: &str = "reviews-v3-rollout";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_decided_on_a_stale_version_is_refused_and_decided_again() {
    let cluster = cluster("stale-writes").await;
    let client = cluster.client.clone();
    cluster.apply(&part1_experiment()).await;
    let api: Api<ExperimentResource> = Api::namespaced(client.clone(), &cluster.ns);
    let read = crd::to_core(&api.get(PART1).await.unwrap()).unwrap();

    // Another writer changes the status after the read.
    api.patch_status(
        PART1,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Pause", "message": "written by another"}})),
    )
    .await
    .unwrap();

    let mut decided = read.status.clone();
    decided.message = Some("decided on the old version".into());
    let err = KubeStore::new(client.clone())
        .write_status(&read, &decided)
        .await
        .expect_err("a stale write is refused");
    assert!(
        err.message.contains("Conflict") || err.message.contains("409"),
        "{err}"
    );
    assert_eq!(
        experiment(&cluster, PART1).await.unwrap()["status"]["message"],
        json!("written by another")
    );

    // The reconcile reads the experiment again and decides on what it finds (the candidate is
    // not deployed in this cluster).
    let adapters = Adapters {
        router: Arc::new(iter8_istio::IstioRouter::new(client.clone())),
        analytics: Arc::new(BuiltinAnalytics::new(FakeMetrics::new(120.0, 100.0))),
        dashboard: Arc::new(NoDashboard),
        events: None,
    };
    let settings = Settings::default();
    let (stores, _watches) = controller::Stores::watch(&client, &settings);
    let ctx = controller::Context::new(
        client.clone(),
        settings,
        adapters,
        stores,
        Arc::new(OperatorMetrics::new()),
    );
    controller::reconcile_experiment(&ctx, &cluster.ns, PART1)
        .await
        .expect("the reconcile on a fresh read writes its status");
    assert_eq!(
        experiment(&cluster, PART1).await.unwrap()["status"]["message"],
        json!("TargetsNotFound: Missing Candidate")
    );
}
