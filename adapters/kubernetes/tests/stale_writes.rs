//! No stale writes: a status decided on an old `resourceVersion` is refused (409 Conflict), and
//! the next reconcile reads again and decides again; a leader that loses its Lease cancels its
//! in-flight reconciles before they write.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use iter8_control_plane::eventually;
use iter8_core::measurement::{MetricError, MetricReadings, MetricsQuery};
use iter8_core::ports::MetricSource;
use iter8_rand::ChaCha;

use iter8_core::driver::BuiltinAnalytics;
use iter8_core::engine::NoDashboard;
use iter8_core::ports::ExperimentStore;
use iter8_kubernetes::controller::{self, Adapters, Settings};
use iter8_kubernetes::crd::{self, ExperimentResource};
use iter8_kubernetes::metrics::OperatorMetrics;
use iter8_kubernetes::operator::{LeaderElection, OperatorError};
use iter8_kubernetes::store::KubeStore;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
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
        analytics: Arc::new(BuiltinAnalytics::new(
            FakeMetrics::new(120.0, 100.0),
            ChaCha,
        )),
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

/// A metric source whose answers wait while its gate is closed, as a slow Prometheus does:
/// a reconcile that asks it then stays in flight.
struct GatedMetrics {
    inner: FakeMetrics,
    open: tokio::sync::watch::Sender<bool>,
    waiting: Arc<AtomicU64>,
}

#[async_trait]
impl MetricSource for GatedMetrics {
    async fn measure(&self, query: &MetricsQuery) -> Result<Vec<MetricReadings>, MetricError> {
        let mut open = self.open.subscribe();
        if !*open.borrow() {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _ = open.wait_for(|o| *o).await;
        }
        self.inner.measure(query).await
    }
}

/// The resourceVersion of an object as stored.
fn resource_version(object: &Option<Value>) -> Value {
    object.as_ref().unwrap()["metadata"]["resourceVersion"].clone()
}

/// A leader whose Lease is taken while a reconcile waits on Prometheus cancels that reconcile:
/// when Prometheus answers, neither the experiment's status nor its routing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_writes_nothing_more() {
    const LEASE: &str = "iter8-controller";
    let cluster = cluster("lease-loss").await;
    cluster.apply_file("reviews-v3.yaml").await;
    let (open, _) = tokio::sync::watch::channel(true);
    let waiting = Arc::new(AtomicU64::new(0));
    let metrics = GatedMetrics {
        inner: FakeMetrics::new(120.0, 100.0),
        open: open.clone(),
        waiting: waiting.clone(),
    };
    let election = LeaderElection {
        namespace: cluster.ns.clone(),
        lease_name: LEASE.to_string(),
        identity: "leader".to_string(),
        duration: Duration::from_secs(3),
    };
    let leader = Running::start_with(&cluster, metrics, Some(election)).await;
    let lease = async || {
        cluster
            .object("coordination.k8s.io/v1", "leases", LEASE)
            .await
            .unwrap_or(Value::Null)
    };
    eventually(
        Duration::from_secs(10),
        "the leader holds the Lease",
        async || (lease().await["spec"]["holderIdentity"] == "leader").then_some(()),
    )
    .await;
    let mut exp = part1_experiment();
    exp["spec"]["trafficControl"]["maxIterations"] = json!(20);
    cluster.apply(&exp).await;
    wait_for(&cluster, PART1, 20, iteration_started(2)).await;

    // Prometheus stops answering: the next iteration's reconcile waits for it.
    open.send_replace(false);
    eventually(
        Duration::from_secs(10),
        "a reconcile waits on Prometheus",
        async || (waiting.load(Ordering::SeqCst) > 0).then_some(()),
    )
    .await;
    let host = cluster.host("reviews");
    let experiment_version = resource_version(&experiment(&cluster, PART1).await);
    let routing_version = resource_version(&virtual_service(&cluster, &host).await);

    // Another instance takes the Lease; the leader sees it when it next reads its Lease
    // (every sixth of the Lease), or its lease manager does, and steps down.
    let taken_at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(cluster.client.clone(), &cluster.ns);
    leases
        .patch(
            LEASE,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "holderIdentity": "usurper",
                "renewTime": taken_at,
                "leaseDurationSeconds": 60,
            }})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the leader steps down",
        async || leader.has_stopped().then_some(()),
    )
    .await;

    // Prometheus answers; a reconcile still in flight would now write iteration 3.
    open.send_replace(true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        resource_version(&experiment(&cluster, PART1).await),
        experiment_version,
        "the former leader wrote the status: {:#}",
        experiment(&cluster, PART1).await.unwrap()["status"]
    );
    assert_eq!(
        resource_version(&virtual_service(&cluster, &host).await),
        routing_version,
        "the former leader changed the routing"
    );
    match leader.stop().await {
        Err(OperatorError::LostLeadership { reason, .. }) => {
            assert!(reason.contains("usurper"), "{reason}")
        }
        other => panic!("the former leader stops, reporting the lost Lease: {other:?}"),
    }
}
